import type { Queryable } from '../db/db.js';

/**
 * The SQL of event analysis, listing and export. Every figure is computed by the database (aggregates,
 * percentile_cont); nothing here loads events into memory.
 *
 * The analysis filter is one fixed text: `$n IS NULL OR column = $n` lets one statement serve every
 * combination of filters, and since pg and PGlite plan unnamed statements with the values bound, the
 * planner folds the unused branches away and still uses the (server_id, timestamp) index.
 */

/** Filters of an analysis: a time window [since, until) and optional server, bundle and stream. */
export interface EventScope {
  since: Date;
  until: Date;
  serverId?: number | undefined;
  bundleId?: string | undefined;
  streamId?: string | undefined;
}

// timestamp columns hold UTC; the parameters are ISO strings converted explicitly, so the driver's own
// Date serialization (local time on pg) never matters.
const scopeFilter = `timestamp >= ($1::timestamptz AT TIME ZONE 'UTC')
  AND timestamp < ($2::timestamptz AT TIME ZONE 'UTC')
  AND ($3::int IS NULL OR server_id = $3)
  AND ($4::varchar IS NULL OR bundle_id = $4)
  AND ($5::varchar IS NULL OR stream_id = $5)`;

const scopeParams = (s: EventScope): unknown[] => [
  s.since.toISOString(),
  s.until.toISOString(),
  s.serverId ?? null,
  s.bundleId ?? null,
  s.streamId ?? null,
];

const durationColumns = `count(duration) AS timed,
  avg(duration)::float8 AS avg,
  percentile_cont(0.5) WITHIN GROUP (ORDER BY duration) AS p50,
  percentile_cont(0.95) WITHIN GROUP (ORDER BY duration) AS p95,
  percentile_cont(0.99) WITHIN GROUP (ORDER BY duration) AS p99,
  max(duration) AS max`;

export interface DurationRow {
  /** Events of the group with a duration. */
  timed: number;
  avg: number | null;
  p50: number | null;
  p95: number | null;
  p99: number | null;
  max: number | null;
}

export interface EventTypeCountRow {
  event_type: string;
  n: number;
}

export interface GroupStatsRow extends DurationRow {
  /** 'all', 'event_type' or 'tool'. */
  grouping: 'all' | 'event_type' | 'tool';
  event_type: string | null;
  server_id: number | null;
  tool_name: string | null;
  n: number;
  /** Events whose ok is known, and those of them that succeeded. */
  judged: number;
  succeeded: number;
  timeouts: number;
  avg_bytes: number | null;
  max_bytes: number | null;
}

export interface ErrorRow {
  code: string;
  outcome: string | null;
  n: number;
  last_at: Date;
  message: string | null;
}

export interface ThroughputRow {
  at: Date;
  n: number;
  errors: number;
  avg: number | null;
}

interface ScopeRow extends DurationRow {
  grouping: 'all' | 'event_type' | 'tool' | 'bucket' | 'error';
  event_type: string | null;
  server_id: number | null;
  tool_name: string | null;
  bucket: Date | null;
  code: string | null;
  outcome: string | null;
  n: number;
  judged: number;
  succeeded: number;
  failed: number;
  timeouts: number;
  avg_bytes: number | null;
  max_bytes: number | null;
  last_failed_at: Date | null;
  message: string | null;
}

export interface ScopeStats {
  eventTypes: EventTypeCountRow[];
  /** Overall, per event type and per (server, tool). */
  groups: GroupStatsRow[];
  /** The most frequent failures (ok = false), by error code (or outcome when the code is missing). */
  errors: ErrorRow[];
  /** Events per bucket aligned on `since`; only non-empty buckets. */
  throughput: ThroughputRow[];
}

/**
 * Everything analyze reports about the scope's events, in one pass over them: one statement with grouping
 * sets (overall, per event type, per tool, per time bucket, per error) reads the rows once instead of once
 * per figure.
 */
