import { configDefaults } from '../servers/payloads.js';
import type { BucketSize } from './payloads.js';
import { bucketSizes } from './payloads.js';
import type {
  ConfigVersionRow,
  DurationRow,
  ErrorRow,
  EventTypeCountRow,
  GroupStatsRow,
  ScopeServerRow,
  ServerCallStatsRow,
  ThroughputRow,
  ToolPairRow,
} from './queries.js';

/**
 * Event analysis as pure functions: the database computes the figures (queries.ts), these shape them and
 * turn them into recommendations. Each rule states its thresholds here, so the response's evidence and
 * the documentation can quote them.
 */
export const RULES = Object.freeze({
  /** p95 at or above this share of timeout_ms (under the current config) with at least minCalls calls. */
  p95NearTimeout: { ratio: 0.8, minCalls: 20 },
  /** Share of tool calls that timed out: warning from `warn`, critical from `critical`. */
  frequentTimeouts: { warn: 0.05, critical: 0.2, minTimeouts: 5 },
  /** A config version whose error rate rose by `rise` (and at least doubled) over the version before. */
  errorBurst: { rise: 0.15, minCalls: 10 },
  /** Average request + response size of a tool, in bytes. */
  largePayload: { avgBytes: 256 * 1024, minCalls: 5 },
  /**
   * Calls waited for a max_concurrency slot: at least `share` of them, and the waiting adds up to at least
   * `waitRatio` of the time spent executing (critical from `criticalRatio`).
   */
  queueing: { share: 0.1, waitRatio: 0.25, criticalRatio: 1, minCalls: 20 },
  /**
   * A stdio server's processes handle calls one at a time: calls that shared a process with others executed
   * at least `slowdown` times (and `minExtraMs` longer) than calls that had a process to themselves.
   */
  saturation: { slowdown: 2, minExtraMs: 5, minCalls: 10 },
  /** Tools on two servers called one after the other this often (support) and this consistently. */
  bundle: { minSupport: 5, minConfidence: 0.8 },
});

export interface DurationStats {
  count: number;
  avg: number | null;
  p50: number | null;
  p95: number | null;
  p99: number | null;
  max: number | null;
}

export type Severity = 'info' | 'warning' | 'critical';

export interface Recommendation {
  id: string;
  severity: Severity;
  serverId: number | null;
  message: string;
  evidence: Record<string, unknown>;
  suggestedChange?: Record<string, unknown>;
}

const round = (v: number | null, digits = 2): number | null =>
  v === null ? null : Math.round(v * 10 ** digits) / 10 ** digits;

const rate = (part: number, whole: number): number | null => (whole === 0 ? null : part / whole);

export function durationStats(r: DurationRow): DurationStats {
  return {
    count: r.timed,
    avg: round(r.avg),
    p50: round(r.p50),
    p95: round(r.p95),
    p99: round(r.p99),
    max: r.max,
  };
}

/** A bucket that keeps the series within `maxPoints` when none is asked for. */
export function autoBucket(windowMs: number, maxPoints = 200): BucketSize {
  const sizes = Object.entries(bucketSizes) as [BucketSize, number][];
  for (const [name, ms] of sizes) if (windowMs / ms <= maxPoints) return name;
  return '1d';
}

export interface ThroughputPoint {
  at: string;
  events: number;
  errors: number;
  avgDurationMs: number | null;
}

/** The series with every bucket of the window, empty ones as zeros (charts need the gaps). */
export function fillThroughput(
  rows: ThroughputRow[],
  since: Date,
  until: Date,
  bucketMs: number,
): ThroughputPoint[] {
  const byTime = new Map(rows.map((r) => [r.at.getTime(), r]));
  const points: ThroughputPoint[] = [];
  for (let t = since.getTime(); t < until.getTime(); t += bucketMs) {
    const r = byTime.get(t);
    points.push({
      at: new Date(t).toISOString(),
      events: r?.n ?? 0,
      errors: r?.errors ?? 0,
      avgDurationMs: round(r?.avg ?? null),
    });
  }
  return points;
}

export interface AnalysisInput {
  since: Date;
  until: Date;
  bucket: BucketSize;
  eventTypes: EventTypeCountRow[];
  groups: GroupStatsRow[];
  serverCalls: ServerCallStatsRow[];
  errors: ErrorRow[];
  throughput: ThroughputRow[];
  configVersions: ConfigVersionRow[];
  servers: ScopeServerRow[];
  pairs: ToolPairRow[];
}

