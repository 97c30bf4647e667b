import type { Db } from '../db/db.js';
import { HubError, notFound } from '../errors.js';
import { autoBucket, buildAnalysis, RULES } from './analysis.js';
import { type AnalyzeQuery, bucketSizes, DEFAULT_ANALYZE_DAYS, type ListQuery } from './payloads.js';
import {
  callStats,
  type EventScope,
  type ListPosition,
  listEventsPage,
  scopeServers,
  scopeStats,
  toolPairs,
} from './queries.js';

const DAY_MS = 86_400_000;
const TOP_ERRORS = 10;
/** Tool calls mined for bundle patterns: the most recent of the window. */
const PAIR_SAMPLE = 5_000;

export type Analysis = ReturnType<typeof buildAnalysis>;

async function requireBundle(db: Db, bundleId: string): Promise<void> {
  const { rows } = await db.query('SELECT 1 FROM mcp_bundles WHERE id = $1', [bundleId]);
  if (rows.length === 0) throw notFound(`Bundle ${bundleId}`);
}

/** `GET /api/mcp/events/analyze`: every figure comes from an SQL aggregate; the rules run on those. */
export async function analyzeEvents(db: Db, query: AnalyzeQuery, now = new Date()): Promise<Analysis> {
  const until = query.until ?? now;
  const since = query.since ?? new Date(until.getTime() - DEFAULT_ANALYZE_DAYS * DAY_MS);
  const scope: EventScope = {
    since,
    until,
    serverId: query.serverId,
    bundleId: query.bundleId,
    streamId: query.streamId,
  };
  const bucket = query.bucket ?? autoBucket(until.getTime() - since.getTime());

  // Independent statements: on PostgreSQL they run at the same time on separate connections.
  const [servers, stats, calls, pairs] = await Promise.all([
    scopeServers(db, query.serverId),
    scopeStats(db, scope, bucketSizes[bucket], TOP_ERRORS),
    callStats(db, scope),
    toolPairs(db, scope, RULES.bundle.minSupport, PAIR_SAMPLE),
    query.bundleId === undefined ? undefined : requireBundle(db, query.bundleId),
  ]);
  if (query.serverId !== undefined && servers.length === 0) throw notFound(`Server ${query.serverId}`);
  return buildAnalysis({
    since,
    until,
    bucket,
    ...stats,
    ...calls,
    servers,
    pairs,
  });
}

/** The opaque cursor of the event list: where the last page ended, base64url-encoded. */
export function encodeCursor(p: ListPosition): string {
  return Buffer.from(JSON.stringify([p.ts, p.id])).toString('base64url');
}

export function decodeCursor(cursor: string): ListPosition {
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (
      Array.isArray(value) &&
      value.length === 2 &&
      typeof value[0] === 'string' &&
      /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}$/.test(value[0]) &&
      Number.isInteger(value[1]) &&
      value[1] > 0 &&
      value[1] <= 2_147_483_647
    ) {
      return { ts: value[0], id: value[1] };
    }
  } catch {
    // Falls through to the error below.
  }
  throw new HubError('SB_ERR_VALIDATION', 'querystring /cursor: not a cursor returned by a previous page');
}

/** `GET /api/mcp/events`: newest first, `limit` per page, `nextCursor` null on the last page. */
export async function listEvents(db: Db, query: ListQuery) {
  const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
  const rows = await listEventsPage(db, query, after, query.limit + 1);
  const page = rows.slice(0, query.limit);
  const last = page[page.length - 1];
  return {
    events: page.map(({ position_ts: _, ...event }) => ({
      ...event,
      timestamp: event.timestamp.toISOString(),
    })),
    nextCursor:
      rows.length > query.limit && last ? encodeCursor({ ts: last.position_ts, id: last.id }) : null,
  };
}
