/**
 * The pool's lifecycle against the flaky fixture server (an SDK v2 server: negotiates 2026-07-28): shared
 * processes, concurrency, instances, timeouts, cancellation, crashes, retries, idle close, reconfiguration,
 * shutdown without leaked processes. Needs `npm run build` (dist/examples/servers/flaky.js).
 */
import path from 'node:path';
import type { Progress } from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { UpstreamNotification } from '../../src/mcp/upstream-pool.js';
import { projectRoot } from '../../src/paths.js';
import {
  assertFlakyBuilt,
  childPidsExcept,
  createTestPool,
  flakyRecord,
  flakyStats,
  isAlive,
  structured,
  type TestPool,
  waitFor,
} from '../helpers/pool.js';

let t: TestPool;
let before: number[];

beforeAll(async () => {
  assertFlakyBuilt();
  before = await childPidsExcept([]);
  t = createTestPool([
    flakyRecord(1),
    flakyRecord(2, { max_concurrency: 3 }),
    flakyRecord(3, { instances: 3, max_concurrency: 12 }),
    flakyRecord(4, { timeout_ms: 300, max_total_timeout_ms: 1_000 }),
    flakyRecord(5, { retries: 0 }),
    flakyRecord(6, { retries: 1 }),
    flakyRecord(7, { idle_timeout_ms: 300 }),
    flakyRecord(8, { max_concurrency: 1, max_queue: 2 }),
    flakyRecord(9, { retries: 0 }, { env: { FLAKY_FLAVOUR: 'plain', SECRET_TOKEN: 'abc' } }),
    flakyRecord(10, {}, { enabled: false }),
    flakyRecord(11, { retries: 0 }, { args: ['does/not/exist.js'] }),
    flakyRecord(12, {}, { cwd: 'dist/examples', args: ['servers/flaky.js'] }),
  ]);
});

afterAll(async () => {
  await t.pool.close();
});

const stats = (id: number) => flakyStats(t, id);

