import { stringify } from 'csv-stringify/sync';
import type { Db, StreamQuery } from '../db/db.js';
import type { ExportFormat, ExportQuery } from './payloads.js';

/**
 * The event export: rows come from Db.stream (a cursor on PostgreSQL, keyset pages on PGlite) and leave
 * as text one batch at a time, so memory holds one batch whatever the size of the export. The consumer
 * pulls: nothing is read from the database before the previous batch has been taken (back-pressure), and
 * a consumer that stops (the HTTP client went away) ends the query.
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

export const EXPORT_BATCH = 1000;

export const exportContentTypes: Record<ExportFormat, string> = {
  csv: 'text/csv; charset=utf-8',
  json: 'application/json; charset=utf-8',
  ndjson: 'application/x-ndjson; charset=utf-8',
};

const filter = `($1::timestamptz IS NULL OR timestamp >= ($1::timestamptz AT TIME ZONE 'UTC'))
  AND ($2::timestamptz IS NULL OR timestamp < ($2::timestamptz AT TIME ZONE 'UTC'))
  AND ($3::int IS NULL OR server_id = $3)
  AND ($4::varchar IS NULL OR event_type = $4)`;
const select = `SELECT ${EXPORT_COLUMNS.join(', ')} FROM mcp_events`;

// JSON and NDJSON lines are built by the database: parsing each row into JS values only to serialize it
// again would cost more than the rest of the export (the CSV path needs the values, for its quoting).
const jsonLine = `json_build_object(${EXPORT_COLUMNS.map((c) =>
  c === 'timestamp' ? `'timestamp', to_char(timestamp, 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')` : `'${c}', ${c}`,
).join(', ')})::text AS line`;
const selectJson = `SELECT id, ${jsonLine} FROM mcp_events`;

/** Events of the export in id order (ids grow with time), as one cursor query and as keyset pages. */
export function exportQuery<R extends { id: number } = ExportRow>(
  q: Omit<ExportQuery, 'format'>,
  asJson = false,
): StreamQuery<R> {
  const from = asJson ? selectJson : select;
  const params = [
    q.startDate?.toISOString() ?? null,
    q.endDate?.toISOString() ?? null,
    q.serverId ?? null,
    q.eventType ?? null,
  ];
  return {
    text: `${from} WHERE ${filter} ORDER BY id`,
    params,
    page: (after, limit) => ({
      text: `${from} WHERE ${filter} AND ($5::int IS NULL OR id > $5) ORDER BY id LIMIT $6`,
      params: [...params, after?.id ?? null, limit],
    }),
  };
}

function csvRecord(row: ExportRow): unknown[] {
  return EXPORT_COLUMNS.map((c) => {
    const v = row[c];
    if (v === null || v === undefined) return '';
    if (v instanceof Date) return v.toISOString();
    if (typeof v === 'object') return JSON.stringify(v);
    return v;
  });
}

/** The export as text chunks, one per batch of rows. */
export async function* exportChunks(
  db: Db,
  query: ExportQuery,
  options: { signal?: AbortSignal; batchSize?: number } = {},
): AsyncGenerator<string> {
  const { format } = query;
  const batchSize = options.batchSize ?? EXPORT_BATCH;
  if (format === 'csv') {
    yield stringify([[...EXPORT_COLUMNS]]);
    for await (const rows of db.stream(exportQuery(query), { batchSize, signal: options.signal })) {
      yield stringify(rows.map(csvRecord), { cast: { boolean: (b) => String(b) } });
    }
    return;
  }
  const lines = db.stream(exportQuery<{ id: number; line: string }>(query, true), {
    batchSize,
    signal: options.signal,
  });
  if (format === 'ndjson') {
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
