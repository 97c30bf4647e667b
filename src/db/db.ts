/**
 * The one database interface every feature uses. Two drivers implement it (PGlite embedded, pg for a
 * PostgreSQL server) and return the same JS types: int8 and numeric as numbers, timestamps as UTC Dates,
 * json/jsonb parsed.
 */
export interface QueryResult<R> {
  rows: R[];
  rowCount: number;
}

export interface Queryable {
  query<R = Record<string, unknown>>(text: string, params?: readonly unknown[]): Promise<QueryResult<R>>;
  /** Runs a script of several statements without parameters (migrations). */
  exec(script: string): Promise<void>;
}

export type DbDriver = 'pglite' | 'postgres';

/**
 * A query read in batches (exports). The pg driver runs `text` through a cursor on a connection of its own;
 * PGlite has one connection, where a cursor would hold a transaction (and every writer) for the whole read,
 * so it runs `page` queries instead: keyset pagination, each page a short statement of its own.
 */
export interface StreamQuery<R> {
  /** The whole query, in a stable order (by a unique key). */
  text: string;
  params: readonly unknown[];
  /** At most `limit` rows of the same query that come after `after` (the first page when undefined). */
  page(after: R | undefined, limit: number): { text: string; params: readonly unknown[] };
}

export interface StreamOptions {
  /** Rows per batch (and per PGlite page). Default 1,000. */
  batchSize?: number;
  /** Aborting ends the query at once, even in the middle of a batch. */
  signal?: AbortSignal;
}

/** A value inlined into a statement that cannot take bind parameters. */
export type SqlValue = string | number | null;

export interface Db extends Queryable {
  readonly driver: DbDriver;
  /** Runs fn in one transaction on one connection: committed if it resolves, rolled back if it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /** Bulk-loads rows with COPY FROM STDIN (text format); values are encoded by encodeCopyValue. */
  copyRows(table: string, columns: readonly string[], rows: readonly (readonly unknown[])[]): Promise<number>;
  /**
   * The rows of a query in batches, read as they are consumed: memory holds one batch whatever the size of
   * the result. Breaking out of the loop (or aborting the signal) ends the query.
   */
  stream<R>(query: StreamQuery<R>, options?: StreamOptions): AsyncIterable<R[]>;
  /**
   * The bytes of `COPY (text) TO STDOUT WITH (copyOptions)`, read as they are consumed (back-pressure reaches
   * the server's socket). COPY takes no bind parameters, so each `$n` of `text` is replaced by params[n-1] as
   * an escaped literal. Breaking out of the loop (or aborting the signal) ends the COPY. Only on a PostgreSQL
   * server: PGlite can copy only into a file or a blob that holds the whole result, so it has no copyOut.
   */
  copyOut?(
    text: string,
    params: readonly SqlValue[],
    copyOptions: string,
    options?: { signal?: AbortSignal },
  ): AsyncIterable<Uint8Array>;
  /** Idempotent; queries after close fail with SB_ERR_CLOSED. */
  close(): Promise<void>;
}

const identifier = /^[a-z_][a-z0-9_]*$/;

/** COPY cannot take parameters for table and column names, so they are checked against a strict pattern. */
export function copyStatement(table: string, columns: readonly string[], source: string): string {
  for (const name of [table, ...columns]) {
    if (!identifier.test(name)) throw new Error(`Invalid SQL identifier for COPY: ${name}`);
  }
  return `COPY ${table} (${columns.join(', ')}) FROM ${source}`;
}

const copySpecial = /[\\\t\n\r]/;
const copySpecialAll = /[\\\t\n\r]/g;

/** Encodes one value for COPY's text format: \N for null, backslash escapes for the delimiters. */
export function encodeCopyValue(value: unknown): string {
  if (value === null || value === undefined) return '\\N';
  let text: string;
  if (value instanceof Date) text = value.toISOString();
  else if (typeof value === 'object') text = JSON.stringify(value);
  else text = String(value);
  // Most values need no escaping; testing first skips the replace's allocation on the hot path.
  if (!copySpecial.test(text)) return text;
  return text.replace(copySpecialAll, (c) =>
    c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r',
  );
}

export function encodeCopyRows(rows: readonly (readonly unknown[])[]): string {
  let out = '';
  for (const row of rows) out += `${row.map(encodeCopyValue).join('\t')}\n`;
  return out;
}

/** A unique constraint refused the statement (SQLSTATE 23505), on either driver. */
export function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === '23505';
}

/** PostgreSQL type OIDs whose default JS mapping differs between the two drivers. */
export const typeOids = { int8: 20, numeric: 1700, timestamp: 1114 } as const;

/** `timestamp without time zone` values are stored in UTC (every session runs with TimeZone=UTC). */
export const parseUtcTimestamp = (text: string): Date => new Date(`${text.replace(' ', 'T')}Z`);