export function buildAnalysis(input: AnalysisInput) {
  const all = input.groups.find((g) => g.grouping === 'all');
  const byEventType: Record<string, DurationStats & { successRate: number | null }> = {};
  for (const g of input.groups) {
    if (g.grouping === 'event_type' && g.event_type !== null) {
      byEventType[g.event_type] = { ...durationStats(g), successRate: rate(g.succeeded, g.judged) };
    }
  }
  const tools = input.groups
    .filter((g) => g.grouping === 'tool')
    .sort(
      (a, b) =>
        b.n - a.n || (a.server_id ?? 0) - (b.server_id ?? 0) || a.tool_name!.localeCompare(b.tool_name!),
    );
  const names = new Map(input.servers.map((s) => [s.id, s.name]));
  const toolKey = (g: GroupStatsRow) => ({
    serverId: g.server_id,
    serverName: names.get(g.server_id ?? -1) ?? null,
    tool: g.tool_name,
  });

  return {
    totalEvents: all?.n ?? 0,
    window: { since: input.since.toISOString(), until: input.until.toISOString() },
    eventTypes: Object.fromEntries(input.eventTypes.map((r) => [r.event_type, r.n])),
    durations: {
      ...durationStats(all ?? emptyGroup),
      byEventType,
      byTool: tools.map((g) => ({ ...toolKey(g), ...durationStats(g) })),
    },
    successRate: {
      overall: rate(all?.succeeded ?? 0, all?.judged ?? 0),
      judged: all?.judged ?? 0,
      byTool: tools.map((g) => ({ ...toolKey(g), calls: g.n, successRate: rate(g.succeeded, g.judged) })),
    },
    errors: input.errors.map((e) => ({
      code: e.code,
      outcome: e.outcome,
      count: e.n,
      lastAt: e.last_at.toISOString(),
      message: e.message,
    })),
    throughput: {
      bucket: input.bucket,
      points: fillThroughput(input.throughput, input.since, input.until, bucketSizes[input.bucket]),
    },
    configVersions: input.configVersions.map((v) => ({
      serverId: v.server_id,
      configVersion: v.config_version,
      calls: v.n,
      successRate: rate(v.succeeded, v.judged),
      timeouts: v.timeouts,
      durations: durationStats(v),
      firstAt: v.first_at.toISOString(),
      lastAt: v.last_at.toISOString(),
    })),
    recommendations: recommend(input),
  };
}

const emptyGroup: DurationRow = { timed: 0, avg: null, p50: null, p95: null, p99: null, max: null };

const num = (v: unknown, fallback: number): number =>
  typeof v === 'number' && Number.isFinite(v) ? v : fallback;

const kib = (bytes: number) => `${Math.round(bytes / 1024)} KiB`;

const MAX_INSTANCES = 16;
const MAX_CONCURRENCY = 1024;

/**
 * Queueing and saturation under the config in force. When the processes are saturated, more slots would
 * only move the queue into them: the way out is more processes, so both rules then suggest `instances`.
 */
