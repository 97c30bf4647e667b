import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drivers } from '../helpers/db.js';
import { insertEvents, percentileCont, prng, type TestEvent } from '../helpers/events.js';
import { startTestHub, type TestHub } from '../helpers/hub.js';

const DAY = 86_400_000;
const MIN = 60_000;
// Each scenario lives in a day of its own, long ago enough that the hub's own api_call events never fall in.
const base = Date.UTC(2026, 0, 1);
const day = (n: number) => ({ since: new Date(base + n * DAY), until: new Date(base + (n + 1) * DAY) });
const at = (n: number, offsetMs: number) => new Date(base + n * DAY + offsetMs);

const HEALTHY = 0;
const SLOW = 1;
const TIMEOUTS = 2;
const BURST = 3;
const LARGE = 4;
const TOGETHER = 5;
const IDLE = 6;
const QUEUED = 7;
const SATURATED = 8;

/** A healthy day: all three servers busy, fast, few tool errors, small payloads, no fixed sequences. */
function healthyDay(n: number, seed: number): TestEvent[] {
  const rand = prng(seed);
  const events: TestEvent[] = [];
  const tools: [number, string, number][] = [
    [1, 'analyze_seo', 300],
    [2, 'generate_content', 150],
    [3, 'analyze_image', 60],
  ];
  for (const [serverId, tool, count] of tools) {
    for (let i = 0; i < count; i++) {
      const failed = i % 50 === 7;
      events.push({
        event_type: 'tool_call',
        server_id: serverId,
        tool_name: tool,
        timestamp: at(n, Math.floor(rand() * DAY)),
        duration: 5 + Math.floor(rand() * rand() * 3000),
        outcome: failed ? 'tool_error' : 'success',
        ok: !failed,
        error_code: failed ? 'SB_ERR_TOOL_ERROR' : null,
        event_data: failed ? { error: { code: 'SB_ERR_TOOL_ERROR', message: 'bad html' } } : {},
        config_version: 1,
        request_bytes: 200 + Math.floor(rand() * 2000),
        response_bytes: 500 + Math.floor(rand() * 8000),
        source: 'rest',
        // A few short waits for a slot; calls alone or with one or two others, no slower when together.
        queue_ms: i % 40 === 3 ? 20 : 0,
        concurrency: 1 + (i % 3),
      });
    }
  }
  for (let i = 0; i < 80; i++) {
    events.push({
      event_type: 'api_call',
      timestamp: at(n, Math.floor(rand() * DAY)),
      duration: 1 + Math.floor(rand() * 40),
      ok: i % 20 !== 0,
      outcome: i % 20 !== 0 ? 'success' : 'rejected',
      error_code: i % 20 !== 0 ? null : 'SB_ERR_VALIDATION',
      event_data: { method: 'GET', status: i % 20 !== 0 ? 200 : 400 },
    });
  }
  for (let i = 0; i < 5; i++) {
    events.push({ event_type: 'server_change', server_id: 1, timestamp: at(n, i * 1000) });
  }
  return events;
}

