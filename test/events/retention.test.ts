import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventRetention } from '../../src/events/retention.js';
import { createLogger } from '../../src/logger.js';
import { drivers, openTestDb, type TestDb } from '../helpers/db.js';
import { insertEvents, prng, type TestEvent } from '../helpers/events.js';

const DAY = 86_400_000;
const now = new Date('2026-06-15T12:00:00Z');
const log = createLogger('silent');

describe.each(drivers)('event retention on %s', (driver) => {
  let t: TestDb;
  const rand = prng(3);
  // 300 expired events over 5 days (35–39 days old) and 120 recent ones.
  const expired: TestEvent[] = Array.from({ length: 300 }, (_, i) => ({
    event_type: i % 5 === 0 ? 'api_call' : 'tool_call',
    server_id: i % 5 === 0 ? null : 1,
    tool_name: i % 5 === 0 ? null : i % 2 ? 'a' : 'b',
    timestamp: new Date(now.getTime() - (35 + (i % 5)) * DAY - Math.floor(rand() * 3_600_000)),
    duration: i % 9 === 0 ? null : Math.floor(rand() * 1000),
    ok: i % 7 !== 0,
    outcome: i % 7 === 0 ? (i % 2 ? 'timeout' : 'tool_error') : 'success',
  }));
  const recent: TestEvent[] = Array.from({ length: 120 }, (_, i) => ({
    event_type: 'tool_call',
    server_id: 1,
    tool_name: 'a',
    timestamp: new Date(now.getTime() - (i % 29) * DAY - 1000),
    duration: 10,
    ok: true,
    outcome: 'success',
  }));

  beforeAll(async () => {
    t = await openTestDb(driver);
    await t.db.query(`INSERT INTO mcp_servers (name, transport, command) VALUES ('one', 'stdio', 'node')`);
    await insertEvents(t.db, [...expired, ...recent]);
  });
  afterAll(() => t?.drop());

  it('deletes only expired events, in batches, rolling every one of them up exactly', async () => {
    const job = new EventRetention({ db: t.db, log, retentionDays: 30, batchSize: 7, pauseMs: 0 });
    // Recording goes on while the job runs.
    const late: TestEvent[] = Array.from({ length: 50 }, () => ({ ...recent[0]!, timestamp: new Date(now) }));
    const [deleted] = await Promise.all([job.run(now), insertEvents(t.db, late)]);
    expect(deleted).toBe(300);
    const { rows: left } = await t.db.query<{ n: number; oldest: Date }>(
      'SELECT count(*) AS n, min(timestamp) AS oldest FROM mcp_events',
    );
    expect(left[0]!.n).toBe(170);
    expect(left[0]!.oldest.getTime()).toBeGreaterThan(now.getTime() - 30 * DAY);

    const expected = new Map<string, Record<string, number | null>>();
    for (const e of expired) {
      const key = [
        e.timestamp.toISOString().slice(0, 10),
        e.server_id ?? 0,
        e.event_type,
        e.tool_name ?? '',
      ].join('|');
      const r = expected.get(key) ?? {
        events: 0,
        ok_count: 0,
        error_count: 0,
        timeouts: 0,
        duration_count: 0,
        duration_sum: 0,
        duration_max: null,
      };
      r.events! += 1;
      if (e.ok) r.ok_count! += 1;
      else r.error_count! += 1;
      if (e.outcome === 'timeout') r.timeouts! += 1;
      if (typeof e.duration === 'number') {
        r.duration_count! += 1;
        r.duration_sum! += e.duration;
        r.duration_max = Math.max(r.duration_max ?? 0, e.duration);
      }
      expected.set(key, r);
    }
    const { rows } = await t.db.query<Record<string, unknown>>(
      `SELECT to_char(day, 'YYYY-MM-DD') AS day, server_id, event_type, tool_name, events, ok_count, error_count,
              timeouts, duration_count, duration_sum, duration_max
       FROM mcp_event_daily_rollup`,
    );
    const actual = new Map(
      rows.map(({ day, server_id, event_type, tool_name, ...figures }) => [
        [day, server_id, event_type, tool_name].join('|'),
        figures,
      ]),
    );
    expect(actual).toEqual(expected);

    // A second run finds nothing to do and changes nothing.
    expect(await job.run(now)).toBe(0);
    await job.close();
  });

  it('keeps the insights whole: rolled-up calls still count', async () => {
    const { rows } = await t.db.query<Record<string, number>>(
      'SELECT total_calls, timeouts, success_rate FROM mcp_server_optimization_insights WHERE server_id = 1',
    );
    const calls = [...expired.filter((e) => e.server_id === 1), ...recent];
    expect(rows[0]!.total_calls).toBe(calls.length + 50);
    expect(rows[0]!.timeouts).toBe(calls.filter((e) => e.outcome === 'timeout').length);
    expect(rows[0]!.success_rate).toBeCloseTo(
      (calls.filter((e) => e.ok).length + 50) / (calls.length + 50),
      10,
    );
  });

  it('has a lifecycle: start and close are idempotent, work after close fails with SB_ERR_CLOSED', async () => {
    const job = new EventRetention({ db: t.db, log, retentionDays: 30, firstRunMs: 1 });
    job.start();
    job.start();
    await new Promise((resolve) => setTimeout(resolve, 50));
    await job.close();
    await job.close();
    await expect(job.run()).rejects.toMatchObject({ code: 'SB_ERR_CLOSED' });
    expect(() => job.start()).toThrow(/closed/);
  });
});