describe('flaky server', () => {
  it('negotiates the 2026-07-28 revision and reports it once', async () => {
    const seen: unknown[] = [];
    t.pool.onConnected = (id, info) => seen.push({ id, ...info });
    const { result, outcome, ok } = await t.pool.callTool(1, 'echo', { message: 'hello' });
    expect(outcome).toBe('success');
    expect(ok).toBe(true);
    expect(structured(result)).toMatchObject({ message: 'hello' });
    expect(t.pool.status(1)).toMatchObject({
      connected: true,
      connections: 1,
      protocolVersion: '2026-07-28',
      protocolEra: 'modern',
      lastError: null,
    });
    expect(seen).toEqual([{ id: 1, protocolVersion: '2026-07-28', protocolEra: 'modern' }]);
    t.pool.onConnected = undefined;
  });

  it('many callers share one process (never a process per caller)', async () => {
    const beforeCalls = await childPidsExcept(before);
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => t.pool.callTool(1, 'echo', { message: `m${i}` })),
    );
    const pids = new Set(results.map((r) => structured<{ pid: number }>(r.result).pid));
    expect(pids.size).toBe(1);
    expect(t.pool.status(1).pids).toEqual([...pids]);
    expect(await childPidsExcept(before)).toEqual(beforeCalls);
  });

  it('honours max_concurrency with 20 callers', async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, () => t.pool.callTool(2, 'concurrency', { ms: 60 })),
    );
    for (const r of results)
      expect(structured<{ maxConcurrent: number }>(r.result).maxConcurrent).toBeLessThanOrEqual(3);
    expect((await stats(2)).maxConcurrent).toBe(3);
    expect(t.pool.status(2)).toMatchObject({ inFlight: 0, queued: 0 });
    // Each call's event says how long it waited for a slot and how many calls ran with it: 3 got a slot at
    // once, the 17 others queued behind at least one 60 ms call.
    const calls = t.events.filter(
      (e) => e.type === 'tool_call' && e.serverId === 2 && e.toolName === 'concurrency',
    );
    expect(calls).toHaveLength(20);
    expect(calls.filter((e) => e.queueMs === 0)).toHaveLength(3);
    expect(calls.filter((e) => (e.queueMs ?? 0) >= 30)).toHaveLength(17);
    for (const e of calls) {
      expect(e.concurrency).toBeGreaterThanOrEqual(1);
      expect(e.concurrency).toBeLessThanOrEqual(3);
      expect(e.queueMs).toBeLessThanOrEqual(e.durationMs ?? 0);
    }
  });

  it('instances: 3 gives 3 processes, calls spread over them', async () => {
    const results = await Promise.all(
      Array.from({ length: 24 }, () => t.pool.callTool(3, 'concurrency', { ms: 150 })),
    );
    const pids = new Set(results.map((r) => structured<{ pid: number }>(r.result).pid));
    expect(pids.size).toBe(3);
    expect(new Set(t.pool.status(3).pids)).toEqual(pids);
    expect(t.pool.status(3).connections).toBe(3);
    // Every instance negotiated the same era (the later ones reused the first one's verdict).
    expect(t.pool.status(3).protocolVersion).toBe('2026-07-28');
  });

  it('passes progress on, and progress keeps resetting the timeout', async () => {
    const progress: Progress[] = [];
    const started = performance.now();
    const { result } = await t.pool.callTool(
      4,
      'sleep',
      { ms: 700, progressEvery: 100 },
      { onProgress: (p) => progress.push(p) },
    );
    expect(structured(result)).toMatchObject({ cancelled: false });
    expect(performance.now() - started).toBeGreaterThan(650); // > timeout_ms 300: progress kept it alive
    expect(progress.length).toBeGreaterThanOrEqual(5);
    expect(progress[0]).toMatchObject({ progress: 1, total: 7 });
  });

  // With a controller of its own (CallOptions.controller) the limit aborts that controller itself: still a
  // timeout, not a cancellation.
  it.each(['no signal', 'controller'] as const)('…but not past max_total_timeout_ms (%s)', async (via) => {
    const before4 = (await stats(4)).cancellations;
    const controller = via === 'controller' ? new AbortController() : undefined;
    const started = performance.now();
    await expect(
      t.pool.callTool(4, 'sleep', { ms: 5_000, progressEvery: 100 }, { controller, clientId: via }),
    ).rejects.toMatchObject({ code: 'SB_ERR_UPSTREAM_TIMEOUT' });
    const took = performance.now() - started;
    // Cut at the total, not when the 5 s sleep ended.
    expect(took).toBeGreaterThan(950);
    expect(took).toBeLessThan(5_000);
    // The server was told: the timed-out request was cancelled upstream.
    await waitFor(
      async () => (await stats(4)).cancellations === before4 + 1,
      'cancellation seen by the server',
    );
    const event = t.events.findLast((e) => e.serverId === 4 && e.clientId === via);
    expect(event).toMatchObject({ outcome: 'timeout', ok: false, errorCode: 'SB_ERR_UPSTREAM_TIMEOUT' });
    if (controller) expect(controller.signal.aborted).toBe(true);
  });

  it('a server that does not answer times out with SB_ERR_UPSTREAM_TIMEOUT', async () => {
    await expect(t.pool.callTool(4, 'hang', {})).rejects.toMatchObject({
      code: 'SB_ERR_UPSTREAM_TIMEOUT',
      status: 504,
    });
    const event = t.events.findLast((e) => e.serverId === 4 && e.toolName === 'hang');
    expect(event).toMatchObject({ outcome: 'timeout', ok: false, errorCode: 'SB_ERR_UPSTREAM_TIMEOUT' });
  });

  it.each(['signal', 'controller'] as const)(
    "a caller's abort cancels the upstream request (notifications/cancelled reaches the server; %s)",
    async (via) => {
      const { cancellations } = await stats(1);
      const ac = new AbortController();
      const started = performance.now();
      const call = t.pool.callTool(
        1,
        'sleep',
        { ms: 10_000 },
        { ...(via === 'signal' ? { signal: ac.signal } : { controller: ac }), source: 'rest', clientId: via },
      );
      setTimeout(() => ac.abort(), 150);
      await expect(call).rejects.toMatchObject({ code: 'SB_ERR_CANCELLED' });
      // Answered on the abort, not when the 10 s sleep ended.
      expect(performance.now() - started).toBeLessThan(10_000);
      await waitFor(
        async () => (await stats(1)).cancellations === cancellations + 1,
        'cancellation seen by the server',
      );
      const event = t.events.findLast((e) => e.serverId === 1 && e.toolName === 'sleep');
      expect(event).toMatchObject({
        outcome: 'cancelled',
        ok: false,
        errorCode: 'SB_ERR_CANCELLED',
        source: 'rest',
        clientId: via,
      });
    },
  );

  it('a tool error is returned as a result, classified tool_error (not a success)', async () => {
    const { result, outcome, ok } = await t.pool.callTool(1, 'fail', {}, { streamId: 's1', bundleId: 'b1' });
    expect(result.isError).toBe(true);
    expect(outcome).toBe('tool_error');
    expect(ok).toBe(false);
    expect(t.events.at(-1)).toMatchObject({
      type: 'tool_call',
      serverId: 1,
      toolName: 'fail',
      outcome: 'tool_error',
      ok: false,
      errorCode: null,
      configVersion: 1,
      streamId: 's1',
      bundleId: 'b1',
    });
  });

  it('a JSON-RPC error is a protocol_error (SB_ERR_UPSTREAM_PROTOCOL), and the connection stays', async () => {
    const pids = t.pool.status(1).pids;
    await expect(t.pool.callTool(1, 'throw', {})).rejects.toMatchObject({
      code: 'SB_ERR_UPSTREAM_PROTOCOL',
      status: 502,
    });
    expect(t.events.at(-1)).toMatchObject({
      toolName: 'throw',
      outcome: 'protocol_error',
      errorCode: 'SB_ERR_UPSTREAM_PROTOCOL',
    });
    expect(t.pool.status(1).pids).toEqual(pids);
  });

  it('records one event per call, with sizes and a result summary', async () => {
    const n = t.events.length;
    await t.pool.callTool(1, 'echo', { message: 'sized' }, { source: 'bundle' });
    expect(t.events.length).toBe(n + 1);
    const e = t.events.at(-1)!;
    expect(e).toMatchObject({ type: 'tool_call', outcome: 'success', ok: true, source: 'bundle' });
    expect(e.requestBytes).toBe(Buffer.byteLength(JSON.stringify({ message: 'sized' })));
    expect(e.responseBytes).toBeGreaterThan(10);
    expect(e.durationMs).toBeGreaterThanOrEqual(0);
    expect(e.data).toMatchObject({
      arguments: { message: 'sized' },
      result: { structuredContent: { message: 'sized' } },
    });
    const metrics = await t.metrics.registry.getSingleMetricAsString('switchboard_upstream_calls_total');
    expect(metrics).toMatch(/server="1",tool="echo",outcome="success"} \d+/);
    expect(metrics).toMatch(/server="1",tool="fail",outcome="tool_error"} 1/);
  });

  it('an upstream that dies mid-call fails that call clearly; the next call reconnects', async () => {
    const { pid } = await stats(5);
    await expect(t.pool.callTool(5, 'crash', { afterMs: 50 })).rejects.toMatchObject({
      code: 'SB_ERR_UPSTREAM_UNAVAILABLE',
      message: expect.stringContaining('Connection closed'),
    });
    expect(t.events.at(-1)).toMatchObject({ serverId: 5, toolName: 'crash', outcome: 'transport_error' });
    await waitFor(() => !isAlive(pid), 'crashed process gone');
    expect(t.pool.status(5)).toMatchObject({ connections: 0, lastError: expect.stringContaining('exited') });
    const next = await t.pool.callTool(5, 'echo', { message: 'again' });
    const newPid = structured<{ pid: number }>(next.result).pid;
    expect(newPid).not.toBe(pid);
    expect(t.pool.status(5)).toMatchObject({ connections: 1, protocolVersion: '2026-07-28' });
    const reconnects = await t.metrics.registry.getSingleMetricAsString('switchboard_pool_reconnects_total');
    expect(reconnects).toMatch(/server="5"} 1/);
  });

  it('retries a call whose connection died before any answer (retries: 1), never one that was answered', async () => {
    const { pid } = await stats(6);
    // No progress, no answer yet: the process is killed under it, so it runs again on a new process.
    const call = t.pool.callTool(6, 'sleep', { ms: 400 });
    await new Promise((r) => setTimeout(r, 100));
    process.kill(pid, 'SIGKILL');
    const { result } = await call;
    expect(structured<{ pid: number }>(result).pid).not.toBe(pid);
    // With progress seen, the server had it: no retry, a clear error.
    const { pid: pid2 } = await stats(6);
    const progressed = t.pool.callTool(6, 'sleep', { ms: 2_000, progressEvery: 50 });
    await new Promise((r) => setTimeout(r, 200));
    process.kill(pid2, 'SIGKILL');
    await expect(progressed).rejects.toMatchObject({ code: 'SB_ERR_UPSTREAM_UNAVAILABLE' });
  });

  it('closes idle connections after idle_timeout_ms, and reconnects on the next call', async () => {
    const { pid } = await stats(7);
    expect(t.pool.status(7).connections).toBe(1);
    await waitFor(() => t.pool.status(7).connections === 0, 'idle close', 3_000);
    await waitFor(() => !isAlive(pid), 'idle process exited');
    const again = await stats(7);
    expect(again.pid).not.toBe(pid);
  });

  it('refuses calls past max_queue with SB_ERR_QUEUE_FULL (outcome rejected)', async () => {
    const calls = Array.from({ length: 5 }, () => t.pool.callTool(8, 'sleep', { ms: 150 }));
    const settled = await Promise.allSettled(calls);
    const rejected = settled.filter((s) => s.status === 'rejected');
    expect(rejected).toHaveLength(2);
    for (const r of rejected)
      expect((r as PromiseRejectedResult).reason).toMatchObject({ code: 'SB_ERR_QUEUE_FULL' });
    expect(t.events.filter((e) => e.serverId === 8 && e.outcome === 'rejected')).toHaveLength(2);
  });

  it('gives a stdio child only its configured env plus PATH, in the project root', async () => {
    const { result } = await t.pool.callTool(9, 'env', {});
    const { env, cwd } = structured<{ env: Record<string, string>; cwd: string }>(result);
    expect(Object.keys(env).sort()).toEqual(['FLAKY_FLAVOUR', 'PATH', 'SECRET_TOKEN']);
    expect(env.FLAKY_FLAVOUR).toBe('plain');
    expect(cwd).toBe(projectRoot);
  });

  it('resolves a relative cwd against the project root, whatever the working directory', async () => {
    const previous = process.cwd();
    process.chdir('/tmp');
    try {
      const { result } = await t.pool.callTool(12, 'env', {});
      expect(structured<{ cwd: string }>(result).cwd).toBe(path.join(projectRoot, 'dist/examples'));
    } finally {
      process.chdir(previous);
    }
  });

  it('refuses disabled and unknown servers', async () => {
    await expect(t.pool.callTool(10, 'echo', { message: 'x' })).rejects.toMatchObject({
      code: 'SB_ERR_SERVER_DISABLED',
      status: 409,
    });
    expect(t.events.at(-1)).toMatchObject({
      serverId: 10,
      outcome: 'rejected',
      errorCode: 'SB_ERR_SERVER_DISABLED',
    });
    await expect(t.pool.callTool(999, 'echo', {})).rejects.toMatchObject({
      code: 'SB_ERR_NOT_FOUND',
      status: 404,
    });
    // Not a row of mcp_servers: recorded without a server id, which stays in the data.
    expect(t.events.at(-1)).toMatchObject({ serverId: null, outcome: 'rejected', data: { serverId: 999 } });
    await expect(t.pool.listTools(999)).rejects.toMatchObject({ code: 'SB_ERR_NOT_FOUND' });
  });

  it('a server that cannot start: a clear error, one attempt shared by concurrent callers, then backoff', async () => {
    const calls = await Promise.allSettled(
      Array.from({ length: 10 }, () => t.pool.callTool(11, 'echo', { message: 'x' })),
    );
    for (const c of calls) {
      expect(c.status).toBe('rejected');
      expect((c as PromiseRejectedResult).reason).toMatchObject({
        code: 'SB_ERR_UPSTREAM_UNAVAILABLE',
        message: expect.stringContaining('cannot connect'),
      });
    }
    const attempts = await t.metrics.registry.getSingleMetricAsString('switchboard_pool_reconnects_total');
    expect(attempts).not.toMatch(/server="11"} [2-9]/);
    expect(t.pool.status(11)).toMatchObject({
      connected: false,
      lastError: expect.stringContaining('cannot connect'),
    });
  });

  it('caches the tool list and refreshes it on notifications/tools/list_changed', async () => {
    const seen: UpstreamNotification[] = [];
    const unsubscribe = t.pool.subscribe(1, (n) => seen.push(n));
    const first = await t.pool.listTools(1);
    expect(first.map((x) => x.name)).toEqual(
      expect.arrayContaining(['sleep', 'crash', 'hang', 'concurrency', 'stats']),
    );
    expect(first.map((x) => x.name)).not.toContain('extra');
    expect(await t.pool.listTools(1)).toBe(first); // cached
    await t.pool.callTool(1, 'toggle_extra', {});
    await waitFor(
      () => seen.some((n) => n.method === 'notifications/tools/list_changed'),
      'tools/list_changed',
    );
    const second = await t.pool.listTools(1);
    expect(second.map((x) => x.name)).toContain('extra');
    await t.pool.callTool(1, 'toggle_extra', {});
    unsubscribe();
  });

  it('invalidate() closes the old connections and the next call uses the new config', async () => {
    const old = await stats(2);
    t.records.set(2, flakyRecord(2, { max_concurrency: 1 }, { env: { GENERATION: '2' }, configVersion: 2 }));
    await t.pool.invalidate(2);
    expect(isAlive(old.pid)).toBe(false);
    const results = await Promise.all(
      Array.from({ length: 6 }, () => t.pool.callTool(2, 'concurrency', { ms: 30 })),
    );
    for (const r of results) expect(structured<{ maxConcurrent: number }>(r.result).maxConcurrent).toBe(1);
    const { env } = structured<{ env: Record<string, string> }>((await t.pool.callTool(2, 'env', {})).result);
    expect(env.GENERATION).toBe('2');
    expect(t.events.at(-1)).toMatchObject({ serverId: 2, configVersion: 2 });
  });

  it('invalidate() moves calls waiting for a slot to the new entry', async () => {
    t.records.set(8, flakyRecord(8, { max_concurrency: 1, max_queue: 10 }));
    await t.pool.invalidate(8);
    const running = t.pool.callTool(8, 'sleep', { ms: 300 });
    await waitFor(() => t.pool.status(8).inFlight === 1, 'first call running');
    const waiting = t.pool.callTool(8, 'echo', { message: 'moved' });
    await waitFor(() => t.pool.status(8).queued === 1, 'second call queued');
    t.records.set(8, flakyRecord(8, { max_concurrency: 4 }));
    const invalidated = t.pool.invalidate(8);
    expect(structured((await waiting).result)).toMatchObject({ message: 'moved' });
    expect(structured((await running).result)).toMatchObject({ cancelled: false }); // drained, not killed
    await invalidated;
  });
});