function slotRules(server: ScopeServerRow, v: ConfigVersionRow): Recommendation[] {
  const out: Recommendation[] = [];
  const instances = num(server.config.instances, configDefaults.instances);
  const maxConcurrency = num(server.config.max_concurrency, configDefaults.max_concurrency);
  const moreInstances = { instances: Math.min(MAX_INSTANCES, instances * 2) };
  const { saturation, queueing } = RULES;
  const slowdown =
    v.uncrowded_exec_avg && v.crowded_exec_avg !== null ? v.crowded_exec_avg / v.uncrowded_exec_avg : null;
  const saturated =
    server.transport === 'stdio' &&
    instances < MAX_INSTANCES &&
    slowdown !== null &&
    v.uncrowded >= saturation.minCalls &&
    v.crowded >= saturation.minCalls &&
    slowdown >= saturation.slowdown &&
    v.crowded_exec_avg! - v.uncrowded_exec_avg! >= saturation.minExtraMs;
  if (saturated) {
    out.push({
      id: 'stdio_saturated',
      severity: 'warning',
      serverId: server.id,
      message: `${server.name}: calls that shared a process with others took ${round(slowdown, 1)}× as long (${Math.round(v.crowded_exec_avg!)} ms vs ${Math.round(v.uncrowded_exec_avg!)} ms): its ${instances} process${instances === 1 ? '' : 'es'} handle${instances === 1 ? 's' : ''} calls one at a time; raise instances`,
      evidence: {
        configVersion: v.config_version,
        instances,
        uncrowdedCalls: v.uncrowded,
        uncrowdedExecAvgMs: round(v.uncrowded_exec_avg),
        crowdedCalls: v.crowded,
        crowdedExecAvgMs: round(v.crowded_exec_avg),
        callsPerProcessWhenCrowded: round(v.crowded_per_process),
        slowdown: round(slowdown, 3),
        threshold: saturation.slowdown,
      },
      suggestedChange: moreInstances,
    });
  }
  const share = rate(v.queued, v.slot_measured);
  const waitRatio = v.exec_ms_total > 0 ? v.queue_ms_total / v.exec_ms_total : null;
  if (
    v.slot_measured >= queueing.minCalls &&
    share !== null &&
    waitRatio !== null &&
    share >= queueing.share &&
    waitRatio >= queueing.waitRatio
  ) {
    const waited = v.queue_ms_total / v.queued;
    out.push({
      id: 'queueing_at_max_concurrency',
      severity: waitRatio >= queueing.criticalRatio ? 'critical' : 'warning',
      serverId: server.id,
      message: `${server.name}: ${Math.round(share * 100)}% of tool calls waited for one of its ${maxConcurrency} slots (${Math.round(waited)} ms on average); calls spent ${Math.round(waitRatio * 100)}% as much time waiting as executing; ${saturated ? 'its processes are saturated: raise instances' : 'raise max_concurrency if the server can take more calls at once'}`,
      evidence: {
        configVersion: v.config_version,
        calls: v.slot_measured,
        queuedCalls: v.queued,
        queuedShare: round(share, 4),
        avgWaitMs: round(waited),
        waitMsTotal: Math.round(v.queue_ms_total),
        execMsTotal: Math.round(v.exec_ms_total),
        waitToExecRatio: round(waitRatio, 3),
        maxConcurrency,
        threshold: { share: queueing.share, waitRatio: queueing.waitRatio },
      },
      suggestedChange: saturated
        ? moreInstances
        : { max_concurrency: Math.min(MAX_CONCURRENCY, maxConcurrency * 2) },
    });
  }
  return out;
}

