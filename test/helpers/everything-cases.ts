import type { Progress } from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { UpstreamNotification } from '../../src/mcp/upstream-pool.js';
import type { ServerConfig, ServerRecord } from '../../src/servers/payloads.js';
import { createTestPool, type TestPool, textOf, waitFor } from './pool.js';

/** One transport of server-everything: how to register it and how to make it die under a call. */
export interface EverythingTarget {
  record(id: number, config?: ServerConfig): ServerRecord;
  /** Kills the server (the child, or the HTTP process) of pool server `id`, and brings it back if needed. */
  killUpstream(pool: TestPool, id: number): Promise<void>;
  /** Called after the case's pool has closed. */
  after?(): Promise<void>;
}

/**
 * The pool against the third-party @modelcontextprotocol/server-everything (built on SDK 1.x: it speaks
 * the 2025-11-25 revision only), the same cases over each transport.
 */
export function everythingCases(name: string, makeTarget: () => Promise<EverythingTarget>): void {
  describe(`server-everything over ${name}`, () => {
    let target: EverythingTarget;
    let t: TestPool;

    beforeAll(async () => {
      target = await makeTarget();
      t = createTestPool([
        target.record(1),
        target.record(2, { timeout_ms: 400, max_total_timeout_ms: 900 }),
        target.record(3, { retries: 0 }),
      ]);
    });

    afterAll(async () => {
      await t?.pool.close();
      await target?.after?.();
    });

    it('negotiates 2025-11-25 and lists its tools', async () => {
      const tools = await t.pool.listTools(1);
      expect(tools.map((x) => x.name)).toEqual(
        expect.arrayContaining(['echo', 'get-env', 'get-sum', 'trigger-long-running-operation']),
      );
      expect(t.pool.status(1)).toMatchObject({
        connected: true,
        protocolVersion: '2025-11-25',
        protocolEra: 'legacy',
      });
    });

    it('calls a tool', async () => {
      const { result, outcome } = await t.pool.callTool(1, 'echo', { message: 'hello' });
      expect(outcome).toBe('success');
      expect(textOf(result)).toBe('Echo: hello');
      const sum = await t.pool.callTool(1, 'get-sum', { a: 2, b: 40 });
      expect(textOf(sum.result)).toContain('42');
    });

    it('many callers share one connection', async () => {
      const results = await Promise.all(
        Array.from({ length: 40 }, (_, i) => t.pool.callTool(1, 'echo', { message: `m${i}` })),
      );
      for (const [i, r] of results.entries()) expect(textOf(r.result)).toBe(`Echo: m${i}`);
      expect(t.pool.status(1).connections).toBe(1);
    });

    it('passes progress notifications on', async () => {
      const progress: Progress[] = [];
      const { result } = await t.pool.callTool(
        1,
        'trigger-long-running-operation',
        { duration: 0.4, steps: 4 },
        { onProgress: (p) => progress.push(p) },
      );
      expect(textOf(result)).toContain('Long running operation completed');
      // The last notification leaves right before the result, and the SDK client dispatches notifications
      // a microtask later than responses: when both arrive together the final one is dropped.
      expect(progress.map((p) => p.progress).slice(0, 3)).toEqual([1, 2, 3]);
      expect(progress[0]?.total).toBe(4);
    });

    it('a cancelled caller gets SB_ERR_CANCELLED at once, and the connection stays usable', async () => {
      const ac = new AbortController();
      const started = performance.now();
      const call = t.pool.callTool(
        1,
        'trigger-long-running-operation',
        { duration: 10, steps: 10 },
        { signal: ac.signal },
      );
      setTimeout(() => ac.abort(), 150);
      await expect(call).rejects.toMatchObject({ code: 'SB_ERR_CANCELLED' });
      // Answered on the abort, not when the 10 s operation ended.
      expect(performance.now() - started).toBeLessThan(10_000);
      expect(t.events.at(-1)).toMatchObject({ serverId: 1, outcome: 'cancelled' });
      expect(textOf((await t.pool.callTool(1, 'echo', { message: 'still here' })).result)).toBe(
        'Echo: still here',
      );
    });

    it('a slow call times out with SB_ERR_UPSTREAM_TIMEOUT', async () => {
      await t.pool.request(2, 'ping', undefined); // connected: the timeout is about the call, not the start
      const started = performance.now();
      await expect(
        t.pool.callTool(2, 'trigger-long-running-operation', { duration: 5, steps: 1 }),
      ).rejects.toMatchObject({ code: 'SB_ERR_UPSTREAM_TIMEOUT', status: 504 });
      // Cut by timeout_ms, not answered when the 5 s operation ended.
      expect(performance.now() - started).toBeLessThan(5_000);
    });

    it('progress resets the timeout, up to the maximum total', async () => {
      // timeout 400 ms, a step every 150 ms for 750 ms: alive thanks to progress.
      const ok = await t.pool.callTool(2, 'trigger-long-running-operation', { duration: 0.75, steps: 5 });
      expect(textOf(ok.result)).toContain('completed');
      // Same rhythm for 3 s: cut at max_total_timeout_ms (900 ms).
      const started = performance.now();
      await expect(
        t.pool.callTool(2, 'trigger-long-running-operation', { duration: 3, steps: 20 }),
      ).rejects.toMatchObject({ code: 'SB_ERR_UPSTREAM_TIMEOUT' });
      const took = performance.now() - started;
      // Cut at the total (not earlier by the per-progress timeout, not later when the operation ended).
      expect(took).toBeGreaterThan(850);
      expect(took).toBeLessThan(3_000);
    });

    it('a JSON-RPC error is a protocol error; a tool error is a tool_error result', async () => {
      await expect(t.pool.request(1, 'get-prompt', { name: 'no-such-prompt' })).rejects.toMatchObject({
        code: 'SB_ERR_UPSTREAM_PROTOCOL',
      });
      // server-everything (SDK 1.x) answers bad arguments with isError.
      const bad = await t.pool.callTool(1, 'get-sum', { a: 'x' });
      expect(bad).toMatchObject({ outcome: 'tool_error', ok: false });
      expect(bad.result.isError).toBe(true);
    });

    it('other requests: resources, prompts, ping', async () => {
      const resources = await t.pool.request(1, 'list-resources', undefined);
      expect(resources.resources.length).toBeGreaterThan(0);
      const first = resources.resources[0]!;
      const read = await t.pool.request(1, 'read-resource', { uri: first.uri });
      expect(read.contents.length).toBeGreaterThan(0);
      const prompts = await t.pool.request(1, 'list-prompts', undefined);
      expect(prompts.prompts.map((p) => p.name)).toContain('simple-prompt');
      const prompt = await t.pool.request(1, 'get-prompt', { name: 'simple-prompt' });
      expect(prompt.messages.length).toBeGreaterThan(0);
      expect(await t.pool.request(1, 'ping', undefined)).toEqual({});
    });

    it('passes server notifications to subscribers', async () => {
      const seen: UpstreamNotification[] = [];
      const unsubscribe = t.pool.subscribe(1, (n) => seen.push(n));
      await t.pool.callTool(1, 'toggle-simulated-logging', {});
      try {
        await waitFor(() => seen.some((n) => n.method === 'notifications/message'), 'a logging notification');
        expect(seen.find((n) => n.method === 'notifications/message')?.params).toMatchObject({
          level: expect.any(String),
        });
      } finally {
        await t.pool.callTool(1, 'toggle-simulated-logging', {});
        unsubscribe();
      }
    });

    it('an upstream killed mid-call fails that call clearly; the next call succeeds after reconnecting', async () => {
      await t.pool.callTool(3, 'echo', { message: 'warm' });
      let progressed = false;
      const call = t.pool.callTool(
        3,
        'trigger-long-running-operation',
        { duration: 4, steps: 8 },
        { onProgress: () => (progressed = true) },
      );
      const outcome = expect(call).rejects.toMatchObject({ code: 'SB_ERR_UPSTREAM_UNAVAILABLE' });
      await waitFor(() => progressed, 'first progress');
      const started = performance.now();
      await target.killUpstream(t, 3);
      await outcome;
      // Failed on the crash, not when the 4 s operation would have ended.
      expect(performance.now() - started).toBeLessThan(4_000);
      expect(t.events.at(-1)).toMatchObject({ serverId: 3, outcome: 'transport_error', ok: false });
      // Backoff after the crash is short; the next call reconnects (a new process or session).
      await waitFor(
        async () => {
          try {
            await t.pool.callTool(3, 'echo', { message: 'back' });
            return true;
          } catch {
            return false;
          }
        },
        'a call after reconnect',
        10_000,
      );
      expect(t.pool.status(3)).toMatchObject({ connected: true, protocolVersion: '2025-11-25' });
    });
  });
}
