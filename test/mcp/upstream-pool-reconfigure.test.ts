/**
 * reconfigure() against real flaky processes: hub-side knobs change on the live entry and its processes
 * stay (same pids); a transport change, disable or enable restarts them. Needs `npm run build`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServerConfig, ServerRecord } from '../../src/servers/payloads.js';
import {
  assertFlakyBuilt,
  childPidsExcept,
  createTestPool,
  flakyRecord,
  flakyScript,
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
    flakyRecord(1, { max_concurrency: 2 }),
    flakyRecord(2, { max_concurrency: 1 }),
    flakyRecord(3, { max_concurrency: 4 }),
    flakyRecord(4, { timeout_ms: 30_000 }),
    flakyRecord(5, { retries: 0 }),
    flakyRecord(6, { instances: 1, max_concurrency: 12 }),
    flakyRecord(7, {}, { env: { GENERATION: '1' } }),
    flakyRecord(8, {}, { env: { ALPHA: '1', BETA: '2' } }),
  ]);
});

afterAll(async () => {
  await t.pool.close();
});

const stats = (id: number) => flakyStats(t, id);
const pidOf = (r: { result: Parameters<typeof structured>[0] }) => structured<{ pid: number }>(r.result).pid;

async function reconfigure(id: number, config: ServerConfig, extra: Partial<ServerRecord> = {}) {
  const configVersion = (t.records.get(id)?.configVersion ?? 1) + 1;
  t.records.set(id, flakyRecord(id, config, { configVersion, ...extra }));
  await t.pool.reconfigure(id);
}

describe('reconfigure in place', () => {
  it('timeout_ms, max_concurrency and retries change without a restart; the server sees the new limit', async () => {
    await Promise.all(Array.from({ length: 8 }, () => t.pool.callTool(1, 'concurrency', { ms: 60 })));
    const { pid, maxConcurrent } = await stats(1);
    expect(maxConcurrent).toBe(2);
    await reconfigure(1, { max_concurrency: 4, timeout_ms: 20_000, retries: 2 });
    expect(t.pool.status(1).pids).toEqual([pid]);
    const results = await Promise.all(
      Array.from({ length: 12 }, () => t.pool.callTool(1, 'concurrency', { ms: 60 })),
    );
    expect(new Set(results.map(pidOf))).toEqual(new Set([pid]));
    expect((await stats(1)).maxConcurrent).toBe(4);
    expect(t.pool.status(1).pids).toEqual([pid]);
    expect(t.events.at(-1)).toMatchObject({ serverId: 1, configVersion: 2 });
  });

  it('a higher max_concurrency admits the calls already waiting', async () => {
    const calls = Array.from({ length: 4 }, () => t.pool.callTool(2, 'concurrency', { ms: 400 }));
    await waitFor(() => t.pool.status(2).queued === 3, 'three calls waiting for the one slot');
    const [pid] = t.pool.status(2).pids;
    await reconfigure(2, { max_concurrency: 4 });
    const results = await Promise.all(calls);
    expect(new Set(results.map(pidOf))).toEqual(new Set([pid]));
    expect((await stats(2)).maxConcurrent).toBe(4);
  });

  it('a lower max_concurrency lets running calls finish, and holds new ones to it', async () => {
    const { pid } = await stats(3);
    const running = Array.from({ length: 4 }, () => t.pool.callTool(3, 'sleep', { ms: 300 }));
    await waitFor(() => t.pool.status(3).inFlight === 4, 'four calls running');
    await reconfigure(3, { max_concurrency: 1 });
    const next = Array.from({ length: 3 }, () => t.pool.callTool(3, 'echo', { message: 'after' }));
    await waitFor(() => t.pool.status(3).queued === 3, 'the new calls held to one slot');
    expect(t.pool.status(3).inFlight).toBe(4);
    for (const r of await Promise.all(running))
      expect(structured(r.result)).toMatchObject({ cancelled: false });
    for (const r of await Promise.all(next)) expect(pidOf(r)).toBe(pid);
    expect(t.pool.status(3).pids).toEqual([pid]);
  });

  it('a new timeout_ms applies to calls that start after the change, not to a running one', async () => {
    // Connected and listed first, so that the one request in flight below is the call itself.
    const { pid } = await stats(4);
    const running = t.pool.callTool(4, 'sleep', { ms: 800 });
    await waitFor(() => t.pool.status(4).inFlight === 1, 'the call running');
    await reconfigure(4, { timeout_ms: 200 });
    await expect(t.pool.callTool(4, 'sleep', { ms: 800 })).rejects.toMatchObject({
      code: 'SB_ERR_UPSTREAM_TIMEOUT',
    });
    expect(structured((await running).result)).toMatchObject({ cancelled: false, pid });
    expect(t.pool.status(4).pids).toEqual([pid]);
  });

  it('new retries apply to the next call whose connection dies before an answer', async () => {
    const { pid } = await stats(5);
    const unretried = t.pool.callTool(5, 'sleep', { ms: 2_000 });
    await waitFor(() => t.pool.status(5).inFlight === 1, 'the call running');
    process.kill(pid, 'SIGKILL');
    await expect(unretried).rejects.toMatchObject({ code: 'SB_ERR_UPSTREAM_UNAVAILABLE' });
    const { pid: pid2 } = await stats(5);
    await reconfigure(5, { retries: 1 });
    expect(t.pool.status(5).pids).toEqual([pid2]);
    const retried = t.pool.callTool(5, 'sleep', { ms: 400 });
    await waitFor(() => t.pool.status(5).inFlight === 1, 'the call running');
    process.kill(pid2, 'SIGKILL');
    expect(pidOf(await retried)).not.toBe(pid2);
  });

  it('instances 1 → 3 keeps the first process and adds two', async () => {
    const { pid } = await stats(6);
    await reconfigure(6, { instances: 3, max_concurrency: 12 });
    expect(t.pool.status(6).pids).toEqual([pid]);
    const results = await Promise.all(
      Array.from({ length: 24 }, () => t.pool.callTool(6, 'concurrency', { ms: 150 })),
    );
    const pids = new Set(results.map(pidOf));
    expect(pids.size).toBe(3);
    expect(pids.has(pid)).toBe(true);
    expect(new Set(t.pool.status(6).pids)).toEqual(pids);
    expect(t.pool.status(6).pids[0]).toBe(pid);
  });

  it('instances 3 → 1 keeps one; the others finish their calls, take no new ones, then exit', async () => {
    const [kept, ...removed] = t.pool.status(6).pids as [number, number, number];
    expect(removed).toHaveLength(2);
    const running = Array.from({ length: 3 }, () => t.pool.callTool(6, 'sleep', { ms: 1_000 }));
    await waitFor(() => t.pool.status(6).inFlight === 3, 'a call on each process');
    await reconfigure(6, { instances: 1, max_concurrency: 12 });
    expect(t.pool.status(6).pids).toEqual([kept]);
    const during = await Promise.all(
      Array.from({ length: 4 }, () => t.pool.callTool(6, 'echo', { message: 'kept' })),
    );
    for (const r of during) expect(pidOf(r)).toBe(kept);
    const finished = await Promise.all(running);
    expect(new Set(finished.map(pidOf))).toEqual(new Set([kept, ...removed]));
    for (const r of finished) expect(structured(r.result)).toMatchObject({ cancelled: false });
    await waitFor(() => removed.every((p) => !isAlive(p)), 'the removed processes exited');
    expect(isAlive(kept)).toBe(true);
    expect(t.pool.status(6)).toMatchObject({ connections: 1, pids: [kept] });
  });

  it('the same env in another key order is no change: no restart', async () => {
    const { pid } = await stats(8);
    await reconfigure(8, {}, { env: { BETA: '2', ALPHA: '1' } });
    expect((await stats(8)).pid).toBe(pid);
    expect(t.pool.status(8).pids).toEqual([pid]);
  });

  it('a free config key (a tunable of the server) is hub-side: no restart', async () => {
    const { pid } = await stats(7);
    await reconfigure(7, { temperature: 0.2 }, { env: { GENERATION: '1' } });
    expect((await stats(7)).pid).toBe(pid);
  });
});

describe('reconfigure with a restart', () => {
  it('a change of args restarts the process', async () => {
    const { pid } = await stats(7);
    await reconfigure(7, {}, { env: { GENERATION: '1' }, args: [flakyScript, '--changed'] });
    expect(isAlive(pid)).toBe(false);
    expect((await stats(7)).pid).not.toBe(pid);
  });

  it('a change of env restarts the process, which sees the new value', async () => {
    const { pid } = await stats(7);
    await reconfigure(7, {}, { env: { GENERATION: '2' }, args: [flakyScript, '--changed'] });
    expect(isAlive(pid)).toBe(false);
    const { env } = structured<{ env: Record<string, string> }>((await t.pool.callTool(7, 'env', {})).result);
    expect(env.GENERATION).toBe('2');
  });

  it('disabling refuses calls and stops the process; enabling starts a new one', async () => {
    const { pid } = await stats(7);
    const record = t.records.get(7)!;
    await reconfigure(7, {}, { ...record, enabled: false });
    expect(isAlive(pid)).toBe(false);
    await expect(t.pool.callTool(7, 'echo', { message: 'x' })).rejects.toMatchObject({
      code: 'SB_ERR_SERVER_DISABLED',
    });
    await reconfigure(7, {}, { ...record, enabled: true });
    expect((await stats(7)).pid).not.toBe(pid);
  });

  it('leaves no child process behind', async () => {
    await t.pool.close();
    await waitFor(async () => (await childPidsExcept(before)).length === 0, 'no leaked children', 5_000);
  });
});
