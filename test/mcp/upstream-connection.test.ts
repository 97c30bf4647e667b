/**
 * Connection lifecycle details: the child's stderr in the log, the era verdict reused by later
 * connections, shutdown of a child that ignores stdin and SIGTERM, a server that never answers.
 */
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.js';
import {
  childPidsExcept,
  createTestPool,
  flakyRecord,
  isAlive,
  makeRecord,
  waitFor,
} from '../helpers/pool.js';

function capturingLogger(level = 'debug') {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger(level, {
    write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>),
  });
  return { log, lines };
}

describe('upstream connections', () => {
  it("logs the child's stderr at debug level under its server, and reuses the era verdict", async () => {
    const { log, lines } = capturingLogger();
    const t = createTestPool([flakyRecord(41, { instances: 2, max_concurrency: 4 })], { log });
    try {
      await Promise.all(Array.from({ length: 4 }, () => t.pool.callTool(41, 'concurrency', { ms: 200 })));
      await waitFor(() => t.pool.status(41).connections === 2, 'two connections');
      const stderrLines = () =>
        lines.filter((l) => typeof l.stderr === 'string' && String(l.stderr).includes('serving on stdio'));
      // stderr is read asynchronously: it may trail the handshake.
      await waitFor(() => stderrLines().length >= 2, 'stderr of both children');
      const stderr = stderrLines();
      expect(stderr[0]).toMatchObject({ level: 20, module: 'upstream', serverId: 41 });
      const connected = lines.filter((l) => l.msg === 'upstream connected');
      expect(connected.map((l) => l.negotiation)).toEqual(['probed', 'reused']);
      expect(connected.every((l) => l.protocolVersion === '2026-07-28')).toBe(true);
      // Secrets never reach the log: no env, no headers.
      expect(JSON.stringify(lines)).not.toContain('PATH');
    } finally {
      await t.pool.close();
    }
  });

  it('a child that ignores the end of stdin and SIGTERM is killed on close', async () => {
    const before = await childPidsExcept([]);
    const t = createTestPool([flakyRecord(42, {}, { env: { FLAKY_STUBBORN: '1' } })]);
    await t.pool.callTool(42, 'echo', { message: 'x' });
    const [pid] = t.pool.status(42).pids;
    const started = performance.now();
    await t.pool.close();
    // Only SIGKILL stops it, after the 2 s given to the end of stdin and the 2 s given to SIGTERM.
    expect(isAlive(pid!)).toBe(false);
    expect(performance.now() - started).toBeGreaterThan(3_500);
    expect(await childPidsExcept(before)).toEqual([]);
  });

  it('a server that never answers the handshake fails the call after the connect timeout; close does not wait for it', async () => {
    const silent = makeRecord({
      id: 43,
      command: 'node',
      args: ['-e', 'setInterval(() => {}, 1000)'],
      config: { retries: 0 },
    });
    const before = await childPidsExcept([]);
    const t = createTestPool([silent, { ...silent, id: 44 }], { connectTimeoutMs: 300 });
    // The probe times out (a silent stdio server counts as legacy), then the initialize handshake does.
    await expect(t.pool.callTool(43, 'anything', {})).rejects.toMatchObject({
      code: 'SB_ERR_UPSTREAM_UNAVAILABLE',
      message: expect.stringContaining('cannot connect'),
    });
    await waitFor(async () => (await childPidsExcept(before)).length === 0, 'failed child reaped');

    const t2 = createTestPool([{ ...silent, id: 44 }], { connectTimeoutMs: 30_000 });
    const pending = t2.pool.callTool(44, 'anything', {});
    const outcome = expect(pending).rejects.toMatchObject({ code: 'SB_ERR_CLOSED' });
    await new Promise((r) => setTimeout(r, 300));
    const closing = performance.now();
    await t2.pool.close();
    await outcome;
    // Close ended the pending connect instead of waiting out its 30 s.
    expect(performance.now() - closing).toBeLessThan(30_000);
    await t.pool.close();
    await waitFor(async () => (await childPidsExcept(before)).length === 0, 'no child left');
  });
});