describe('shutdown', () => {
  it('close() stops every child; later calls fail with SB_ERR_CLOSED', async () => {
    const pool = createTestPool([flakyRecord(1, { instances: 2, max_concurrency: 4 })]);
    const pidsBefore = await childPidsExcept([]);
    await Promise.all(Array.from({ length: 4 }, () => pool.pool.callTool(1, 'concurrency', { ms: 100 })));
    const running = pool.pool.status(1).pids;
    expect(running).toHaveLength(2);
    const hanging = expect(pool.pool.callTool(1, 'hang', {})).rejects.toMatchObject({
      code: 'SB_ERR_CLOSED',
    });
    const ours = (await childPidsExcept(pidsBefore)).filter((p) => running.includes(p));
    expect(ours).toHaveLength(2);
    await Promise.all([pool.pool.close(), pool.pool.close()]);
    await hanging;
    for (const pid of running) expect(isAlive(pid)).toBe(false);
    expect((await childPidsExcept(pidsBefore)).filter((p) => running.includes(p))).toEqual([]);
    await expect(pool.pool.callTool(1, 'echo', { message: 'x' })).rejects.toMatchObject({
      code: 'SB_ERR_CLOSED',
    });
    await pool.pool.close();
  });

  it('close({ graceMs }) lets running calls finish, refuses new ones', async () => {
    const pool = createTestPool([flakyRecord(1)]);
    await pool.pool.callTool(1, 'echo', { message: 'warm' });
    const [pid] = pool.pool.status(1).pids;
    const running = pool.pool.callTool(1, 'sleep', { ms: 300 });
    await new Promise((r) => setTimeout(r, 50));
    const closing = pool.pool.close({ graceMs: 5_000 });
    await expect(pool.pool.callTool(1, 'echo', { message: 'late' })).rejects.toMatchObject({
      code: 'SB_ERR_CLOSED',
    });
    expect(structured((await running).result)).toMatchObject({ cancelled: false });
    await closing;
    expect(isAlive(pid!)).toBe(false);
  });

  it('leaves no child process behind after the whole suite', async () => {
    await t.pool.close();
    await waitFor(async () => (await childPidsExcept(before)).length === 0, 'no leaked children', 5_000);
  });
});
