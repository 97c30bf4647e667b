import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drivers } from '../helpers/db.js';
import { everythingServer, flakyServer, startTestHub, type TestHub, testToken } from '../helpers/hub.js';

const page = `<html><head><title>Fresh Coffee Beans | Roastery</title>
<meta name="description" content="Single origin coffee beans roasted weekly."></head>
<body><h1>Coffee beans</h1><p>Our coffee beans are roasted weekly. Coffee lovers choose our beans.</p>
<img src="a.png"></body></html>`;

async function waitFor<T>(probe: () => Promise<T | undefined>, what: string): Promise<T> {
  for (let i = 0; i < 100; i++) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe.each(drivers)('tool calls over REST on %s', (driver) => {
  let t: TestHub;
  let everythingId: number;
  let flakyId: number;
  beforeAll(async () => {
    t = await startTestHub(driver);
    everythingId = await t.addStdioServer('everything', [everythingServer, 'stdio']);
    flakyId = await t.addStdioServer('flaky', [flakyServer]);
  });
  afterAll(() => t?.close());

  it('analyses an HTML string with the seeded seo server (id 1) and shows the negotiated protocol', async () => {
    const res = await t.api({
      method: 'POST',
      url: '/api/mcp/servers/1/tools/analyze_seo/call',
      payload: { arguments: { html: page, keywords: ['coffee'] } },
    });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body).toMatchObject({ success: true, ok: true, outcome: 'success' });
    expect(body.result.structuredContent).toMatchObject({
      title: 'Fresh Coffee Beans | Roastery',
      images: { withoutAlt: 1 },
    });
    expect(body.result.structuredContent.score).toBeGreaterThan(0);
    const server = await waitFor(async () => {
      const s = (await t.api({ method: 'GET', url: '/api/mcp/servers/1' })).json().server;
      return s.protocol_version ? s : undefined;
    }, 'the negotiated version');
    expect(server).toMatchObject({ protocol_version: '2026-07-28', protocol_era: 'modern' });
    expect(server.status).toMatchObject({ connected: true, connections: 1 });
  });

  it('lists and calls the tools of server-everything, negotiated at 2025-11-25', async () => {
    const tools = await t.api({ method: 'GET', url: `/api/mcp/servers/${everythingId}/tools` });
    expect(tools.statusCode).toBe(200);
    expect(tools.json().tools.map((x: { name: string }) => x.name)).toContain('echo');
    const call = await t.api({
      method: 'POST',
      url: `/api/mcp/servers/${everythingId}/tools/echo/call`,
      payload: { arguments: { message: 'hello hub' } },
    });
    expect(call.json()).toMatchObject({
      ok: true,
      result: { content: [{ type: 'text', text: 'Echo: hello hub' }] },
    });
    const server = await waitFor(async () => {
      const s = (await t.api({ method: 'GET', url: `/api/mcp/servers/${everythingId}` })).json().server;
      return s.protocol_version ? s : undefined;
    }, 'the negotiated version');
    expect(server.protocol_version).toBe('2025-11-25');
  });

  it('reports a tool error as ok:false, an unknown tool as 404, and records each outcome', async () => {
    const failed = await t.api({
      method: 'POST',
      url: `/api/mcp/servers/${flakyId}/tools/fail/call`,
      payload: {},
    });
    expect(failed.statusCode).toBe(200);
    expect(failed.json()).toMatchObject({
      success: true,
      ok: false,
      outcome: 'tool_error',
      result: { isError: true },
    });

    const unknown = await t.api({
      method: 'POST',
      url: `/api/mcp/servers/${flakyId}/tools/nope/call`,
      payload: {},
    });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error).toMatchObject({ code: 'SB_ERR_TOOL_NOT_FOUND' });
    expect(unknown.json().error.details.available).toContain('sleep');

    const noServer = await t.api({
      method: 'POST',
      url: '/api/mcp/servers/4242/tools/echo/call',
      payload: {},
    });
    expect(noServer.statusCode).toBe(404);
    expect(noServer.json().error.code).toBe('SB_ERR_NOT_FOUND');

    const thrown = await t.api({
      method: 'POST',
      url: `/api/mcp/servers/${flakyId}/tools/throw/call`,
      payload: {},
    });
    expect(thrown.statusCode).toBe(502);
    expect(thrown.json().error.code).toBe('SB_ERR_UPSTREAM_PROTOCOL');

    await t.hub.recorder.flush();
    const { rows } = await t.hub.db.query<{
      tool_name: string;
      outcome: string;
      ok: boolean;
      source: string;
    }>(
      "SELECT tool_name, outcome, ok, source FROM mcp_events WHERE event_type = 'tool_call' AND server_id = $1 ORDER BY id",
      [flakyId],
    );
    expect(rows).toEqual(
      expect.arrayContaining([
        { tool_name: 'fail', outcome: 'tool_error', ok: false, source: 'rest' },
        { tool_name: 'nope', outcome: 'rejected', ok: false, source: 'rest' },
        { tool_name: 'throw', outcome: 'protocol_error', ok: false, source: 'rest' },
      ]),
    );
  });

  it('disabling a server refuses its calls; enabling it again works', async () => {
    await t.api({ method: 'PATCH', url: `/api/mcp/servers/${everythingId}`, payload: { enabled: false } });
    const refused = await t.api({
      method: 'POST',
      url: `/api/mcp/servers/${everythingId}/tools/echo/call`,
      payload: { arguments: { message: 'x' } },
    });
    expect(refused.statusCode).toBe(409);
    expect(refused.json().error.code).toBe('SB_ERR_SERVER_DISABLED');
    await t.api({ method: 'PATCH', url: `/api/mcp/servers/${everythingId}`, payload: { enabled: true } });
    const ok = await t.api({
      method: 'POST',
      url: `/api/mcp/servers/${everythingId}/tools/echo/call`,
      payload: { arguments: { message: 'back' } },
    });
    expect(ok.json().ok).toBe(true);
  });

  it('cancels the upstream call when the HTTP client goes away', async () => {
    const address = await t.app.listen({ port: 0, host: '127.0.0.1' });
    const controller = new AbortController();
    const pending = fetch(`${address}/api/mcp/servers/${flakyId}/tools/sleep/call`, {
      method: 'POST',
      headers: { authorization: `Bearer ${testToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ arguments: { ms: 10_000 } }),
      signal: controller.signal,
    });
    await new Promise((r) => setTimeout(r, 300));
    controller.abort();
    await expect(pending).rejects.toThrow();
    const stats = await waitFor(async () => {
      const res = await t.api({
        method: 'POST',
        url: `/api/mcp/servers/${flakyId}/tools/stats/call`,
        payload: {},
      });
      const s = res.json().result.structuredContent as { cancellations: number };
      return s.cancellations > 0 ? s : undefined;
    }, 'the cancellation to reach the server');
    expect(stats.cancellations).toBe(1);
  });
});
