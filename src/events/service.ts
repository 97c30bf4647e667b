import type { Db } from '../db/db.js';
import { notFound } from '../errors.js';
import { autoBucket, buildAnalysis, RULES } from './analysis.js';
import { type AnalyzeQuery, bucketSizes, DEFAULT_ANALYZE_DAYS } from './payloads.js';
import {
  configVersionStats,
  countEventTypes,
  type EventScope,
  groupStats,
  scopeServers,
  serverCallStats,
  throughput,
  toolPairs,
  topErrors,
} from './queries.js';

const DAY_MS = 86_400_000;
const TOP_ERRORS = 10;

export type Analysis = ReturnType<typeof buildAnalysis>;

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

  const servers = await scopeServers(db, query.serverId);
  if (query.serverId !== undefined && servers.length === 0) throw notFound(`Server ${query.serverId}`);
  if (query.bundleId !== undefined) {
    const { rows } = await db.query('SELECT 1 FROM mcp_bundles WHERE id = $1', [query.bundleId]);
    if (rows.length === 0) throw notFound(`Bundle ${query.bundleId}`);
  }

  const [eventTypes, groups, serverCalls, errors, series, configVersions, pairs] = await Promise.all([
    countEventTypes(db, scope),
    groupStats(db, scope),
    serverCallStats(db, scope),
    topErrors(db, scope, TOP_ERRORS),
    throughput(db, scope, bucketSizes[bucket]),
    configVersionStats(db, scope),
    toolPairs(db, scope, RULES.bundle.minSupport),
  ]);
  return buildAnalysis({
    since,
    until,
    bucket,
    eventTypes,
    groups,
    serverCalls,
    errors,
    throughput: series,
    configVersions,
    servers,
    pairs,
  });
}
