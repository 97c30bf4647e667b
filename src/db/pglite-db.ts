import { mkdir } from 'node:fs/promises';
import { PGlite, type Transaction } from '@electric-sql/pglite';
import { HubError } from '../errors.js';
import {
  copyStatement,
  type Db,
  encodeCopyRows,
  type QueryResult,
  type StreamOptions,
  type StreamQuery,
  typeOids,
} from './db.js';

const DEFAULT_BATCH = 1000;

/** Embedded PostgreSQL (PGlite): file-backed in dataDir, or in memory when dataDir is undefined. */
export async function openPgliteDb(dataDir: string | undefined): Promise<Db> {
  if (dataDir) await mkdir(dataDir, { recursive: true });
  const pg = await PGlite.create(dataDir, {
    parsers: { [typeOids.numeric]: Number, [typeOids.int8]: Number },
  });
  await pg.exec("SET TIME ZONE 'UTC'");
  let closed = false;

  const run = async <R>(q: PGlite | Transaction, text: string, params?: readonly unknown[]) => {
    if (closed) throw new HubError('SB_ERR_CLOSED', 'Database');
    const res = await q.query<R>(text, params as unknown[] | undefined);
    // PGlite reports affectedRows 0 for a SELECT; pg's rowCount is the number of rows returned.
    return { rows: res.rows, rowCount: res.fields.length > 0 ? res.rows.length : (res.affectedRows ?? 0) };
  };

  return {
    driver: 'pglite',
    query: <R>(text: string, params?: readonly unknown[]) =>
      run<R>(pg, text, params) as Promise<QueryResult<R>>,
    async exec(script) {
      if (closed) throw new HubError('SB_ERR_CLOSED', 'Database');
      await pg.exec(script);
    },
    transaction: (fn) =>
      pg.transaction((tx) =>
        fn({
          query: <R>(text: string, params?: readonly unknown[]) => run<R>(tx, text, params),
          exec: async (script) => {
            await tx.exec(script);
          },
        }),
      ),
    async copyRows(table, columns, rows) {
      if (rows.length === 0) return 0;
      if (closed) throw new HubError('SB_ERR_CLOSED', 'Database');
      const blob = new Blob([encodeCopyRows(rows)]);
      await pg.query(copyStatement(table, columns, "'/dev/blob'"), [], { blob });
      return rows.length;
    },
    async *stream<R>(query: StreamQuery<R>, options: StreamOptions = {}) {
      const limit = options.batchSize ?? DEFAULT_BATCH;
      let after: R | undefined;
      for (;;) {
        options.signal?.throwIfAborted();
        const page = query.page(after, limit);
        const { rows } = await run<R>(pg, page.text, page.params);
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
      await pg.close();
    },
  };
}
