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

/** Events of the export in id order (ids grow with time), as one cursor query and as keyset pages. */
export function exportQuery(q: Omit<ExportQuery, 'format'>): StreamQuery<ExportRow> {
  const params = [
    q.startDate?.toISOString() ?? null,
    q.endDate?.toISOString() ?? null,
    q.serverId ?? null,
    q.eventType ?? null,
  ];
  return {
    text: `${select} WHERE ${filter} ORDER BY id`,
    params,
    page: (after, limit) => ({
      text: `${select} WHERE ${filter} AND ($5::int IS NULL OR id > $5) ORDER BY id LIMIT $6`,
      params: [...params, after?.id ?? null, limit],
    }),
  };
}

/** A row as exported: dates in ISO 8601 UTC, everything else as stored. */
function plain(row: ExportRow): Record<string, unknown> {
  return { ...row, timestamp: row.timestamp.toISOString() };
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
  let first = true;
  if (format === 'csv') yield stringify([[...EXPORT_COLUMNS]]);
  if (format === 'json') yield '[';
  for await (const rows of db.stream(exportQuery(query), {
    batchSize: options.batchSize ?? EXPORT_BATCH,
    signal: options.signal,
  })) {
    if (format === 'csv') {
      yield stringify(rows.map(csvRecord), { cast: { boolean: (b) => String(b) } });
    } else if (format === 'ndjson') {
      let out = '';
      for (const row of rows) out += `${JSON.stringify(plain(row))}\n`;
      yield out;
    } else {
      let out = '';
      for (const row of rows) {
        out += `${first ? '\n' : ',\n'}${JSON.stringify(plain(row))}`;
        first = false;
      }
      yield out;
    }
  }
  if (format === 'json') yield first ? ']\n' : '\n]\n';
}
