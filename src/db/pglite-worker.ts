/**
 * The embedded database's own thread: it holds the PGlite instance and runs what the hub's thread asks
 * (src/db/pglite-db.ts). PGlite executes SQL synchronously inside WebAssembly, so on the hub's thread every
 * statement — a batch of recorded events, an analyze over a month — stopped sockets and upstream calls.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { PGlite, type Transaction } from '@electric-sql/pglite';
import { typeOids } from './db.js';
import type { WorkerReply, WorkerRequest, WorkerStart } from './pglite-protocol.js';

const port = parentPort;
if (!port) throw new Error('pglite-worker runs only as a worker thread');

const { dataDir } = workerData as WorkerStart;
const transactions = new Map<number, { tx: Transaction; end: (commit: boolean) => void }>();
let nextTx = 1;

/** What is needed to rebuild the error on the hub's thread: PostgreSQL's fields (code, detail…) included. */
function errorFields(err: unknown): Record<string, unknown> {
  if (!(err instanceof Error)) return { message: String(err) };
  const fields: Record<string, unknown> = { message: err.message };
  for (const [k, v] of Object.entries(err)) if (v === undefined || typeof v !== 'object') fields[k] = v;
  return fields;
}

const reply = (message: WorkerReply) => port.postMessage(message);

async function openDatabase(): Promise<PGlite> {
  const pg = await PGlite.create(dataDir, {
    parsers: { [typeOids.numeric]: Number, [typeOids.int8]: Number },
  });
  await pg.exec("SET TIME ZONE 'UTC'");
  return pg;
}

function target(pg: PGlite, txId: number | undefined): PGlite | Transaction {
  if (txId === undefined) return pg;
  const open = transactions.get(txId);
  if (!open) throw new Error(`transaction ${txId} is not open`);
  return open.tx;
}

/**
 * A transaction stays open, holding PGlite's lock, until the hub's thread sends its end. The begin request
 * is answered from inside it; its outcome (committed, rolled back, or failed) answers `endId`.
 */
function begin(pg: PGlite, id: number, endId: number): void {
  const txId = nextTx++;
  let started = false;
  let ended: (commit: boolean) => void = () => {};
  const decided = new Promise<boolean>((resolve) => {
    ended = resolve;
  });
  pg.transaction(async (tx) => {
    started = true;
    transactions.set(txId, { tx, end: ended });
    reply({ id, ok: true, value: txId });
    if (!(await decided)) await tx.rollback();
  })
    .then(
      () => reply({ id: endId, ok: true }),
      (err: unknown) => {
        const error = errorFields(err);
        if (!started) reply({ id, ok: false, error });
        reply({ id: endId, ok: false, error });
      },
    )
    .finally(() => transactions.delete(txId));
}

async function handle(pg: PGlite, m: WorkerRequest): Promise<unknown> {
  switch (m.op) {
    case 'query': {
      const res = await target(pg, m.tx).query(m.text, m.params as unknown[] | undefined);
      // PGlite reports affectedRows 0 for a SELECT; pg's rowCount is the number of rows returned.
      return { rows: res.rows, rowCount: res.fields.length > 0 ? res.rows.length : (res.affectedRows ?? 0) };
    }
    case 'exec':
      await target(pg, m.tx).exec(m.script);
      return undefined;
    case 'copy':
      await pg.query(m.statement, [], { blob: new Blob([m.text]) });
      return undefined;
    case 'begin':
      throw new Error('begin is answered by begin()');
    case 'end': {
      const open = transactions.get(m.tx);
      if (!open) throw new Error(`transaction ${m.tx} is not open`);
      open.end(m.commit);
      return undefined;
    }
    case 'close':
      await pg.close();
      return undefined;
  }
}

try {
  const pg = await openDatabase();
  port.on('message', (m: WorkerRequest) => {
    if (m.op === 'begin') return begin(pg, m.id, m.endId);
    handle(pg, m).then(
      (value) => reply({ id: m.id, ok: true, value }),
      (err: unknown) => reply({ id: m.id, ok: false, error: errorFields(err) }),
    );
  });
  reply({ id: 0, ok: true });
} catch (err) {
  reply({ id: 0, ok: false, error: errorFields(err) });
}
