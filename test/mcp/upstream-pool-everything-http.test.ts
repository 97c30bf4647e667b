/**
 * The pool against server-everything over Streamable HTTP (its own Express app on 127.0.0.1): the shared
 * cases, sessions, and a load that must not print MaxListenersExceededWarning.
 */
import { describe, expect, it } from 'vitest';
import { everythingCases } from '../helpers/everything-cases.js';
import { createTestPool, everythingHttpRecord, startEverythingHttp, textOf } from '../helpers/pool.js';

everythingCases('Streamable HTTP', async () => {
  const server = await startEverythingHttp();
  return {
    record: (id, config) => everythingHttpRecord(id, server.url, config),
    async killUpstream() {
      await server.kill();
      await server.restart();
    },
    after: () => server.kill(),
  };
});

describe('server-everything over Streamable HTTP: sessions and load', () => {
  it('instances are sessions; 2,000 calls at 32 in flight print no MaxListenersExceededWarning', async () => {
    const server = await startEverythingHttp();
    const t = createTestPool([everythingHttpRecord(1, server.url, { instances: 2, max_concurrency: 32 })]);
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      let next = 0;
      const started = performance.now();
      await Promise.all(
        Array.from({ length: 32 }, async () => {
          while (next < 2_000) {
            const i = next++;
            const { result } = await t.pool.callTool(1, 'echo', { message: `n${i}` });
            expect(textOf(result)).toBe(`Echo: n${i}`);
          }
        }),
      );
      const seconds = (performance.now() - started) / 1000;
      console.log(`2000 echo calls over HTTP at 32 in flight: ${(2000 / seconds).toFixed(0)} calls/s`);
      // Give deferred warnings (emitted on the next tick) a chance to show.
      await new Promise((r) => setTimeout(r, 50));
      expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([]);
      expect(t.pool.status(1).connections).toBe(2);
    } finally {
      process.off('warning', onWarning);
      await t.pool.close();
      await server.kill();
    }
    // server-everything's HTTP app manages ≈ 700 calls/s on an idle machine; give a loaded one room.
  }, 120_000);
});