export async function scopeStats(
  db: Queryable,
  scope: EventScope,
  bucketMs: number,
  topErrors: number,
): Promise<ScopeStats> {
  const { rows } = await db.query<ScopeRow>(
    `SELECT CASE WHEN GROUPING(event_type) = 0 THEN 'event_type'
                 WHEN GROUPING(server_id, tool_name) = 0 THEN 'tool'
                 WHEN GROUPING(bucket) = 0 THEN 'bucket'
                 WHEN GROUPING(code, outcome) = 0 THEN 'error'
                 ELSE 'all' END AS grouping,
            event_type, server_id, tool_name, bucket, code, outcome,
            count(*) AS n,
            count(ok) AS judged,
            count(*) FILTER (WHERE ok) AS succeeded,
            count(*) FILTER (WHERE NOT ok) AS failed,
            count(*) FILTER (WHERE outcome = 'timeout') AS timeouts,
            avg(COALESCE(request_bytes, 0) + COALESCE(response_bytes, 0))::float8 AS avg_bytes,
            max(COALESCE(request_bytes, 0) + COALESCE(response_bytes, 0)) AS max_bytes,
            max(timestamp) FILTER (WHERE NOT ok) AS last_failed_at,
            max(message) AS message,
            ${durationColumns}
     FROM (
       SELECT event_type, server_id, tool_name, outcome, ok, duration, timestamp, request_bytes, response_bytes,
              -- Only failures' messages: the sorts of the grouping sets then carry no event_data.
              CASE WHEN NOT ok THEN event_data -> 'error' ->> 'message' END AS message,
              date_bin(make_interval(secs => $6::float8 / 1000), timestamp,
                       $1::timestamptz AT TIME ZONE 'UTC') AS bucket,
              COALESCE(error_code, outcome, 'unknown') AS code
       FROM mcp_events WHERE ${scopeFilter}
     ) e
     GROUP BY GROUPING SETS ((), (event_type), (server_id, tool_name), (bucket), (code, outcome))`,
    [...scopeParams(scope), bucketMs],
  );
  const out: ScopeStats = { eventTypes: [], groups: [], errors: [], throughput: [] };
  for (const r of rows) {
    if (r.grouping === 'bucket') {
      out.throughput.push({ at: r.bucket!, n: r.n, errors: r.failed, avg: r.avg });
    } else if (r.grouping === 'error') {
      if (r.failed > 0) {
        out.errors.push({
          code: r.code!,
          outcome: r.outcome,
          n: r.failed,
          last_at: r.last_failed_at!,
          message: r.message,
        });
      }
    } else if (r.grouping !== 'tool' || r.tool_name !== null) {
      // The (server, tool) set also yields a group for events without a tool; it is not a tool.
      out.groups.push(r as GroupStatsRow);
      if (r.grouping === 'event_type') out.eventTypes.push({ event_type: r.event_type!, n: r.n });
    }
  }
  out.eventTypes.sort((a, b) => b.n - a.n || a.event_type.localeCompare(b.event_type));
  out.throughput.sort((a, b) => a.at.getTime() - b.at.getTime());
  out.errors.sort((a, b) => b.n - a.n || a.code.localeCompare(b.code));
  out.errors.length = Math.min(out.errors.length, topErrors);
  return out;
}

export interface ServerCallStatsRow extends DurationRow {
  server_id: number;
  n: number;
  judged: number;
  succeeded: number;
  timeouts: number;
}

export interface ConfigVersionRow extends DurationRow, SlotStats {
  server_id: number;
  config_version: number;
  n: number;
  judged: number;
  succeeded: number;
  timeouts: number;
  first_at: Date;
  last_at: Date;
}

/**
 * How calls met the server's slots (max_concurrency) and processes (`instances` of its current config):
 * execution time is a call's duration less its wait for a slot; a call is crowded when more calls than
 * processes ran with it.
 */
export interface SlotStats {
  /** Calls that say how long they waited (events recorded before the hub measured it do not). */
  slot_measured: number;
  /** Calls that had to wait for a slot. */
  queued: number;
  queue_ms_total: number;
  exec_ms_total: number;
  /** Calls with at most one call per process running (themselves included), and their mean execution time. */
  uncrowded: number;
  uncrowded_exec_avg: number | null;
  /** Calls that shared a process with others, their mean execution time and calls per process. */
  crowded: number;
  crowded_exec_avg: number | null;
  crowded_per_process: number | null;
}

