/**
 * cache_ttl_ms against the flaky fixture: its `lookup` tool is annotated readOnlyHint and counts the
 * lookups that really reached the process. Needs `npm run build` (dist/examples/servers/flaky.js).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { UpstreamNotification } from '../../src/mcp/upstream-pool.js';
import {
  assertFlakyBuilt,
  createTestPool,
  flakyRecord,
  flakyScript,
  flakyStats,
  structured,
  type TestPool,
  waitFor,
} from '../helpers/pool.js';

let t: TestPool;

beforeAll(() => {
  assertFlakyBuilt();
  t = createTestPool(
    [
      flakyRecord(1, { cache_ttl_ms: 60_000 }),
      flakyRecord(2, { cache_ttl_ms: 200 }),
      flakyRecord(3, {}),
      flakyRecord(4, { cache_ttl_ms: 0 }),
      flakyRecord(5, { cache_ttl_ms: 60_000 }),
      flakyRecord(6, { cache_ttl_ms: 60_000 }),
    ],
    { resultCache: { maxEntryBytes: 2_000 } },
  );
});

afterAll(async () => {
  await t.pool.close();
});

const stats = (id: number) => flakyStats(t, id);
const lookup = async (id: number, args: Record<string, unknown>) =>
  (await t.pool.callTool(id, 'lookup', args)).result;
/** Lookups that reached server `id` while `fn` ran. */
async function lookupsDuring(id: number, fn: () => Promise<unknown>): Promise<number> {
  const before = (await stats(id)).lookups;
  await fn();
  return (await stats(id)).lookups - before;
}
const lookupEvents = (id: number) =>
  t.events.filter((e) => e.type === 'tool_call' && e.serverId === id && e.toolName === 'lookup');

