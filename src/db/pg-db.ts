import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { HubError } from '../errors.js';
import {
  copyStatement,
  type Db,
  encodeCopyRows,
  parseUtcTimestamp,
  type QueryResult,
  typeOids,
} from './db.js';

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
    async close() {
      if (closed) return;
      closed = true;
      await pool.end();
    },
  };
}
