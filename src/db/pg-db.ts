import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import Cursor from 'pg-cursor';
import { HubError } from '../errors.js';
import {
  copyStatement,
  type Db,
  encodeCopyRows,
  parseUtcTimestamp,
  type QueryResult,
  type SqlValue,
  type StreamOptions,
  type StreamQuery,
  typeOids,
} from './db.js';

const DEFAULT_BATCH = 1000;

const parsers: Record<number, (text: string) => unknown> = {
  [typeOids.int8]: Number,
  [typeOids.numeric]: Number,
  [typeOids.timestamp]: parseUtcTimestamp,
};

// Per-pool parsers instead of pg.types.setTypeParser, which would change every pg user in the process.
const types = {
  getTypeParser: (oid: number, format?: 'text' | 'binary') =>
    parsers[oid] ?? pg.types.getTypeParser(oid, format ?? 'text'),
};

function literal(value: SqlValue | undefined): string {
  if (value === null || value === undefined) return 'NULL';
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new Error(`Not a finite number for an SQL literal: ${value}`);
    return String(value);
  }
  return pg.escapeLiteral(value);
}

/** A PostgreSQL server reached through a pg Pool; every session runs in UTC. */
export async function openPgDb(connectionString: string, options: { max?: number } = {}): Promise<Db> {
  const pool = new pg.Pool({
    connectionString,
    max: options.max ?? 10,
    options: '-c TimeZone=UTC',
    types,
    application_name: 'switchboard',
  });
  // An idle client losing its connection must not crash the process; the pool replaces it.
  pool.on('error', () => {});
  await pool.query('SELECT 1');
  let closed = false;
  const guard = () => {
    if (closed) throw new HubError('SB_ERR_CLOSED', 'Database');
  };

  const wrap = <R>(res: pg.QueryResult): QueryResult<R> => ({
    rows: res.rows as R[],
    rowCount: res.rowCount ?? res.rows.length,
  });

  return {
    driver: 'postgres',
    async query<R>(text: string, params?: readonly unknown[]) {
      guard();
      return wrap<R>(await pool.query(text, params as unknown[] | undefined));
    },
    async exec(script) {
      guard();
      await pool.query(script);
    },
    async transaction(fn) {
      guard();
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const result = await fn({
          query: async <R>(text: string, params?: readonly unknown[]) =>
            wrap<R>(await client.query(text, params as unknown[] | undefined)),
          exec: async (script) => {
            await client.query(script);
          },
        });
        await client.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        throw err;
      } finally {
        client.release();
      }
    },
    async copyRows(table, columns, rows) {
      if (rows.length === 0) return 0;
      guard();
      const client = await pool.connect();
      try {
        await pipeline(
          Readable.from([encodeCopyRows(rows)]),
          client.query(copyFrom(copyStatement(table, columns, 'STDIN'))),
        );
        return rows.length;
      } finally {
        client.release();
      }
    },
    async *stream<R>(query: StreamQuery<R>, options: StreamOptions = {}) {
      guard();
      const { signal } = options;
      signal?.throwIfAborted();
      const batchSize = options.batchSize ?? DEFAULT_BATCH;
      const client = await pool.connect();
      const cursor = client.query(new Cursor<R>(query.text, query.params as unknown[], { types }));
      let reading = false;
      let finished = false;
      // A read in flight cannot be interrupted from the client side: the server is asked to cancel it.
      const onAbort = () => {
        if (!reading) return;
        const pid = (client as unknown as { processID: number }).processID;
        pool.query('SELECT pg_cancel_backend($1)', [pid]).catch(() => {});
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        for (;;) {
          reading = true;
          const rows = await cursor.read(batchSize);
          reading = false;
          signal?.throwIfAborted();
          if (rows.length > 0) yield rows;
          if (rows.length < batchSize) break;
        }
        await cursor.close();
        finished = true;
      } finally {
        signal?.removeEventListener('abort', onAbort);
        // Stopped early (the consumer left, an abort, an error): the connection is closed rather than
        // returned to the pool, which ends the portal and whatever the backend was still doing.
        client.release(finished ? undefined : true);
      }
    },
    async *copyOut(text, params, copyOptions, options = {}) {
      guard();
      const { signal } = options;
      signal?.throwIfAborted();
      const statement = `COPY (${text.replace(/\$(\d+)/g, (_, n: string) => literal(params[Number(n) - 1]))}) TO STDOUT WITH (${copyOptions})`;
      const client = await pool.connect();
      const out = client.query(copyTo(statement));
      const onAbort = () => out.destroy(signal?.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
      let finished = false;
      try {
        for await (const chunk of out) yield chunk as Buffer;
        finished = true;
      } finally {
        signal?.removeEventListener('abort', onAbort);
        // Stopped early: closing the connection ends the COPY (the server's next write to it fails) rather
        // than reading the rest of its output for nobody.
        client.release(finished ? undefined : true);
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      await pool.end();
    },
  };
}