/** Tool calls per server, and per (server, config version) the calls ran under, in one pass. */
export async function callStats(
  db: Queryable,
  scope: EventScope,
): Promise<{ serverCalls: ServerCallStatsRow[]; configVersions: ConfigVersionRow[] }> {
  const { rows } = await db.query<ConfigVersionRow & { per_version: boolean }>(
    `WITH processes AS (
       SELECT id, GREATEST(COALESCE((config ->> 'instances')::int, 1), 1) AS n FROM mcp_servers
     )
     SELECT GROUPING(config_version) = 0 AS per_version, server_id, config_version,
            count(*) AS n, count(ok) AS judged, count(*) FILTER (WHERE ok) AS succeeded,
            count(*) FILTER (WHERE outcome = 'timeout') AS timeouts,
            min(timestamp) AS first_at, max(timestamp) AS last_at,
            count(queue_ms) AS slot_measured,
            count(*) FILTER (WHERE queue_ms > 0) AS queued,
            COALESCE(sum(queue_ms), 0)::float8 AS queue_ms_total,
            COALESCE(sum(duration - queue_ms), 0)::float8 AS exec_ms_total,
            count(duration - queue_ms) FILTER (WHERE concurrency <= processes) AS uncrowded,
            avg(duration - queue_ms) FILTER (WHERE concurrency <= processes)::float8 AS uncrowded_exec_avg,
            count(duration - queue_ms) FILTER (WHERE concurrency > processes) AS crowded,
            avg(duration - queue_ms) FILTER (WHERE concurrency > processes)::float8 AS crowded_exec_avg,
            avg(concurrency::float8 / processes) FILTER (WHERE concurrency > processes) AS crowded_per_process,
            ${durationColumns}
     FROM (
       SELECT e.server_id, e.config_version, e.ok, e.outcome, e.timestamp, e.duration, e.queue_ms, e.concurrency,
              p.n AS processes
       FROM mcp_events e JOIN processes p ON p.id = e.server_id
       WHERE ${scopeFilter} AND event_type = 'tool_call'
     ) calls
     GROUP BY GROUPING SETS ((server_id, config_version), (server_id))`,
    scopeParams(scope),
  );
  const byServerVersion = (a: ConfigVersionRow, b: ConfigVersionRow) =>
    a.server_id - b.server_id || a.config_version - b.config_version;
  return {
    serverCalls: rows.filter((r) => !r.per_version).sort(byServerVersion),
    configVersions: rows.filter((r) => r.per_version && r.config_version !== null).sort(byServerVersion),
  };
}

export interface ScopeServerRow {
  id: number;
  name: string;
  transport: string;
  config: Record<string, unknown>;
  config_version: number;
  enabled: boolean;
  created_at: Date;
  last_call_at: Date | null;
}

/** The servers an analysis is about (one, or every live server), with their last tool call ever. */
export async function scopeServers(db: Queryable, serverId: number | undefined): Promise<ScopeServerRow[]> {
  const { rows } = await db.query<ScopeServerRow>(
    `SELECT s.id, s.name, s.transport, s.config, s.config_version, s.enabled, s.created_at,
            (SELECT max(e.timestamp) FROM mcp_events e
             WHERE e.server_id = s.id AND e.event_type = 'tool_call') AS last_call_at
     FROM mcp_servers s
     WHERE s.deleted_at IS NULL AND ($1::int IS NULL OR s.id = $1)
     ORDER BY s.id`,
    [serverId ?? null],
  );
  return rows;
}

export interface ToolPairRow {
  server_id: number;
  tool_name: string;
  next_server: number;
  next_tool: string;
  support: number;
  first_calls: number;
}

// A tool call of the pattern: on a server, named, and made by a stream or client (the actor). The partial
// index mcp_events_actor_calls (migration 0006) covers exactly these rows.
const actor = 'COALESCE(stream_id, client_id)';
const patternCall = `event_type = 'tool_call' AND server_id IS NOT NULL AND tool_name IS NOT NULL`;
const windowStart = `($1::timestamptz AT TIME ZONE 'UTC')`;
const windowEnd = `($2::timestamptz AT TIME ZONE 'UTC')`;
/** How soon one call must follow another to count as a pattern. */
const patternGap = `interval '10 minutes'`;