/** Rule-based recommendations, each with the figures that triggered it; most severe first. */
export function recommend(input: AnalysisInput): Recommendation[] {
  const out: Recommendation[] = [];
  const calls = new Map(input.serverCalls.map((s) => [s.server_id, s]));

  for (const server of input.servers) {
    const timeoutMs = num(server.config.timeout_ms, configDefaults.timeout_ms);
    const stats = calls.get(server.id);
    const versions = input.configVersions.filter((v) => v.server_id === server.id);

    // Latency is judged under the config in force: older versions may have had another timeout.
    const current = versions.find((v) => v.config_version === server.config_version);
    const { p95NearTimeout } = RULES;
    if (
      current?.p95 != null &&
      current.timed >= p95NearTimeout.minCalls &&
      current.p95 >= p95NearTimeout.ratio * timeoutMs
    ) {
      const suggested = Math.min(3_600_000, Math.ceil(Math.max(current.p99 ?? current.p95, timeoutMs) * 1.5));
      out.push({
        id: 'p95_near_timeout',
        severity: current.p95 >= timeoutMs ? 'critical' : 'warning',
        serverId: server.id,
        message: `${server.name}: p95 latency ${Math.round(current.p95)} ms is ${Math.round((100 * current.p95) / timeoutMs)}% of timeout_ms (${timeoutMs} ms); raise timeout_ms or find out why calls are slow`,
        evidence: {
          configVersion: current.config_version,
          calls: current.n,
          p95Ms: round(current.p95),
          p99Ms: round(current.p99),
          timeoutMs,
          ratio: round(current.p95 / timeoutMs, 3),
          threshold: p95NearTimeout.ratio,
        },
        suggestedChange: { timeout_ms: suggested },
      });
    }

    if (current) out.push(...slotRules(server, current));

    const { frequentTimeouts } = RULES;
    if (stats && stats.n > 0) {
      const share = stats.timeouts / stats.n;
      if (stats.timeouts >= frequentTimeouts.minTimeouts && share >= frequentTimeouts.warn) {
        out.push({
          id: 'frequent_timeouts',
          severity: share >= frequentTimeouts.critical ? 'critical' : 'warning',
          serverId: server.id,
          message: `${server.name}: ${stats.timeouts} of ${stats.n} tool calls (${Math.round(share * 100)}%) timed out`,
          evidence: {
            calls: stats.n,
            timeouts: stats.timeouts,
            timeoutRate: round(share, 4),
            timeoutMs,
            threshold: frequentTimeouts.warn,
          },
          suggestedChange: { timeout_ms: Math.min(3_600_000, timeoutMs * 2) },
        });
      }
    }

    const { errorBurst } = RULES;
    for (let i = versions.length - 1; i > 0; i--) {
      const cur = versions[i]!;
      const prev = versions[i - 1]!;
      if (cur.judged < errorBurst.minCalls || prev.judged < errorBurst.minCalls) continue;
      const curRate = 1 - cur.succeeded / cur.judged;
      const prevRate = 1 - prev.succeeded / prev.judged;
      if (curRate >= prevRate + errorBurst.rise && curRate >= 2 * prevRate) {
        out.push({
          id: 'error_burst_after_config_change',
          severity: 'critical',
          serverId: server.id,
          message: `${server.name}: error rate went from ${Math.round(prevRate * 100)}% under config version ${prev.config_version} to ${Math.round(curRate * 100)}% under version ${cur.config_version}; review or revert that change`,
          evidence: {
            configVersion: cur.config_version,
            previousConfigVersion: prev.config_version,
            errorRate: round(curRate, 4),
            previousErrorRate: round(prevRate, 4),
            calls: cur.judged,
            previousCalls: prev.judged,
            changedAt: cur.first_at.toISOString(),
          },
          suggestedChange: { revertToConfigVersion: prev.config_version },
        });
        break;
      }
    }

    // Idle: registered before the window began, enabled, and not one tool call in it.
    if (server.enabled && server.created_at.getTime() < input.since.getTime() && (!stats || stats.n === 0)) {
      out.push({
        id: 'idle_server',
        severity: 'info',
        serverId: server.id,
        message: `${server.name}: no tool call since ${server.last_call_at ? server.last_call_at.toISOString() : 'it was registered'}; disable or remove it to free its resources`,
        evidence: {
          callsInWindow: 0,
          lastCallAt: server.last_call_at?.toISOString() ?? null,
          registeredAt: server.created_at.toISOString(),
        },
        suggestedChange: { enabled: false },
      });
    }
  }

  const { largePayload } = RULES;
  const names = new Map(input.servers.map((s) => [s.id, s.name]));
  for (const g of input.groups) {
    if (g.grouping !== 'tool' || g.avg_bytes === null) continue;
    if (g.n >= largePayload.minCalls && g.avg_bytes >= largePayload.avgBytes) {
      out.push({
        id: 'large_payloads',
        severity: 'warning',
        serverId: g.server_id,
        message: `${names.get(g.server_id ?? -1) ?? `server ${g.server_id}`}/${g.tool_name}: calls move ${kib(g.avg_bytes)} on average (up to ${kib(g.max_bytes ?? 0)}); trim or paginate results, or pass references instead of content`,
        evidence: {
          tool: g.tool_name,
          calls: g.n,
          avgBytes: Math.round(g.avg_bytes),
          maxBytes: g.max_bytes,
          threshold: largePayload.avgBytes,
        },
      });
    }
  }

  const { bundle } = RULES;
  for (const p of input.pairs) {
    const confidence = p.support / p.first_calls;
    if (p.support < bundle.minSupport || confidence < bundle.minConfidence) continue;
    out.push({
      id: 'bundle_tools',
      severity: 'info',
      serverId: p.server_id,
      message: `${p.tool_name} on ${names.get(p.server_id) ?? `server ${p.server_id}`} is followed by ${p.next_tool} on ${names.get(p.next_server) ?? `server ${p.next_server}`} in ${Math.round(confidence * 100)}% of calls; bundle them`,
      evidence: {
        serverIds: [p.server_id, p.next_server],
        tools: [p.tool_name, p.next_tool],
        support: p.support,
        confidence: round(confidence, 4),
        suggestions: '/api/mcp/bundle/suggestions',
      },
      suggestedChange: {
        bundle: {
          serverIds: [p.server_id, p.next_server],
          workflow: {
            steps: [
              { server: 0, tool: p.tool_name, args: {} },
              { server: 1, tool: p.next_tool, args: {} },
            ],
          },
        },
      },
    });
  }

  const order: Record<Severity, number> = { critical: 0, warning: 1, info: 2 };
  return out.sort((a, b) => order[a.severity] - order[b.severity]);
}
