import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drivers } from '../helpers/db.js';
import { startTestHub, type TestHub } from '../helpers/hub.js';

const secret = 'sk-live-very-secret-value-42';

describe.each(drivers)('server registry over REST on %s', (driver) => {
  let t: TestHub;
  beforeAll(async () => {
    t = await startTestHub(driver);
  });
  afterAll(() => t?.close());

  const tableSnapshot = async () =>
    (await t.hub.db.query('SELECT * FROM mcp_servers ORDER BY id')).rows.map((r) => JSON.stringify(r));

  it('refuses requests without a valid bearer token', async () => {
    const none = await t.app.inject({ method: 'GET', url: '/api/mcp/servers' });
    expect(none.statusCode).toBe(401);
    expect(none.json()).toMatchObject({ success: false, error: { code: 'SB_ERR_UNAUTHORIZED' } });
    const wrong = await t.api({
      method: 'GET',
      url: '/api/mcp/servers',
      headers: { authorization: 'Bearer nope' },
    });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.json().error.code).toBe('SB_ERR_UNAUTHORIZED');
    const health = await t.app.inject({ method: 'GET', url: '/healthz' });
    expect(health.statusCode).toBe(200);
    const ready = await t.app.inject({ method: 'GET', url: '/readyz' });
    expect(ready.json()).toMatchObject({ status: 'ready', database: driver });
  });

  it('lists the three example servers as ids 1, 2, 3', async () => {
    const res = await t.api({ method: 'GET', url: '/api/mcp/servers' });
    expect(res.statusCode).toBe(200);
    const { servers } = res.json();
    expect(servers.map((s: { id: number; name: string }) => [s.id, s.name])).toEqual([
      [1, 'seo'],
      [2, 'content'],
      [3, 'graphics'],
    ]);
  });

  it('creates, reads, changes and deletes a server, never returning secrets', async () => {
    const created = await t.api({
      method: 'POST',
      url: '/api/mcp/servers',
      payload: {
        name: 'everything',
        transport: 'stdio',
        command: 'node',
        args: ['node_modules/@modelcontextprotocol/server-everything/dist/index.js', 'stdio'],
        env: { API_KEY: secret, MODE: 'test' },
        config: { timeout_ms: 5000, max_concurrency: 4 },
      },
    });
    expect(created.statusCode).toBe(201);
    const server = created.json().server;
    expect(server).toMatchObject({
      name: 'everything',
      env: { API_KEY: '********', MODE: '********' },
      config_version: 1,
    });
    expect(server.effective_config).toMatchObject({ timeout_ms: 5000, max_concurrency: 4, instances: 1 });

    const http = await t.api({
      method: 'POST',
      url: '/api/mcp/servers',
      payload: {
        name: 'remote',
        transport: 'streamable-http',
        url: 'http://user:pw-secret@127.0.0.1:9/mcp',
        headers: { Authorization: `Bearer ${secret}` },
      },
    });
    expect(http.statusCode).toBe(201);
    expect(http.json().server.headers).toEqual({ Authorization: '********' });
    expect(http.json().server.url).not.toContain('pw-secret');

    const patched = await t.api({
      method: 'PATCH',
      url: `/api/mcp/servers/${server.id}`,
      payload: { config: { timeout_ms: 9000 }, env: { API_KEY: '********', MODE: 'prod' } },
    });
    expect(patched.statusCode).toBe(200);
    expect(patched.json().server).toMatchObject({ config: { timeout_ms: 9000 }, config_version: 2 });
    const stored = await t.hub.db.query<{ env: Record<string, string> }>(
      'SELECT env FROM mcp_servers WHERE id = $1',
      [server.id],
    );
    expect(stored.rows[0]!.env).toEqual({ API_KEY: secret, MODE: 'prod' });

    const got = await t.api({ method: 'GET', url: `/api/mcp/servers/${server.id}` });
    expect(got.statusCode).toBe(200);
    expect(got.json().server.name).toBe('everything');

    const dup = await t.api({
      method: 'POST',
      url: '/api/mcp/servers',
      payload: { name: 'everything', transport: 'stdio', command: 'node' },
    });
    expect(dup.statusCode).toBe(409);
    expect(dup.json().error.code).toBe('SB_ERR_CONFLICT');

    for (const url of ['/api/mcp/servers', `/api/mcp/servers/${server.id}`]) {
      const body = (await t.api({ method: 'GET', url })).body;
      expect(body).not.toContain(secret);
      expect(body).not.toContain('pw-secret');
    }

    const deleted = await t.api({ method: 'DELETE', url: `/api/mcp/servers/${server.id}` });
    expect(deleted.statusCode).toBe(200);
    expect((await t.api({ method: 'GET', url: `/api/mcp/servers/${server.id}` })).statusCode).toBe(404);
    const list = (await t.api({ method: 'GET', url: '/api/mcp/servers' })).json().servers;
    expect(list.map((s: { name: string }) => s.name)).not.toContain('everything');

    await t.hub.recorder.flush();
    const events = await t.hub.db.query<{ text: string }>('SELECT mcp_events::text AS text FROM mcp_events');
    expect(events.rows.length).toBeGreaterThan(0);
    for (const row of events.rows) {
      expect(row.text).not.toContain(secret);
      expect(row.text).not.toContain('pw-secret');
    }
  });

  it('imports an mcpServers client config file', async () => {
    const res = await t.api({
      method: 'POST',
      url: '/api/mcp/servers/import',
      payload: {
        mcpServers: {
          'files-a': {
            command: 'npx',
            args: ['-y', '@modelcontextprotocol/server-filesystem', '/tmp'],
            env: { TOKEN: secret },
          },
          'remote-b': { type: 'http', url: 'http://127.0.0.1:9/mcp', headers: { 'X-Api-Key': secret } },
          seo: { command: 'node', args: ['x.js'] },
        },
      },
    });
    expect(res.statusCode).toBe(201);
    const body = res.json();
    expect(body.created.map((s: { name: string; transport: string }) => [s.name, s.transport])).toEqual([
      ['files-a', 'stdio'],
      ['remote-b', 'streamable-http'],
    ]);
    expect(body.skipped).toEqual([{ name: 'seo', reason: 'a server with this name exists' }]);
    expect(res.body).not.toContain(secret);

    const before = await tableSnapshot();
    const bad = await t.api({
      method: 'POST',
      url: '/api/mcp/servers/import',
      payload: { mcpServers: { good: { command: 'node' }, bad: { args: ['no command or url'] } } },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.code).toBe('SB_ERR_VALIDATION');
    expect(await tableSnapshot()).toEqual(before);
  });

  it.each([
    [
      'malformed JSON',
      { method: 'POST', url: '/api/mcp/servers', body: '{"name": "x",', ct: 'application/json' },
      400,
      'SB_ERR_BAD_JSON',
    ],
    [
      'wrong types',
      { method: 'POST', url: '/api/mcp/servers', payload: { name: 5, transport: 'stdio', command: [] } },
      400,
      'SB_ERR_VALIDATION',
    ],
    [
      'unknown transport',
      { method: 'POST', url: '/api/mcp/servers', payload: { name: 'x', transport: 'carrier-pigeon' } },
      400,
      'SB_ERR_VALIDATION',
    ],
    [
      'an unknown field',
      {
        method: 'POST',
        url: '/api/mcp/servers',
        payload: { name: 'x', transport: 'stdio', command: 'node', shell: true },
      },
      400,
      'SB_ERR_VALIDATION',
    ],
    [
      'a config knob out of range',
      { method: 'PATCH', url: '/api/mcp/servers/1', payload: { config: { max_concurrency: 0 } } },
      400,
      'SB_ERR_VALIDATION',
    ],
    [
      'an unknown id',
      { method: 'PATCH', url: '/api/mcp/servers/9999', payload: { enabled: false } },
      404,
      'SB_ERR_NOT_FOUND',
    ],
    ['a non-numeric id', { method: 'GET', url: '/api/mcp/servers/abc' }, 400, 'SB_ERR_VALIDATION'],
    ['an id past int4', { method: 'DELETE', url: '/api/mcp/servers/99999999999' }, 400, 'SB_ERR_VALIDATION'],
    ['an unknown route', { method: 'GET', url: '/api/mcp/nothing-here' }, 404, 'SB_ERR_ROUTE_NOT_FOUND'],
    [
      'an oversized body',
      {
        method: 'POST',
        url: '/api/mcp/servers',
        payload: {
          name: 'big',
          transport: 'stdio',
          command: 'node',
          description: 'x'.repeat(2 * 1024 * 1024),
        },
      },
      413,
      'SB_ERR_PAYLOAD_TOO_LARGE',
    ],
    [
      'a stdio field on an http server',
      { method: 'PATCH', url: '/api/mcp/servers/1', payload: { url: 'http://127.0.0.1/x' } },
      400,
      'SB_ERR_VALIDATION',
    ],
  ] as const)('answers %s with %i %s and changes nothing', async (_name, req, status, code) => {
    const before = await tableSnapshot();
    const { ct, body, ...rest } = req as { ct?: string; body?: string; [k: string]: unknown };
    const res = await t.api({
      ...(rest as object),
      ...(body !== undefined ? { body, headers: { 'content-type': ct ?? 'application/json' } } : {}),
    } as Parameters<TestHub['api']>[0]);
    expect(res.statusCode).toBe(status);
    expect(res.json()).toMatchObject({ success: false, error: { code } });
    expect(typeof res.json().error.message).toBe('string');
    expect(await tableSnapshot()).toEqual(before);
  });

  it('serves the OpenAPI document and Prometheus metrics', async () => {
    const doc = await t.app.inject({ method: 'GET', url: '/docs/json' });
    expect(doc.statusCode).toBe(200);
    expect(Object.keys(doc.json().paths)).toEqual(
      expect.arrayContaining(['/api/mcp/servers', '/api/mcp/servers/{id}']),
    );
    const home = await t.app.inject({ method: 'GET', url: `/?token=${'x'.repeat(20)}` });
    expect(home.statusCode).toBe(302);
    expect(home.headers.location).toBe('/docs');
    const metrics = await t.app.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.body).toContain('switchboard_http_request_duration_seconds');
    expect(metrics.body).toContain('switchboard_recorder_events_written_total');
  });
});