// Every server: one sort of the window's most recent calls by actor finds each call's successor.
const allPairs = `WITH calls AS (
       SELECT server_id, tool_name, timestamp, ${actor} COLLATE "C" AS actor
       FROM mcp_events
       WHERE timestamp >= ${windowStart} AND timestamp < ${windowEnd} AND ${patternCall} AND ${actor} IS NOT NULL
       ORDER BY timestamp DESC
       LIMIT $4
     ), seq AS (
       SELECT server_id, tool_name, timestamp,
              lead(server_id) OVER w AS next_server, lead(tool_name) OVER w AS next_tool,
              lead(timestamp) OVER w AS next_at
       FROM calls WINDOW w AS (PARTITION BY actor ORDER BY timestamp)
     ), firsts AS (
       SELECT server_id, tool_name, count(*) AS n FROM calls GROUP BY server_id, tool_name
     ), pairs AS (
       SELECT server_id, tool_name, next_server, next_tool, count(*) AS n
       FROM seq
       WHERE next_server IS NOT NULL AND next_server <> server_id AND next_at - timestamp <= ${patternGap}
       GROUP BY server_id, tool_name, next_server, next_tool
     )
     SELECT p.server_id, p.tool_name, p.next_server, p.next_tool, p.n AS support, f.n AS first_calls
     FROM pairs p JOIN firsts f ON f.server_id = p.server_id AND f.tool_name = p.tool_name
     WHERE p.n >= $3
     ORDER BY p.n DESC, p.server_id, p.tool_name`;

// The actor's call right after (direction '>') or right before ('<') call b, in the window, if it is at most
// the pattern's 10 minutes away. The bound matters for speed as much as for the rule: a B-tree scan reads
// every matching entry of the leaf page it lands on, even under LIMIT 1, and the bound ends that read at
// b's neighbourhood instead of the actor's whole page of calls.
const neighbour = (direction: '>' | '<') => `(
       SELECT e.id, e.server_id, e.tool_name FROM mcp_events e
       WHERE COALESCE(e.stream_id, e.client_id) = b.actor AND e.${patternCall.replaceAll(' AND ', ' AND e.')}
         AND (e.timestamp, e.id) ${direction} (b.timestamp, b.id)
         AND e.timestamp ${direction === '>' ? `< ${windowEnd}` : `>= ${windowStart}`}
         AND e.timestamp ${direction === '>' ? `<= b.timestamp + ${patternGap}` : `>= b.timestamp - ${patternGap}`}
       ORDER BY e.timestamp ${direction === '>' ? 'ASC' : 'DESC'}, e.id ${direction === '>' ? 'ASC' : 'DESC'}
       LIMIT 1)`;

// One server ($5): only its own most recent calls are read, each followed to the actor's next call by one
// probe of mcp_events_actor_calls. A call's previous one matters only when it is on another server, so
// the backward probe is made only for the calls no forward probe reached (a call's predecessor is the call
// whose successor it is, both within 10 minutes): in a run of the server's own calls, only the first. The
// calls of other servers that precede one of its calls are counted (for the confidence) only for the few
// pairs with enough support.
const serverPairs = `WITH base AS (
       SELECT id, server_id, tool_name, timestamp, ${actor} AS actor
       FROM mcp_events
       WHERE server_id = $5 AND timestamp >= ${windowStart} AND timestamp < ${windowEnd}
         AND ${patternCall} AND ${actor} IS NOT NULL
       ORDER BY timestamp DESC
       LIMIT $4
     ), forward AS (
       SELECT b.server_id, b.tool_name, n.id AS next_id, n.server_id AS next_server, n.tool_name AS next_tool
       FROM base b CROSS JOIN LATERAL ${neighbour('>')} n
     ), unreached AS MATERIALIZED (
       -- Materialized so that the anti-join runs before the backward probes, not after them.
       SELECT * FROM base b WHERE NOT EXISTS (SELECT 1 FROM forward f WHERE f.next_id = b.id)
     ), edges AS (
       SELECT server_id, tool_name, next_server, next_tool
       FROM forward
       WHERE next_server <> server_id
       UNION ALL
       SELECT p.server_id, p.tool_name, b.server_id, b.tool_name
       FROM unreached b CROSS JOIN LATERAL ${neighbour('<')} p
       WHERE p.server_id <> b.server_id
     ), pairs AS (
       SELECT server_id, tool_name, next_server, next_tool, count(*) AS n
       FROM edges
       GROUP BY server_id, tool_name, next_server, next_tool
       HAVING count(*) >= $3
     ), span AS (
       -- The time the sample covers: the whole window unless the server made more calls than the sample.
       SELECT CASE WHEN count(*) < $4 THEN ${windowStart} ELSE min(timestamp) END AS since FROM base
     )
     SELECT p.server_id, p.tool_name, p.next_server, p.next_tool, p.n AS support,
            CASE WHEN p.server_id = $5
              THEN (SELECT count(*) FROM base f WHERE f.tool_name = p.tool_name)
              ELSE (SELECT count(*) FROM mcp_events e
                    WHERE e.server_id = p.server_id AND e.tool_name = p.tool_name AND e.event_type = 'tool_call'
                      AND COALESCE(e.stream_id, e.client_id) IS NOT NULL
                      AND e.timestamp >= (SELECT since FROM span) AND e.timestamp < ${windowEnd})
            END AS first_calls
     FROM pairs p
     ORDER BY p.n DESC, p.server_id, p.tool_name`;