describe('result cache', () => {
  it('answers a second identical call of a read-only tool without asking the server', async () => {
    const events = lookupEvents(1).length;
    let first: unknown;
    let second: unknown;
    const reached = await lookupsDuring(1, async () => {
      first = structured(await lookup(1, { key: 'a' }));
      second = structured(await lookup(1, { key: 'a' }));
    });
    expect(reached).toBe(1);
    expect(second).toEqual(first);
    // One event per call, the hit marked as such and otherwise like the call that reached the server.
    const [miss, hit] = lookupEvents(1).slice(events);
    expect(lookupEvents(1)).toHaveLength(events + 2);
    expect(miss?.data).not.toHaveProperty('cached');
    expect(hit).toMatchObject({
      type: 'tool_call',
      serverId: 1,
      toolName: 'lookup',
      outcome: 'success',
      ok: true,
      errorCode: null,
      configVersion: 1,
      requestBytes: miss?.requestBytes,
      responseBytes: miss?.responseBytes,
      data: { cached: true, arguments: { key: 'a' }, result: miss?.data?.result },
    });
    const metric = await t.metrics.registry.getSingleMetricAsString('switchboard_upstream_cache_total');
    expect(metric).toMatch(/server="1",tool="lookup",result="hit"} 1$/m);
    expect(metric).toMatch(/server="1",tool="lookup",result="miss"} 1$/m);
    const calls = await t.metrics.registry.getSingleMetricAsString('switchboard_upstream_calls_total');
    expect(calls).toMatch(/server="1",tool="lookup",outcome="success"} 2$/m);
  });

  it('hands every caller its own copy of a cached result', async () => {
    await lookup(1, { key: 'copy' });
    const mine = await lookup(1, { key: 'copy' });
    (mine.structuredContent as Record<string, unknown>).key = 'changed';
    expect(structured(await lookup(1, { key: 'copy' }))).toMatchObject({ key: 'copy' });
  });

  it('does not share results between different arguments', async () => {
    const reached = await lookupsDuring(1, async () => {
      expect(structured(await lookup(1, { key: 'b' }))).toMatchObject({ key: 'b' });
      expect(structured(await lookup(1, { key: 'c' }))).toMatchObject({ key: 'c' });
      expect(structured(await lookup(1, { key: 'b', options: { x: 1 } }))).toMatchObject({
        options: { x: 1 },
      });
    });
    expect(reached).toBe(3);
  });

  it('takes arguments that differ only in key order for the same call', async () => {
    const reached = await lookupsDuring(1, async () => {
      await lookup(1, { key: 'd', options: { x: 1, y: { p: 1, q: 2 } } });
      await lookup(1, { options: { y: { q: 2, p: 1 }, x: 1 }, key: 'd' });
    });
    expect(reached).toBe(1);
  });

  it('never caches a tool without readOnlyHint', async () => {
    const before = (await stats(1)).calls;
    await t.pool.callTool(1, 'echo', { message: 'side effect' });
    await t.pool.callTool(1, 'echo', { message: 'side effect' });
    expect((await stats(1)).calls - before).toBe(2);
    expect(t.events.filter((e) => e.toolName === 'echo' && e.data?.cached)).toEqual([]);
  });

  it('does not cache a tool error', async () => {
    const reached = await lookupsDuring(1, async () => {
      expect((await lookup(1, { key: 'e', fail: true })).isError).toBe(true);
      expect((await lookup(1, { key: 'e', fail: true })).isError).toBe(true);
    });
    expect(reached).toBe(2);
  });

  it('does not cache a result larger than the per-entry bound', async () => {
    const reached = await lookupsDuring(1, async () => {
      await lookup(1, { key: 'x'.repeat(2_000) });
      await lookup(1, { key: 'x'.repeat(2_000) });
    });
    expect(reached).toBe(2);
  });

  it('forgets a result once cache_ttl_ms has passed', async () => {
    const reached = await lookupsDuring(2, async () => {
      await lookup(2, { key: 'f' });
      await new Promise((r) => setTimeout(r, 300));
      await lookup(2, { key: 'f' });
    });
    expect(reached).toBe(2);
  });

  it('caches nothing with cache_ttl_ms 0, set or by default', async () => {
    for (const id of [3, 4]) {
      const reached = await lookupsDuring(id, async () => {
        await lookup(id, { key: 'g' });
        await lookup(id, { key: 'g' });
      });
      expect(reached).toBe(2);
    }
    const metric = await t.metrics.registry.getSingleMetricAsString('switchboard_upstream_cache_total');
    expect(metric).not.toMatch(/server="[34]"/);
  });

  it('drops the cache on notifications/tools/list_changed', async () => {
    const seen: UpstreamNotification[] = [];
    const unsubscribe = t.pool.subscribe(5, (n) => seen.push(n));
    const reached = await lookupsDuring(5, async () => {
      await lookup(5, { key: 'h' });
      await lookup(5, { key: 'h' });
      await t.pool.callTool(5, 'toggle_extra', {});
      await waitFor(() => seen.some((n) => n.method === 'notifications/tools/list_changed'), 'list_changed');
      await lookup(5, { key: 'h' });
    });
    expect(reached).toBe(2);
    await t.pool.callTool(5, 'toggle_extra', {});
    unsubscribe();
  });

  it('drops the cache on notifications/resources/list_changed', async () => {
    const seen: UpstreamNotification[] = [];
    const unsubscribe = t.pool.subscribe(5, (n) => seen.push(n));
    const reached = await lookupsDuring(5, async () => {
      await lookup(5, { key: 'r' });
      await lookup(5, { key: 'r' });
      await t.pool.callTool(5, 'touch_resources', {});
      await waitFor(
        () => seen.some((n) => n.method === 'notifications/resources/list_changed'),
        'resources/list_changed',
      );
      await lookup(5, { key: 'r' });
    });
    expect(reached).toBe(2);
    unsubscribe();
  });

  it('keeps the cache when another knob changes, drops it when cache_ttl_ms or the transport changes', async () => {
    await lookup(5, { key: 'i' });
    const reconfigure = async (config: Record<string, unknown>, args?: string[]) => {
      t.records.set(5, flakyRecord(5, config, args ? { args } : {}));
      await t.pool.reconfigure(5);
    };
    expect(
      await lookupsDuring(5, async () => {
        await reconfigure({ cache_ttl_ms: 60_000, timeout_ms: 20_000 });
        await lookup(5, { key: 'i' });
      }),
    ).toBe(0);
    expect(
      await lookupsDuring(5, async () => {
        await reconfigure({ cache_ttl_ms: 30_000, timeout_ms: 20_000 });
        await lookup(5, { key: 'i' });
        await lookup(5, { key: 'i' });
      }),
    ).toBe(1);
    // The transport changes: a new process, whose own count starts again.
    await reconfigure({ cache_ttl_ms: 30_000 }, [flakyScript, '--generation=2']);
    expect(structured<{ lookups: number }>(await lookup(5, { key: 'i' })).lookups).toBe(1);
    expect(structured<{ lookups: number }>(await lookup(5, { key: 'i' })).lookups).toBe(1);
  });
});

