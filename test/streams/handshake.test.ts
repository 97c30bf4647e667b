import { io } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drivers } from '../helpers/db.js';
import { type StreamTestHub, startStreamTestHub, until } from '../helpers/stream-hub.js';

/** Connects a raw socket.io client and resolves with 'connected' or the connect_error message and code. */
function tryConnect(
  url: string,
  opts: Parameters<typeof io>[1],
): Promise<{ connected: true } | { connected: false; message: string; code?: string }> {
  const socket = io(url, { reconnection: false, forceNew: true, transports: ['websocket'], ...opts });
  return new Promise((resolve) => {
    socket.once('connect', () => {
      socket.close();
      resolve({ connected: true });
    });
    socket.once('connect_error', (err: Error & { data?: { code?: string } }) => {
      socket.close();
      resolve({ connected: false, message: err.message, code: err.data?.code });
    });
  });
}

describe.each(drivers)('stream sessions and handshakes on %s', (driver) => {
  let t: StreamTestHub;
  beforeAll(async () => {
    t = await startStreamTestHub(driver, { SWITCHBOARD_ALLOWED_ORIGINS: 'http://allowed.example' });
  });
  afterAll(() => t?.close());

  it('starts a stream with the contract shape and a row in mcp_stream_sessions', async () => {
    const before = Date.now();
    const res = await t.api({
      method: 'POST',
      url: '/api/mcp/stream/start',
      payload: {
        serverId: 1,
        clientId: 'client-123',
        streamConfig: { topics: ['seo-analysis'], buffer_size: 1000 },
      },
    });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body).toMatchObject({ success: true, token: expect.any(String), expiresAt: expect.any(String) });
    expect(body.streamId).toMatch(/^stream-1-client-123-(\d+)$/);
    const epochMs = Number(/(\d+)$/.exec(body.streamId)![1]);
    expect(epochMs).toBeGreaterThanOrEqual(before);
    expect(body.wsUrl).toBe(`/mcp-stream/${body.streamId}`);
    expect(Date.parse(body.expiresAt)).toBeGreaterThan(Date.now());
    const row = await t.hub.db.query('SELECT * FROM mcp_active_streams WHERE stream_id = $1', [
      body.streamId,
    ]);
    expect(row.rows[0]).toMatchObject({ server_id: 1, client_id: 'client-123', server_name: 'seo' });
  });

  it('refuses bad bodies and unknown servers in the error shape', async () => {
    const bad = await t.api({ method: 'POST', url: '/api/mcp/stream/start', payload: { serverId: 1 } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.code).toBe('SB_ERR_VALIDATION');
    const unknown = await t.api({
      method: 'POST',
      url: '/api/mcp/stream/start',
      payload: { serverId: 999, clientId: 'x' },
    });
    expect(unknown.statusCode).toBe(404);
    const noAuth = await t.app.inject({
      method: 'POST',
      url: '/api/mcp/stream/start',
      payload: { serverId: 1, clientId: 'x' },
    });
    expect(noAuth.statusCode).toBe(401);
    const unknownStream = await t.api({
      method: 'POST',
      url: '/api/mcp/stream/stream-1-nope-1/token',
      payload: { clientId: 'x' },
    });
    expect(unknownStream.statusCode).toBe(404);
  });

  it('refuses handshakes without, with a wrong, an expired or another stream’s token, and from a bad origin', async () => {
    const a = await t.start({ serverId: 1, clientId: 'alice' });
    const b = await t.start({ serverId: 1, clientId: 'bob' });
    const url = `${t.baseUrl}${a.wsUrl}`;
    expect(await tryConnect(url, {})).toMatchObject({ connected: false, code: 'SB_ERR_UNAUTHORIZED' });
    const none = await tryConnect(url, {});
    expect(none.connected === false && none.message).toMatch(/token is required/);
    const wrong = await tryConnect(url, { auth: { token: 'sbst_wrong' } });
    expect(wrong).toMatchObject({ connected: false, code: 'SB_ERR_UNAUTHORIZED' });
    expect(wrong.connected === false && wrong.message).toMatch(/not valid/);
    const other = await tryConnect(url, { auth: { token: b.token } });
    expect(other).toMatchObject({ connected: false, code: 'SB_ERR_FORBIDDEN' });
    expect(other.connected === false && other.message).toMatch(/another stream/);
    const expired = await t.hub.streams.issueToken(a.streamId, 'alice', { ttlMs: 1 });
    await new Promise((r) => setTimeout(r, 5));
    const late = await tryConnect(url, { auth: { token: expired.token } });
    expect(late).toMatchObject({ connected: false, code: 'SB_ERR_UNAUTHORIZED' });
    expect(late.connected === false && late.message).toMatch(/expired/);
    const badOrigin = await tryConnect(url, {
      auth: { token: a.token },
      extraHeaders: { origin: 'http://evil.example' },
    });
    expect(badOrigin).toMatchObject({ connected: false, code: 'SB_ERR_FORBIDDEN' });
    expect(badOrigin.connected === false && badOrigin.message).toMatch(/origin/);
    expect(
      await tryConnect(url, { auth: { token: a.token }, extraHeaders: { origin: 'http://allowed.example' } }),
    ).toEqual({ connected: true });
    expect(await tryConnect(url, { auth: { token: a.token } })).toEqual({ connected: true });
    // A namespace of no stream is not created at all.
    const junk = await tryConnect(`${t.baseUrl}/mcp-stream/stream-junk`, { auth: { token: a.token } });
    expect(junk).toMatchObject({ connected: false, message: 'Invalid namespace' });
  });

  it('stop disconnects every client with a reason, marks the row inactive and refuses later handshakes', async () => {
    const owner = await t.start({ serverId: 1, clientId: 'owner' });
    await owner.connect();
    const guest = await t.join(owner.streamId, 'guest');
    await guest.connect();
    const stopped: unknown[] = [];
    const reasons: string[] = [];
    for (const c of [owner, guest]) {
      c.socket.on('stream-stopped', (p) => stopped.push(p));
      c.socket.on('disconnect', (reason) => reasons.push(reason));
    }
    const status = await t.api({ method: 'GET', url: '/api/mcp/stream/status' });
    const mine = status.json().streams.find((s: { streamId: string }) => s.streamId === owner.streamId);
    expect(mine).toMatchObject({
      serverId: 1,
      connectedClients: 2,
      active: true,
      clientIds: ['owner', 'guest'],
    });
    expect(mine.uptimeMs).toBeGreaterThanOrEqual(0);

    const res = await t.api({
      method: 'POST',
      url: '/api/mcp/stream/stop',
      payload: { streamId: owner.streamId },
    });
    expect(res.json()).toMatchObject({ success: true, disconnected: 2 });
    await until(() => reasons.length === 2, 'both clients disconnected');
    expect(reasons).toEqual(['io server disconnect', 'io server disconnect']);
    expect(stopped).toHaveLength(2);
    expect(stopped[0]).toMatchObject({ streamId: owner.streamId, reason: 'stopped through the API' });

    const row = await t.hub.db.query<{ active: boolean }>(
      'SELECT active FROM mcp_stream_sessions WHERE id = $1',
      [owner.streamId],
    );
    expect(row.rows[0]!.active).toBe(false);
    const view = await t.hub.db.query('SELECT 1 FROM mcp_active_streams WHERE stream_id = $1', [
      owner.streamId,
    ]);
    expect(view.rowCount).toBe(0);
    const again = await tryConnect(`${t.baseUrl}${owner.wsUrl}`, { auth: { token: owner.token } });
    expect(again).toMatchObject({ connected: false, code: 'SB_ERR_STREAM_STOPPED' });
    const after = await t.api({ method: 'GET', url: '/api/mcp/stream/status' });
    expect(after.json().streams.map((s: { streamId: string }) => s.streamId)).not.toContain(owner.streamId);
    const stopAgain = await t.api({
      method: 'POST',
      url: '/api/mcp/stream/stop',
      payload: { streamId: owner.streamId },
    });
    expect(stopAgain.statusCode).toBe(410);
  });
});