/**
 * One server's own recent calls are a denser sample than every server's: each is followed to both of its
 * neighbours and every pair found involves the server. So it mines this share of the sample (200 calls of
 * the default 5,000, enough to show a habit above the rule's thresholds), at two row reads a call (three for
 * the first of a run): about the cost of one of analyze's aggregates over a day, where more calls made
 * mining the slowest statement.
 */
export const SERVER_SAMPLE_SHARE = 25;

/**
 * Tool calls on two different servers made one right after the other by the same stream or client within
 * 10 minutes (the pattern of suggest_bundle_from_patterns(), restricted to the window); the support of a
 * pair is how often it occurred, first_calls how often its first tool was called. Only the most recent tool
 * calls are mined (a habit that is real shows in the recent calls): `sample` calls of every server when no
 * server is given, else `sample / SERVER_SAMPLE_SHARE` calls of that server, with the pairs in which it
 * comes first or second.
 */
export async function toolPairs(
  db: Queryable,
  scope: EventScope,
  minSupport: number,
  sample: number,
): Promise<ToolPairRow[]> {
  const params: unknown[] = [scope.since.toISOString(), scope.until.toISOString(), minSupport, sample];
  const { rows } =
    scope.serverId === undefined
      ? await db.query<ToolPairRow>(allPairs, params)
      : await db.query<ToolPairRow>(serverPairs, [
          ...params.slice(0, 3),
          Math.max(1, Math.ceil(sample / SERVER_SAMPLE_SHARE)),
          scope.serverId,
        ]);
  return rows;
}

export interface ListFilters {
  since?: Date | undefined;
  until?: Date | undefined;
  serverId?: number | undefined;
  bundleId?: string | undefined;
  streamId?: string | undefined;
  eventType?: string | undefined;
  toolName?: string | undefined;
  outcome?: string | undefined;
}

/** Where a page ends: the timestamp as PostgreSQL text (microseconds kept, which a JS Date would lose) and id. */
export interface ListPosition {
  ts: string;
  id: number;
}

export type ListedEventRow = Record<string, unknown> & { id: number; timestamp: Date; position_ts: string };

/** A page of events, newest first: keyset pagination on (timestamp, id), `limit` rows from `after`. */
export async function listEventsPage(
  db: Queryable,
  f: ListFilters,
  after: ListPosition | undefined,
  limit: number,
): Promise<ListedEventRow[]> {
  const { rows } = await db.query<ListedEventRow>(
    `SELECT id, timestamp, event_type, server_id, bundle_id, stream_id, tool_name, outcome, ok, error_code, source,
            client_id, config_version, duration, request_bytes, response_bytes, event_data,
            to_char(timestamp, 'YYYY-MM-DD"T"HH24:MI:SS.US') AS position_ts
     FROM mcp_events
     WHERE ($1::timestamptz IS NULL OR timestamp >= ($1::timestamptz AT TIME ZONE 'UTC'))
       AND ($2::timestamptz IS NULL OR timestamp < ($2::timestamptz AT TIME ZONE 'UTC'))
       AND ($3::int IS NULL OR server_id = $3)
       AND ($4::varchar IS NULL OR bundle_id = $4)
       AND ($5::varchar IS NULL OR stream_id = $5)
       AND ($6::varchar IS NULL OR event_type = $6)
       AND ($7::varchar IS NULL OR tool_name = $7)
       AND ($8::varchar IS NULL OR outcome = $8)
       AND ($9::timestamp IS NULL OR (timestamp, id) < ($9::timestamp, $10::int))
     ORDER BY timestamp DESC, id DESC
     LIMIT $11`,
    [
      f.since?.toISOString() ?? null,
      f.until?.toISOString() ?? null,
      f.serverId ?? null,
      f.bundleId ?? null,
      f.streamId ?? null,
      f.eventType ?? null,
      f.toolName ?? null,
      f.outcome ?? null,
      after?.ts ?? null,
      after?.id ?? null,
      limit,
    ],
  );
  return rows;
}