function scenarios(): TestEvent[] {
  const events: TestEvent[] = [...healthyDay(HEALTHY, 1)];
  const call = (n: number, offset: number, e: Partial<TestEvent>): TestEvent => ({
    event_type: 'tool_call',
    server_id: 1,
    tool_name: 'analyze_seo',
    timestamp: at(n, offset),
    duration: 100,
    outcome: 'success',
    ok: true,
    config_version: 1,
    ...e,
  });
  // Slow: server 1 (timeout_ms 30,000 by default) answers in 25–29.5 s.
  for (let i = 0; i < 40; i++) events.push(call(SLOW, i * MIN, { duration: 25_000 + i * 100 }));
  // Timeouts: 12 of 100 calls of server 2 time out.
  for (let i = 0; i < 100; i++) {
    const timedOut = i % 8 === 0 && i < 96;
    events.push(
      call(TIMEOUTS, i * MIN, {
        server_id: 2,
        tool_name: 'generate_content',
        duration: timedOut ? 30_000 : 300,
        outcome: timedOut ? 'timeout' : 'success',
        ok: !timedOut,
        error_code: timedOut ? 'SB_ERR_UPSTREAM_TIMEOUT' : null,
      }),
    );
  }
  // Burst: server 2, 2% errors under config version 1, 40% under version 2.
  for (let i = 0; i < 100; i++) {
    const v2 = i >= 50;
    const failed = v2 ? i % 5 < 2 : i === 10;
    events.push(
      call(BURST, i * MIN, {
        server_id: 2,
        tool_name: 'generate_content',
        config_version: v2 ? 2 : 1,
        outcome: failed ? 'protocol_error' : 'success',
        ok: !failed,
        error_code: failed ? 'SB_ERR_UPSTREAM_PROTOCOL' : null,
      }),
    );
  }
  // Large: server 3's optimize_images moves ~600 KiB per call.
  for (let i = 0; i < 10; i++) {
    events.push(
      call(LARGE, i * MIN, {
        server_id: 3,
        tool_name: 'optimize_images',
        request_bytes: 500_000 + i * 10_000,
        response_bytes: 100_000,
      }),
    );
  }
  // Together: client c1 always follows seo/analyze_seo with content/generate_content.
  for (let i = 0; i < 8; i++) {
    events.push(call(TOGETHER, i * 20 * MIN, { client_id: 'c1' }));
    events.push(
      call(TOGETHER, i * 20 * MIN + 5_000, { server_id: 2, tool_name: 'generate_content', client_id: 'c1' }),
    );
  }
  // Idle: servers 1 and 2 work, server 3 (registered long before) makes no call.
  for (let i = 0; i < 30; i++) {
    events.push(call(IDLE, i * MIN, {}));
    events.push(call(IDLE, i * MIN, { server_id: 2, tool_name: 'generate_content' }));
  }
  // Queued: server 2 (content) executes in 200 ms however many calls run, but half its calls first wait
  // 300 ms for a slot.
  for (let i = 0; i < 100; i++) {
    const waited = i % 2 === 0 ? 300 : 0;
    events.push(
      call(QUEUED, i * MIN, {
        server_id: 2,
        tool_name: 'generate_content',
        duration: 200 + waited,
        queue_ms: waited,
        concurrency: 1 + (i % 8),
      }),
    );
  }
  // Saturated: server 1 (seo, stdio, one process) takes 100 ms per call running with it: one at a time.
  for (let i = 0; i < 100; i++) {
    const running = 1 + (i % 5);
    events.push(call(SATURATED, i * MIN, { duration: 100 * running, queue_ms: 0, concurrency: running }));
  }
  return events;
}

interface Stats {
  count: number;
  avg: number | null;
  p50: number | null;
  p95: number | null;
  p99: number | null;
  max: number | null;
}

function reference(values: number[]): Stats {
  return {
    count: values.length,
    avg: values.length ? values.reduce((a, b) => a + b, 0) / values.length : null,
    p50: percentileCont(values, 0.5),
    p95: percentileCont(values, 0.95),
    p99: percentileCont(values, 0.99),
    max: values.length ? Math.max(...values) : null,
  };
}

function expectStats(actual: Stats, expected: Stats) {
  expect(actual.count).toBe(expected.count);
  expect(actual.max).toBe(expected.max);
  for (const k of ['avg', 'p50', 'p95', 'p99'] as const) {
    if (expected[k] === null) expect(actual[k]).toBeNull();
    // The API rounds to 2 decimals.
    else expect(actual[k]).toBeCloseTo(expected[k]!, 2);
  }
}

const durations = (events: TestEvent[]) =>
  events.filter((e) => typeof e.duration === 'number').map((e) => e.duration as number);

