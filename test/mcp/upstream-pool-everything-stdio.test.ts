/** The pool against server-everything over stdio: the shared cases, plus env isolation and process counts. */
import { describe, expect, it } from 'vitest';
import { everythingCases } from '../helpers/everything-cases.js';
import {
  childPidsExcept,
  createTestPool,
  everythingStdioRecord,
  isAlive,
  textOf,
  waitFor,
} from '../helpers/pool.js';

everythingCases('stdio', async () => ({
  record: (id, config) => everythingStdioRecord(id, config),
  async killUpstream(t, id) {
    const [pid] = t.pool.status(id).pids;
    if (!pid) throw new Error('no child to kill');
    process.kill(pid, 'SIGKILL');
  },
}));

describe('server-everything over stdio: processes', () => {
  it('the child sees only its configured env plus PATH', async () => {
    const t = createTestPool([
      everythingStdioRecord(1, {}, { env: { EVERYTHING_FLAVOUR: 'isolated', API_KEY: 'k' } }),
    ]);
    try {
      const env = JSON.parse(textOf((await t.pool.callTool(1, 'get-env', {})).result)) as Record<
        string,
        string
      >;
      expect(Object.keys(env).sort()).toEqual(['API_KEY', 'EVERYTHING_FLAVOUR', 'PATH']);
      expect(env.EVERYTHING_FLAVOUR).toBe('isolated');
    } finally {
      await t.pool.close();
    }
  });

  it('one process per instance whatever the number of callers, none left after close', async () => {
    const before = await childPidsExcept([]);
    const t = createTestPool([everythingStdioRecord(1, { instances: 2, max_concurrency: 8 })]);
    for (let round = 0; round < 3; round++) {
      await Promise.all(
        Array.from({ length: 64 }, (_, i) => t.pool.callTool(1, 'echo', { message: `${i}` })),
      );
    }
    // The second instance opens when the first is busy; it may still be starting after the calls.
    await waitFor(() => t.pool.status(1).connections === 2, 'second instance');
    const pids = t.pool.status(1).pids;
    expect(new Set(pids).size).toBe(2);
    expect((await childPidsExcept(before)).sort()).toEqual([...pids].sort());
    await t.pool.close();
    for (const pid of pids) expect(isAlive(pid)).toBe(false);
    await waitFor(async () => (await childPidsExcept(before)).length === 0, 'no children left');
  });
});
