import { stringify } from 'csv-stringify/sync';
import type { Db, SqlValue, StreamQuery } from '../db/db.js';
import type { ExportFormat, ExportQuery } from './payloads.js';

/**
 * The event export. On a PostgreSQL server one `COPY (SELECT …) TO STDOUT` reads the rows: for CSV its
 * output is the export (PostgreSQL's CSV writer does the quoting), for JSON its text format is turned into
 * JSON lines one chunk at a time. Elsewhere (PGlite) rows come from Db.stream as keyset pages of the
 * columns' text and leave one batch at a time. Either way memory holds one chunk or batch whatever the size of the export,
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

// Every value as the text the CSV shows, so that no path parses a row into JS values only to serialize it
// again: ISO 8601 UTC dates, booleans as true/false, JSON as PostgreSQL writes it.
const csvColumns = EXPORT_COLUMNS.map((c) =>
  c === 'timestamp' ? `${isoTimestamp} AS timestamp` : c === 'ok' ? 'ok::text AS ok' : c,
).join(', ');

// JSON lines are built here from each column's text as PostgreSQL writes it (COPY's text format, or ::text
// on the paged path): cheaper than json_build_object, which looks up the type of all 17 arguments anew on
// every row and made the database the bottleneck of the export.
const rawColumns = EXPORT_COLUMNS.join(', ');
// id stays an integer: the keyset pages order by it.
const textColumns = EXPORT_COLUMNS.map((c) => (c === 'id' ? c : `${c}::text AS ${c}`)).join(', ');

type Kind = 'number' | 'string' | 'boolean' | 'json' | 'timestamp';
const kinds: Record<(typeof EXPORT_COLUMNS)[number], Kind> = {
  id: 'number',
  timestamp: 'timestamp',
  event_type: 'string',
  server_id: 'number',
  bundle_id: 'string',
  stream_id: 'string',
  tool_name: 'string',
  outcome: 'string',
  ok: 'boolean',
  error_code: 'string',
  source: 'string',
  client_id: 'string',
  config_version: 'number',
  duration: 'number',
  request_bytes: 'number',
  response_bytes: 'number',
  event_data: 'json',
};
const columnKinds = EXPORT_COLUMNS.map((c) => kinds[c]);
const keys = EXPORT_COLUMNS.map((c, i) => `${i === 0 ? '{' : ','}"${c}":`);

/** 'YYYY-MM-DD HH:MI:SS[.ffffff]' (a timestamp as PostgreSQL writes it) as ISO 8601 UTC in milliseconds. */
function isoFromText(t: string): string {
  const ms = t.length > 20 ? `${t.slice(20, 23)}00`.slice(0, 3) : '000';
  return `${t.slice(0, 10)}T${t.slice(11, 19)}.${ms}Z`;
}

/** One export object as a JSON line, from the columns' text in EXPORT_COLUMNS order (null for NULL). */
function jsonLine(values: readonly (string | number | null)[]): string {
  let out = '';
  for (let i = 0; i < values.length; i++) {
    const v = values[i] ?? null;
    out += keys[i];
    if (v === null) out += 'null';
    else {
      const kind = columnKinds[i];
      if (kind === 'string') out += JSON.stringify(v);
      else if (kind === 'timestamp') out += `"${isoFromText(String(v))}"`;
      else if (kind === 'boolean') out += v === 't' || v === 'true' ? 'true' : 'false';
      else out += v;
    }
  }
  return `${out}}`;
}

const textEscapes: Record<string, string> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' };

/** A field of COPY's text format: \N is NULL, backslash sequences stand for the characters they escape. */
function copyField(field: string): string | null {
  if (field === '\\N') return null;
  if (!field.includes('\\')) return field;
  return field.replace(/\\(.)/gs, (_, c: string) => textEscapes[c] ?? c);
}

/** COPY text-format output as JSON lines, each chunk's complete rows at a time (UTF-8 is cut only at \n). */
async function* jsonLinesFromCopy(
  chunks: AsyncIterable<Uint8Array>,
  separator: string,
): AsyncGenerator<string> {
  let rest: Buffer | undefined;
  let sep = '';
  for await (const chunk of chunks) {
    const bytes = rest
      ? Buffer.concat([rest, chunk])
      : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    const end = bytes.lastIndexOf(10);
    if (end === -1) {
      rest = bytes;
      continue;
    }
    rest = bytes.subarray(end + 1);
    let out = '';
    for (const row of bytes.toString('utf8', 0, end).split('\n')) {
      out += `${sep}${jsonLine(row.split('\t').map(copyField))}`;
      sep = separator;
    }
    yield out;
  }
}

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
export function exportQuery<R extends { id: unknown }>(
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
  const params = filterParams(query);
  const copy = (columns: string, format: string) =>
    db.copyOut!(`SELECT ${columns} FROM mcp_events WHERE ${filter} ORDER BY id`, params, format, { signal });
  if (query.format === 'csv') {
    yield header;
    yield* copy(csvColumns, 'FORMAT csv');
    return;
  }
  const rows = copy(rawColumns, 'FORMAT text');
  if (query.format === 'ndjson') {
    let empty = true;
    for await (const text of jsonLinesFromCopy(rows, '\n')) {
      yield text;
      empty = false;
    }
    if (!empty) yield '\n';
    return;
  }
  let empty = true;
  for await (const text of jsonLinesFromCopy(rows, ',\n')) {
    yield empty ? `[\n${text}` : text;
    empty = false;
  }
  yield empty ? '[]\n' : '\n]\n';
}

async function* pagedChunks(
  db: Db,
  query: ExportQuery,
  options: { signal?: AbortSignal; batchSize?: number },
): AsyncGenerator<string> {
  const batchSize = options.batchSize ?? EXPORT_BATCH;
  const read = <R extends { id: unknown }>(columns: string) =>
    db.stream(exportQuery<R>(query, columns), { batchSize, signal: options.signal });
  if (query.format === 'csv') {
    yield header;
    for await (const rows of read<Record<string, unknown> & { id: number }>(csvColumns)) {
      yield stringify(rows.map((r) => EXPORT_COLUMNS.map((c) => r[c])));
    }
    return;
  }
  const sep = query.format === 'ndjson' ? '\n' : ',\n';
  let empty = true;
  if (query.format === 'json') yield '[';
  for await (const rows of read<Record<string, string | number | null> & { id: number }>(textColumns)) {
    let out = '';
    for (const row of rows) {
      out += `${empty ? (query.format === 'json' ? '\n' : '') : sep}${jsonLine(EXPORT_COLUMNS.map((c) => row[c]!))}`;
      empty = false;
    }
    yield out;
  }
  if (query.format === 'ndjson') yield empty ? '' : '\n';
  else yield empty ? ']\n' : '\n]\n';
}
