import { mkdir } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';
import { HubError } from '../errors.js';
import {
  copyStatement,
  type Db,
  encodeCopyRows,
  type Queryable,
  type QueryResult,
  type StreamOptions,
  type StreamQuery,
} from './db.js';
import type { WorkerReply, WorkerRequest, WorkerStart } from './pglite-protocol.js';

const DEFAULT_BATCH = 1000;

type Request = WorkerRequest extends infer R ? (R extends WorkerRequest ? Omit<R, 'id'> : never) : never;

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
}

/** An error of the database's thread, with PostgreSQL's fields (code, detail, constraint…) kept. */
function rebuildError(fields: Record<string, unknown>): Error {
  const err = new Error(String(fields.message ?? 'embedded database error'));
  for (const [k, v] of Object.entries(fields))
    if (k !== 'message' && k !== 'stack') Object.assign(err, { [k]: v });
  return err;
}

/**
 * The database's thread and the requests waiting on it. The thread keeps the process alive only while a
 * request waits, as an in-process database would. From source (tests and benches, run from the project
 * root) the worker is TypeScript, loaded through tsx like the rest.
 */
async function startThread(dataDir: string | undefined) {
  const workerData: WorkerStart = { dataDir };
  const worker = import.meta.url.endsWith('.ts')
    ? new Worker(
        `import('tsx/esm/api')
          .then(({ register }) => { register(); return import(${JSON.stringify(new URL('./pglite-worker.ts', import.meta.url).href)}); })`,
        { eval: true, workerData },
      )
    : new Worker(new URL('./pglite-worker.js', import.meta.url), { workerData });
  const pending = new Map<number, Pending>();
  let nextId = 1;
  let stopped: HubError | undefined;
  const keepAlive = () => (pending.size > 0 ? worker.ref() : worker.unref());
  const stop = (why: string) => {
    stopped ??= new HubError('SB_ERR_CLOSED', `Database (${why})`);
    for (const p of pending.values()) p.reject(stopped);
    pending.clear();
    keepAlive();
  };
  const wait = (id: number) =>
    new Promise<unknown>((resolve, reject) => {
      if (stopped) return reject(stopped);
      pending.set(id, { resolve, reject });
      keepAlive();
    });
  worker.on('message', (r: WorkerReply) => {
    const p = pending.get(r.id);
    if (!p) return;
    pending.delete(r.id);
    keepAlive();
    if (r.ok) p.resolve(r.value);
    else p.reject(rebuildError(r.error));
  });
  worker.on('error', (err) => stop(`its thread failed: ${err.message}`));
  worker.on('exit', (code) => stop(`its thread exited with code ${code}`));
  try {
    await wait(0);
  } catch (err) {
    await worker.terminate();
    throw err;
  }
  return {
    send(request: Request): Promise<unknown> {
      if (stopped) return Promise.reject(stopped);
      const id = nextId++;
      worker.postMessage({ ...request, id });
      return wait(id);
    },
    /** An answer that no request of its own asks for (a transaction's end), under a fresh id. */
    expect(): { id: number; answer: Promise<unknown> } {
      const id = nextId++;
      return { id, answer: wait(id) };
    },
    async terminate(): Promise<void> {
      stop('it was closed');
      await worker.terminate();
    },
  };
}

/**
 * Embedded PostgreSQL (PGlite), file-backed in dataDir or in memory when dataDir is undefined, on a thread
 * of its own (src/db/pglite-worker.ts): statements run there, so the hub's thread goes on serving sockets
 * and upstream calls while the database works. Values reach this thread by structured clone, which keeps
 * what the pg driver returns too (Dates, numbers, parsed JSON).
 */
export async function openPgliteDb(dataDir: string | undefined): Promise<Db> {
  if (dataDir) await mkdir(dataDir, { recursive: true });
  const thread = await startThread(dataDir);
  let closed = false;
  const open = () => {
    if (closed) throw new HubError('SB_ERR_CLOSED', 'Database');
  };

  const on = (tx: number | undefined): Queryable => ({
    async query<R>(text: string, params?: readonly unknown[]) {
      open();
      return (await thread.send({ op: 'query', text, params, tx })) as QueryResult<R>;
    },
    async exec(script: string) {
      open();
      await thread.send({ op: 'exec', script, tx });
    },
  });
  const direct = on(undefined);

  return {
    driver: 'pglite',
    query: direct.query,
    exec: direct.exec,
    async transaction(fn) {
      open();
      const end = thread.expect();
      // A begin that fails answers both ids; the begin's answer carries the error.
      end.answer.catch(() => {});
      const tx = (await thread.send({ op: 'begin', endId: end.id })) as number;
      let result: Awaited<ReturnType<typeof fn>>;
      try {
        result = await fn(on(tx));
      } catch (err) {
        await thread.send({ op: 'end', tx, commit: false }).catch(() => {});
        await end.answer.catch(() => {});
        throw err;
      }
      await thread.send({ op: 'end', tx, commit: true });
      await end.answer;
      return result;
    },
    async copyRows(table, columns, rows) {
      if (rows.length === 0) return 0;
      open();
      const statement = copyStatement(table, columns, "'/dev/blob'");
      await thread.send({ op: 'copy', statement, text: encodeCopyRows(rows) });
      return rows.length;
    },
    async *stream<R>(query: StreamQuery<R>, options: StreamOptions = {}) {
      const limit = options.batchSize ?? DEFAULT_BATCH;
      let after: R | undefined;
      for (;;) {
        options.signal?.throwIfAborted();
        const page = query.page(after, limit);
        const { rows } = await direct.query<R>(page.text, page.params);
        if (rows.length > 0) {
          after = rows[rows.length - 1];
          yield rows;
        }
        if (rows.length < limit) return;
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      await thread.send({ op: 'close' }).catch(() => {});
      await thread.terminate();
    },
  };
}
