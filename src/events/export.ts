import { stringify } from 'csv-stringify/sync';
import type { Db, SqlValue, StreamQuery } from '../db/db.js';
import type { ExportFormat, ExportQuery } from './payloads.js';

/**
 * The event export. On a PostgreSQL server the database writes the bytes: one `COPY (SELECT …) TO STDOUT`
 * (PostgreSQL's CSV writer does the quoting; JSON lines come from json_build_object) whose output is passed
 * on chunk by chunk. Elsewhere (PGlite) rows come from Db.stream as keyset pages of pre-formatted text and
 * leave one batch at a time. Either way memory holds one chunk or batch whatever the size of the export,
 * nothing is read from the database before the previous chunk has been taken (back-pressure), and a
 * consumer that stops (the HTTP client went away) ends the query.
 */
export const EXPORT_COLUMNS = [
  'id',
  'timestamp',
  'event_type',
  'server_id',
  'bundle_id',
  'stream_id',
  'tool_name',
  'outcome',
  'ok',
  'error_code',
  'source',
  'client_id',
  'config_version',
  'duration',
  'request_bytes',
  'response_bytes',
  'event_data',
] as const;

export type ExportRow = Record<(typeof EXPORT_COLUMNS)[number], unknown> & { id: number; timestamp: Date };

/** Rows per batch on the paged path (PGlite). */
export const EXPORT_BATCH = 5000;

export const exportContentTypes: Record<ExportFormat, string> = {
  csv: 'text/csv; charset=utf-8',
  json: 'application/json; charset=utf-8',
  ndjson: 'application/x-ndjson; charset=utf-8',
};

const filter = `($1::timestamptz IS NULL OR timestamp >= ($1::timestamptz AT TIME ZONE 'UTC'))
  AND ($2::timestamptz IS NULL OR timestamp < ($2::timestamptz AT TIME ZONE 'UTC'))
  AND ($3::int IS NULL OR server_id = $3)
  AND ($4::varchar IS NULL OR event_type = $4)`;

const isoTimestamp = `to_char(timestamp, 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

// Every value as the text the export shows, so that neither path parses a row into JS values only to
// serialize it again: ISO 8601 UTC dates, booleans as true/false, JSON as PostgreSQL writes it.
const textColumns = EXPORT_COLUMNS.map((c) =>
  c === 'timestamp' ? `${isoTimestamp} AS timestamp` : c === 'ok' ? 'ok::text AS ok' : c,
).join(', ');

const jsonLine = `json_build_object(${EXPORT_COLUMNS.map((c) =>
  c === 'timestamp' ? `'timestamp', ${isoTimestamp}` : `'${c}', ${c}`,
).join(', ')})::text`;

// JSON text never holds a raw control character (json_build_object escapes them in strings), so with these
// as delimiter and quote PostgreSQL's CSV writer never quotes a line: each row leaves byte for byte, plus \n.
// The text format would not do: it escapes every backslash of the JSON.
const rawLines = `FORMAT csv, DELIMITER E'\\x01', QUOTE E'\\x02'`;

type Params = SqlValue[];

function filterParams(q: Omit<ExportQuery, 'format'>): Params {
  return [
    q.startDate?.toISOString() ?? null,
    q.endDate?.toISOString() ?? null,
    q.serverId ?? null,
    q.eventType ?? null,
  ];
}

/** Events of the export in id order (ids grow with time), as one query and as keyset pages. */
export function exportQuery<R extends { id: number }>(
  q: Omit<ExportQuery, 'format'>,
  columns: string,
): StreamQuery<R> {
  const from = `SELECT ${columns} FROM mcp_events`;
  const params = filterParams(q);
  return {
    text: `${from} WHERE ${filter} ORDER BY id`,
    params,
    page: (after, limit) => ({
      text: `${from} WHERE ${filter} AND ($5::int IS NULL OR id > $5) ORDER BY id LIMIT $6`,
      params: [...params, after?.id ?? null, limit],
    }),
  };
}

const header = stringify([[...EXPORT_COLUMNS]]);

/** The export as chunks of text or bytes. */
export function exportChunks(
  db: Db,
  query: ExportQuery,
  options: { signal?: AbortSignal; batchSize?: number } = {},
): AsyncGenerator<string | Uint8Array> {
  if (db.copyOut) return copyChunks(db, query, options.signal);
  return pagedChunks(db, query, options);
}

async function* copyChunks(
  db: Db,
  query: ExportQuery,
  signal?: AbortSignal,
): AsyncGenerator<string | Uint8Array> {
  const copyOut = db.copyOut!.bind(db);
  const params = filterParams(query);
  const where = `FROM mcp_events WHERE ${filter} ORDER BY id`;
  if (query.format === 'csv') {
    yield header;
    yield* copyOut(`SELECT ${textColumns} ${where}`, params, 'FORMAT csv', { signal });
  } else if (query.format === 'ndjson') {
    yield* copyOut(`SELECT ${jsonLine} ${where}`, params, rawLines, { signal });
  } else {
    yield* jsonArray(copyOut(`SELECT ${jsonLine} || ',' ${where}`, params, rawLines, { signal }));
  }
}

const COMMA_NEWLINE = 2;

/**
 * `[`, the lines, `]` from lines that each end in ",\n": only the last two bytes seen are held back, since
 * the last line's comma is known to be the last only at the end.
 */
async function* jsonArray(lines: AsyncIterable<Uint8Array>): AsyncGenerator<string | Uint8Array> {
  let held: Uint8Array | undefined;
  for await (const chunk of lines) {
    const bytes: Uint8Array = held ? Buffer.concat([held, chunk]) : chunk;
    if (held === undefined) yield '[\n';
    held = bytes.subarray(bytes.length - COMMA_NEWLINE);
    if (bytes.length > COMMA_NEWLINE) yield bytes.subarray(0, bytes.length - COMMA_NEWLINE);
  }
  yield held === undefined ? '[]\n' : '\n]\n';
}

async function* pagedChunks(
  db: Db,
  query: ExportQuery,
  options: { signal?: AbortSignal; batchSize?: number },
): AsyncGenerator<string> {
  const batchSize = options.batchSize ?? EXPORT_BATCH;
  const read = <R extends { id: number }>(columns: string) =>
    db.stream(exportQuery<R>(query, columns), { batchSize, signal: options.signal });
  if (query.format === 'csv') {
    yield header;
    for await (const rows of read<Record<string, unknown> & { id: number }>(textColumns)) {
      yield stringify(rows.map((r) => EXPORT_COLUMNS.map((c) => r[c])));
    }
    return;
  }
  const lines = read<{ id: number; line: string }>(`id, ${jsonLine} AS line`);
  if (query.format === 'ndjson') {
    for await (const rows of lines) {
      let out = '';
      for (const row of rows) out += `${row.line}\n`;
      yield out;
    }
    return;
  }
  let first = true;
  yield '[';
  for await (const rows of lines) {
    let out = '';
    for (const row of rows) {
      out += `${first ? '\n' : ',\n'}${row.line}`;
      first = false;
    }
    yield out;
  }
  yield first ? ']\n' : '\n]\n';
}
