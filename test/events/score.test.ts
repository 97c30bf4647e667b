import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drivers, openTestDb, type TestDb } from '../helpers/db.js';
import { insertEvents, type TestEvent } from '../helpers/events.js';

/**
 * calculate_config_performance(server_id, window) and the mcp_server_optimization_insights view on known
 * data: the score is 60 × success rate + 30 × min(1, baseline median ÷ window mean) + 10 × (1 − timeout share).
 */
describe.each(drivers)('config score and insights on %s', (driver) => {
  let t: TestDb;
  beforeAll(async () => {
    t = await openTestDb(driver);
    await t.db.query(
      `INSERT INTO mcp_servers (name, transport, command, config) VALUES ('one', 'stdio', 'node', '{"timeout_ms": 1000}')`,
    );
  });
  afterAll(() => t?.drop());

  /** 100 tool calls in the last hour: `errors` tool errors, `timeouts` timeouts, the rest succeed in `ms`. */
  const calls = (opts: { errors?: number; timeouts?: number; ms?: number; ageMs?: number }): TestEvent[] => {
    const now = Date.now();
    return Array.from({ length: 100 }, (_, i) => {
      const timedOut = i < (opts.timeouts ?? 0);
      const failed = !timedOut && i < (opts.timeouts ?? 0) + (opts.errors ?? 0);
      return {
        event_type: 'tool_call',
        server_id: 1,
        tool_name: 'analyze',
        timestamp: new Date(now - (opts.ageMs ?? 0) - i * 1000),
        duration: timedOut ? 1000 : (opts.ms ?? 100),
        outcome: timedOut ? 'timeout' : failed ? 'tool_error' : 'success',
        ok: !timedOut && !failed,
      };
    });
  };

  const score = async (events: TestEvent[]): Promise<number | null> => {
    await t.db.query('DELETE FROM mcp_events');
    await insertEvents(t.db, events);
    const { rows } = await t.db.query<{ s: number | null }>(
      "SELECT calculate_config_performance(1, interval '1 hour') AS s",
    );
    return rows[0]!.s;
  };

  it('is NULL without calls and 100 for a perfect window', async () => {
    expect(await score([])).toBeNull();
    expect(await score(calls({}))).toBe(100);
  });

  it('matches the documented formula', async () => {
    // 10 errors and 85 successes at 100 ms, 5 timeouts at 1,000 ms: baseline median 100, mean 145.
    const s = await score(calls({ errors: 10, timeouts: 5 }));
    expect(s).toBeCloseTo(60 * 0.85 + 30 * (100 / 145) + 10 * 0.95, 2);
  });

  it('falls as errors, timeouts or latency grow', async () => {
    const byErrors = [];
    for (const errors of [0, 5, 20, 50, 90]) byErrors.push(await score(calls({ errors })));
    const byTimeouts = [];
    for (const timeouts of [0, 5, 20, 50]) byTimeouts.push(await score(calls({ timeouts })));
    for (const series of [byErrors, byTimeouts]) {
      for (let i = 1; i < series.length; i++) expect(series[i]!).toBeLessThan(series[i - 1]!);
    }
    // Latency against the server's own baseline: a slow hour after a fast week.
    const baseline = calls({ ms: 100, ageMs: 2 * 3_600_000 });
    const bySpeed = [];
    for (const ms of [100, 150, 300, 1000]) bySpeed.push(await score([...baseline, ...calls({ ms })]));
    for (let i = 1; i < bySpeed.length; i++) expect(bySpeed[i]!).toBeLessThan(bySpeed[i - 1]!);
  });

  it('mcp_server_optimization_insights sums up each server', async () => {
    await score(calls({ errors: 10, timeouts: 5 }));
    await t.db.query(
      `INSERT INTO mcp_config_history (server_id, config, applied, created_at) VALUES (1, '{}', true, '2026-01-02'), (1, '{}', false, '2026-01-03')`,
    );
    const { rows } = await t.db.query<Record<string, unknown>>(
      'SELECT * FROM mcp_server_optimization_insights WHERE server_id = 1',
    );
    expect(rows[0]).toMatchObject({
      name: 'one',
      total_calls: 100,
      success_rate: 0.85,
      error_rate: 0.15,
      timeouts: 5,
      avg_duration_ms: 145,
      last_optimized: new Date('2026-01-02T00:00:00Z'),
    });
    // percentile_cont over 95 × 100 ms and 5 × 1,000 ms: 100 + 0.05 × 900.
    expect(rows[0]!.p95_duration_ms).toBeCloseTo(145, 6);
    expect(rows[0]!.current_score).toBeCloseTo(60 * 0.85 + 30 * (100 / 145) + 10 * 0.95, 2);
  });
});