describe('coalescing identical calls under way', () => {
  const call = (args: Record<string, unknown>, signal?: AbortSignal) =>
    t.pool.callTool(6, 'lookup', args, signal ? { signal } : {});
  const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it('calls made while an identical one runs wait for it: one lookup reaches the server', async () => {
    const events = lookupEvents(6).length;
    let results: Awaited<ReturnType<typeof call>>[] = [];
    let other: unknown;
    const reached = await lookupsDuring(6, async () => {
      const same = Array.from({ length: 5 }, (_, i) =>
        call(i % 2 ? { ms: 300, key: 'c' } : { key: 'c', ms: 300 }),
      );
      other = structured(await call({ key: 'd', ms: 300 }).then((r) => r.result));
      results = await Promise.all(same);
    });
    expect(reached).toBe(2);
    expect(other).toMatchObject({ key: 'd' });
    const values = results.map((r) => structured(r.result));
    for (const v of values) expect(v).toEqual(values[0]);
    expect(results[1]!.result).not.toBe(results[0]!.result);
    const recorded = lookupEvents(6).slice(events);
    expect(recorded).toHaveLength(6);
    expect(recorded.filter((e) => e.data?.coalesced === true)).toHaveLength(4);
    // The first one's answer is cached as well.
    expect(await lookupsDuring(6, () => call({ key: 'c', ms: 300 }))).toBe(0);
  });

  it("the first caller's cancellation is its own: the others ask for themselves", async () => {
    const leader = new AbortController();
    let outcomes: PromiseSettledResult<unknown>[] = [];
    const reached = await lookupsDuring(6, async () => {
      const first = call({ key: 'e', ms: 400 }, leader.signal);
      await tick(50);
      const others = Array.from({ length: 3 }, () => call({ key: 'e', ms: 400 }));
      await tick(50);
      leader.abort();
      outcomes = await Promise.allSettled([first, ...others]);
    });
    expect(outcomes[0]).toMatchObject({ status: 'rejected', reason: { code: 'SB_ERR_CANCELLED' } });
    expect(outcomes.slice(1).map((o) => o.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled']);
    expect(reached).toBe(2);
  });

  it('a waiting call cancelled by its caller leaves the call it waited for alone', async () => {
    const waiter = new AbortController();
    let outcomes: PromiseSettledResult<unknown>[] = [];
    const reached = await lookupsDuring(6, async () => {
      const first = call({ key: 'f', ms: 300 });
      await tick(50);
      const cancelled = call({ key: 'f', ms: 300 }, waiter.signal);
      const other = call({ key: 'f', ms: 300 });
      await tick(50);
      waiter.abort();
      outcomes = await Promise.allSettled([first, cancelled, other]);
    });
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(outcomes[1]).toMatchObject({ reason: { code: 'SB_ERR_CANCELLED' } });
    expect(reached).toBe(1);
  });

  it('shares a tool error with the calls waiting, and caches it for no one after', async () => {
    let results: Awaited<ReturnType<typeof call>>[] = [];
    const reached = await lookupsDuring(6, async () => {
      results = await Promise.all(Array.from({ length: 3 }, () => call({ key: 'g', ms: 200, fail: true })));
    });
    expect(reached).toBe(1);
    expect(results.map((r) => r.outcome)).toEqual(['tool_error', 'tool_error', 'tool_error']);
    expect(await lookupsDuring(6, () => call({ key: 'g', ms: 200, fail: true }))).toBe(1);
  });
});