describe.each(drivers)('GET /api/mcp/events/analyze on %s', (driver) => {
  let t: TestHub;
  const all = scenarios();
  const inDay = (n: number) => all.filter((e) => e.timestamp >= day(n).since && e.timestamp < day(n).until);

  beforeAll(async () => {
    // The events are dated 2026-01: keep the retention job off them however long the suite runs.
    t = await startTestHub(driver, { SWITCHBOARD_EVENT_RETENTION_DAYS: 3650 });
    // Server 3 was registered before the idle day (and after the other scenarios' days).
    await t.hub.db.query('UPDATE mcp_servers SET created_at = $1 WHERE id = 3', [
      new Date(day(IDLE).since.getTime() - 3_600_000).toISOString(),
    ]);
    await insertEvents(t.hub.db, all);
  });
  afterAll(() => t?.close());

  const analyze = async (query: Record<string, string | number>) => {
    const qs = new URLSearchParams(
      Object.entries(query).map(([k, v]): [string, string] => [k, String(v)]),
    ).toString();
    const res = await t.api({ method: 'GET', url: `/api/mcp/events/analyze?${qs}` });
    return res;
  };
  const window = (n: number) => ({ since: day(n).since.toISOString(), until: day(n).until.toISOString() });

  it('computes every figure of a day exactly: counts, percentiles, success rates, errors, throughput', async () => {
    const res = await analyze({ ...window(HEALTHY), bucket: '1h' });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    const events = inDay(HEALTHY);
    expect(body.success).toBe(true);
    expect(body.totalEvents).toBe(events.length);
    expect(body.window).toEqual(window(HEALTHY));
    expect(body.eventTypes).toEqual({ tool_call: 510, api_call: 80, server_change: 5 });

    expectStats(body.durations, reference(durations(events)));
    for (const type of ['tool_call', 'api_call']) {
      expectStats(
        body.durations.byEventType[type],
        reference(durations(events.filter((e) => e.event_type === type))),
      );
    }
    expect(body.durations.byEventType.server_change).toMatchObject({ count: 0, p50: null });
    expect(body.durations.byTool).toHaveLength(3);
    for (const tool of body.durations.byTool) {
      const own = events.filter((e) => e.tool_name === tool.tool && e.server_id === tool.serverId);
      expectStats(tool, reference(durations(own)));
    }
    expect(body.durations.byTool.map((x: { tool: string }) => x.tool)).toEqual([
      'analyze_seo',
      'generate_content',
      'analyze_image',
    ]);

    const judged = events.filter((e) => typeof e.ok === 'boolean');
    expect(body.successRate.judged).toBe(judged.length);
    expect(body.successRate.overall).toBeCloseTo(judged.filter((e) => e.ok).length / judged.length, 10);
    const seo = body.successRate.byTool.find((x: { tool: string }) => x.tool === 'analyze_seo');
    expect(seo).toMatchObject({ serverId: 1, serverName: 'seo', calls: 300, successRate: 294 / 300 });

    expect(body.errors).toEqual([
      expect.objectContaining({
        code: 'SB_ERR_TOOL_ERROR',
        outcome: 'tool_error',
        count: 11,
        message: 'bad html',
      }),
      expect.objectContaining({ code: 'SB_ERR_VALIDATION', outcome: 'rejected', count: 4 }),
    ]);

    expect(body.throughput.bucket).toBe('1h');
    expect(body.throughput.points).toHaveLength(24);
    expect(body.throughput.points[0].at).toBe(day(HEALTHY).since.toISOString());
    const hourly = new Array(24).fill(0);
    for (const e of events)
      hourly[Math.floor((e.timestamp.getTime() - day(HEALTHY).since.getTime()) / 3_600_000)]++;
    expect(body.throughput.points.map((p: { events: number }) => p.events)).toEqual(hourly);

    expect(body.configVersions).toHaveLength(3);
    const v = body.configVersions.find((x: { serverId: number }) => x.serverId === 2);
    expect(v).toMatchObject({ configVersion: 1, calls: 150, timeouts: 0 });
    expectStats(
      v.durations,
      reference(durations(events.filter((e) => e.server_id === 2 && e.event_type === 'tool_call'))),
    );
  });

  it('stays quiet on healthy data', async () => {
    const body = (await analyze(window(HEALTHY))).json();
    expect(body.recommendations).toEqual([]);
  });

  it('narrows every figure to one server', async () => {
    const body = (await analyze({ ...window(HEALTHY), serverId: 2 })).json();
    const events = inDay(HEALTHY).filter((e) => e.server_id === 2);
    expect(body.totalEvents).toBe(150);
    expect(body.eventTypes).toEqual({ tool_call: 150 });
    expectStats(body.durations, reference(durations(events)));
    expect(body.durations.byTool).toHaveLength(1);
    expect(body.recommendations).toEqual([]);
  });

  const ids = async (n: number) =>
    (await analyze(window(n))).json().recommendations as {
      id: string;
      serverId: number;
      evidence: Record<string, unknown>;
      suggestedChange?: Record<string, unknown>;
    }[];

  it('flags a p95 close to timeout_ms', async () => {
    const recs = await ids(SLOW);
    const rec = recs.find((r) => r.id === 'p95_near_timeout');
    const expectedP95 = percentileCont(durations(inDay(SLOW)), 0.95)!;
    expect(rec).toMatchObject({
      serverId: 1,
      severity: 'warning',
      evidence: { timeoutMs: 30_000, calls: 40 },
    });
    expect(rec!.evidence.p95Ms).toBeCloseTo(expectedP95, 2);
    expect(rec!.suggestedChange!.timeout_ms).toBeGreaterThan(30_000);
    expect(recs.map((r) => r.id)).toEqual(['p95_near_timeout']);
  });

  it('flags frequent timeouts', async () => {
    const rec = (await ids(TIMEOUTS)).find((r) => r.id === 'frequent_timeouts');
    expect(rec).toMatchObject({
      serverId: 2,
      severity: 'warning',
      evidence: { calls: 100, timeouts: 12, timeoutRate: 0.12 },
    });
  });

  it('flags an error burst after a config change', async () => {
    const recs = await ids(BURST);
    expect(recs.map((r) => r.id)).toEqual(['error_burst_after_config_change']);
    expect(recs[0]).toMatchObject({
      serverId: 2,
      evidence: { configVersion: 2, previousConfigVersion: 1, errorRate: 0.4, previousErrorRate: 0.02 },
      suggestedChange: { revertToConfigVersion: 1 },
    });
  });

  it('flags large payloads', async () => {
    const recs = await ids(LARGE);
    expect(recs.map((r) => r.id)).toEqual(['large_payloads']);
    expect(recs[0]).toMatchObject({
      serverId: 3,
      evidence: { tool: 'optimize_images', calls: 10, maxBytes: 690_000 },
    });
  });

  it('suggests bundling tools always called together', async () => {
    const recs = await ids(TOGETHER);
    expect(recs.map((r) => r.id)).toEqual(['bundle_tools']);
    expect(recs[0]).toMatchObject({
      evidence: { serverIds: [1, 2], tools: ['analyze_seo', 'generate_content'], support: 8, confidence: 1 },
    });
  });

  it('flags queueing at max_concurrency (and not saturation: execution stays flat)', async () => {
    // Server 3, registered before these days and without calls in them, is idle: that is another rule.
    const recs = (await ids(QUEUED)).filter((r) => r.id !== 'idle_server');
    expect(recs.map((r) => [r.id, r.serverId])).toEqual([['queueing_at_max_concurrency', 2]]);
    expect(recs[0]).toMatchObject({
      severity: 'warning',
      evidence: {
        calls: 100,
        queuedCalls: 50,
        queuedShare: 0.5,
        avgWaitMs: 300,
        waitMsTotal: 15_000,
        execMsTotal: 20_000,
        waitToExecRatio: 0.75,
        maxConcurrency: 16,
      },
      suggestedChange: { max_concurrency: 32 },
    });
  });

  it('flags a saturated stdio server (calls slow down with the calls sharing its process)', async () => {
    const recs = (await ids(SATURATED)).filter((r) => r.id !== 'idle_server');
    expect(recs.map((r) => [r.id, r.serverId])).toEqual([['stdio_saturated', 1]]);
    // 20 calls ran alone (100 ms); 80 ran with 1–4 others: (200 + 300 + 400 + 500) / 4 = 350 ms.
    expect(recs[0]).toMatchObject({
      severity: 'warning',
      evidence: {
        instances: 1,
        uncrowdedCalls: 20,
        uncrowdedExecAvgMs: 100,
        crowdedCalls: 80,
        crowdedExecAvgMs: 350,
        callsPerProcessWhenCrowded: 3.5,
        slowdown: 3.5,
      },
      suggestedChange: { instances: 2 },
    });
  });

  it('flags an idle server', async () => {
    const recs = await ids(IDLE);
    expect(recs.map((r) => [r.id, r.serverId])).toEqual([['idle_server', 3]]);
    expect(recs[0]!.evidence.lastCallAt).toBe(
      all
        .filter((e) => e.server_id === 3)
        .at(-1)!
        .timestamp.toISOString(),
    );
  });

  it('refuses bad input with 400 and unknown servers with 404', async () => {
    const bad: Record<string, string>[] = [
      { since: 'yesterday' },
      { since: '2026-13-45' },
      { since: "2026-01-01'; DROP TABLE mcp_events; --" },
      { serverId: '1 OR 1=1' },
      { serverId: '-1' },
      { bundleId: "x' OR '1'='1" },
      { streamId: 'a;b' },
      { bucket: '1s' },
      { since: '2020-01-01', until: '2026-01-01' },
      { since: '2026-01-02', until: '2026-01-01' },
      { since: '2025-01-01', until: '2026-01-01', bucket: '1m' },
      { nope: '1' },
    ];
    for (const query of bad) {
      const res = await analyze(query);
      expect(res.statusCode, JSON.stringify(query)).toBe(400);
      expect(res.json().error.code).toBe('SB_ERR_VALIDATION');
    }
    const unknown = await analyze({ serverId: 999 });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error.code).toBe('SB_ERR_NOT_FOUND');
    const noBundle = await analyze({ bundleId: 'bundle-x' });
    expect(noBundle.statusCode).toBe(404);
    const { rows } = await t.hub.db.query<{ n: number }>(
      'SELECT count(*) AS n FROM mcp_events WHERE timestamp < $1',
      ['2026-02-01'],
    );
    expect(rows[0]!.n).toBe(all.length);
  });

  it('answers with defaults (last 7 days) when given nothing', async () => {
    const res = await analyze({});
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(new Date(body.window.until).getTime() - new Date(body.window.since).getTime()).toBe(7 * DAY);
    expect(body.throughput.points.length).toBeLessThanOrEqual(200);
  });
});
