/**
 * PATCH /api/mcp/servers/:id on a running flaky server: hub-side knobs keep its process, a change of args
 * restarts it; cache_ttl_ms answers repeated read-only calls from the cache, recorded as such.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drivers } from '../helpers/db.js';
import { flakyServer, startTestHub, type TestHub } from '../helpers/hub.js';

describe.each(drivers)('reconfiguring a server over REST on %s', (driver) => {
  let t: TestHub;
  let id: number;
  beforeAll(async () => {
    t = await startTestHub(driver);
    id = await t.addStdioServer('flaky', [flakyServer], { max_concurrency: 2 });
  });
  afterAll(() => t?.close());

  const call = async (tool: string, args: Record<string, unknown> = {}) => {
    const res = await t.api({
      method: 'POST',
      url: `/api/mcp/servers/${id}/tools/${tool}/call`,
      payload: { arguments: args },
    });
    expect(res.statusCode).toBe(200);
    return res.json().result.structuredContent as Record<string, unknown>;
  };
  const pids = async () =>
    (await t.api({ method: 'GET', url: `/api/mcp/servers/${id}` })).json().server.status.pids as number[];
  const patch = async (payload: Record<string, unknown>) => {
    const res = await t.api({ method: 'PATCH', url: `/api/mcp/servers/${id}`, payload });
    expect(res.statusCode).toBe(200);
    return res.json().server;
  };

  it('a config change keeps the process and applies the new limit', async () => {
    await Promise.all(Array.from({ length: 6 }, () => call('concurrency', { ms: 60 })));
    const { pid, maxConcurrent } = await call('stats');
    expect(maxConcurrent).toBe(2);
    expect(await pids()).toEqual([pid]);
    const server = await patch({
      config: { max_concurrency: 4, timeout_ms: 20_000, retries: 2, cache_ttl_ms: 60_000 },
    });
    expect(server.config_version).toBe(2);
    expect(await pids()).toEqual([pid]);
    await Promise.all(Array.from({ length: 8 }, () => call('concurrency', { ms: 60 })));
    expect(await call('stats')).toMatchObject({ pid, maxConcurrent: 4 });
  });

  it('answers a repeated read-only call from the cache and records it with cached: true', async () => {
    const first = await call('lookup', { key: 'k', options: { a: 1, b: 2 } });
    const second = await call('lookup', { options: { b: 2, a: 1 }, key: 'k' });
    expect(second).toEqual(first);
    expect(await call('stats')).toMatchObject({ lookups: 1 });
    await t.hub.recorder.flush();
    const { rows } = await t.hub.db.query<{ cached: string | null; config_version: number; outcome: string }>(
      `SELECT event_data->>'cached' AS cached, config_version, outcome FROM mcp_events
        WHERE event_type = 'tool_call' AND server_id = $1 AND tool_name = 'lookup' ORDER BY id`,
      [id],
    );
    expect(rows).toEqual([
      { cached: null, config_version: 2, outcome: 'success' },
      { cached: 'true', config_version: 2, outcome: 'success' },
    ]);
    const metrics = await t.api({ method: 'GET', url: '/metrics' });
    expect(metrics.body).toMatch(
      new RegExp(`switchboard_upstream_cache_total\\{server="${id}",tool="lookup",result="hit"\\} 1`),
    );
  });

  it('a change of args restarts the process (and drops the cache)', async () => {
    const [pid] = await pids();
    await patch({ args: [flakyServer, '--restarted'] });
    const { pid: next } = await call('stats');
    expect(next).not.toBe(pid);
    expect(await pids()).toEqual([next]);
    expect(await call('lookup', { key: 'k', options: { a: 1, b: 2 } })).toMatchObject({
      lookups: 1,
      pid: next,
    });
  });
});
