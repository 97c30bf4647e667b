import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drivers } from '../helpers/db.js';
import { flakyServer, startTestHub, type TestHub, testToken } from '../helpers/hub.js';

describe.each(drivers)('a client that goes away from a running execution on %s', (driver) => {
  let t: TestHub;
  let base: string;
  let flakyId: number;
  beforeAll(async () => {
    t = await startTestHub(driver);
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    base = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
    flakyId = await t.addStdioServer('flaky', [flakyServer]);
  });
  afterAll(() => t?.close());

  async function stats() {
    const res = await t.api({
      method: 'POST',
      url: `/api/mcp/servers/${flakyId}/tools/stats/call`,
      payload: {},
    });
    return res.json().result.structuredContent as { cancellations: number; running: number };
  }

  it('cancels it, upstream too, and stores it as cancelled', async () => {
    const bundle = await t.api({
      method: 'POST',
      url: '/api/mcp/bundle/create',
      payload: { bundleName: 'left', serverIds: [flakyId] },
    });
    const bundleId = bundle.json().bundleId;
    const ac = new AbortController();
    const request = fetch(`${base}/api/mcp/bundle/execute`, {
      method: 'POST',
      headers: { authorization: `Bearer ${testToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        bundleId,
        workflow: { steps: [{ server: 0, tool: 'sleep', args: { ms: 10_000 } }] },
      }),
      signal: ac.signal,
    }).catch((err: unknown) => err);
    for (let i = 0; i < 100 && (await stats()).running === 0; i++)
      await new Promise((r) => setTimeout(r, 25));
    ac.abort();
    expect(await request).toBeInstanceOf(Error);
    let status: string | undefined;
    for (let i = 0; i < 100; i++) {
      const { rows } = await t.hub.db.query<{ status: string }>(
        'SELECT status FROM mcp_bundle_executions WHERE bundle_id = $1',
        [bundleId],
      );
      status = rows[0]?.status;
      if (status !== 'running') break;
      await new Promise((r) => setTimeout(r, 25));
    }
    expect(status).toBe('cancelled');
    expect((await stats()).cancellations).toBe(1);
  });
});
