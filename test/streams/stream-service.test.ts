import { randomBytes } from 'node:crypto';
import { createClient } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/db.js';
import { createLogger } from '../../src/logger.js';
import type { RedisClient } from '../../src/realtime/redis.js';
import type { StreamServerToClient } from '../../src/realtime/stream-events.js';
import { RedisStreamStore } from '../../src/streams/redis-stream-store.js';
import { type StreamPeer, StreamService } from '../../src/streams/stream-service.js';
import { flakyServer, startTestHub, type TestHub } from '../helpers/hub.js';
import { deleteRedisKeys, redisUrl } from '../helpers/redis.js';
import { until } from '../helpers/stream-hub.js';

/** An active mcp_stream_sessions row of a hub that is not this test's, last vouched for `agoMs` ago. */
async function foreignStream(db: Db, serverId: number, agoMs: number): Promise<string> {
  const id = `stream-${serverId}-elsewhere-${randomBytes(4).toString('hex')}`;
  await db.query(
    `INSERT INTO mcp_stream_sessions (id, server_id, client_id, started_at, last_seen_at, active)
     VALUES ($1, $2, 'elsewhere', LOCALTIMESTAMP - interval '1 hour', LOCALTIMESTAMP - make_interval(secs => $3), true)`,
    [id, serverId, agoMs / 1000],
  );
  return id;
}

const activeOf = async (db: Db, ids: string[]) =>
  Object.fromEntries(
    (
      await db.query<{ id: string; active: boolean }>(
        'SELECT id, active FROM mcp_stream_sessions WHERE id = ANY($1)',
        [ids],
      )
    ).rows.map((r) => [r.id, r.active]),
  );

/** A peer that records what it is sent, as a socket would deliver it. */
function fakePeer(clientId: string) {
  const received: { event: keyof StreamServerToClient; payload: unknown }[] = [];
  const disconnects: string[] = [];
  const peer: StreamPeer = {
    clientId,
    send: (event, payload) => received.push({ event, payload }),
    disconnect: (reason) => disconnects.push(reason),
  };
  return { peer, received, disconnects };
}

describe('StreamService without sockets', () => {
  let t: TestHub;
  let service: StreamService;
  let flakyId: number;
  beforeAll(async () => {
    t = await startTestHub('pglite');
    flakyId = await t.addStdioServer('flaky', [flakyServer]);
    service = new StreamService({
      db: t.hub.db,
      pool: t.hub.pool,
      registry: t.hub.registry,
      events: t.hub.events,
      log: createLogger('silent'),
      idleTimeoutMs: 150,
      flushIntervalMs: 25,
      heartbeatMs: 50,
    });
    service.start();
  });
  afterAll(async () => {
    await service?.close();
    await t?.close();
  });

  const counters = async (id: string) =>
    (
      await t.hub.db.query<{ messages_received: number; messages_sent: number; active: boolean }>(
        'SELECT messages_received, messages_sent, active FROM mcp_stream_sessions WHERE id = $1',
        [id],
      )
    ).rows[0];

  it('writes its counters to mcp_stream_sessions, which mcp_active_streams reflects', async () => {
    const { streamId } = await service.startStream({ serverId: flakyId, clientId: 'a' });
    const ctx = await service.authenticate(streamId, (await service.issueToken(streamId, 'a')).token);
    const p = fakePeer('a');
    const detach = service.attach(ctx, p.peer);
    const bucket = service.rateLimiter(streamId);
    for (const message of ['one', 'two']) {
      const payload = { type: 'echo', message };
      expect(service.admit(ctx, 'client-message', payload, bucket)).toBeUndefined();
      expect(await service.handleMessage(ctx, payload)).toMatchObject({ ok: true });
    }
    expect(p.received.map((r) => r.event)).toEqual(['server-response', 'server-response']);
    let row = await counters(streamId);
    for (let i = 0; i < 100 && row?.messages_sent !== 2; i++) {
      await new Promise((r) => setTimeout(r, 20));
      row = await counters(streamId);
    }
    expect(row).toEqual({ messages_received: 2, messages_sent: 2, active: true });
    const view = await t.hub.db.query(
      'SELECT messages_received, messages_sent FROM mcp_active_streams WHERE stream_id = $1',
      [streamId],
    );
    expect(view.rows[0]).toEqual({ messages_received: 2, messages_sent: 2 });
    detach();
  });

  it('vouches for its streams, and sweeps the active rows of streams no hub serves any more', async () => {
    const { streamId: live } = await service.startStream({ serverId: flakyId, clientId: 'live' });
    const seen = async () =>
      (
        await t.hub.db.query<{ at: Date | null }>(
          'SELECT last_seen_at AS at FROM mcp_stream_sessions WHERE id = $1',
          [live],
        )
      ).rows[0]?.at;
    const first = await seen();
    // Nothing happens on it, yet its hub keeps saying that it serves it.
    let later = await seen();
    for (let i = 0; i < 100 && later?.getTime() === first?.getTime(); i++) {
      await new Promise((r) => setTimeout(r, 20));
      later = await seen();
    }
    expect(later?.getTime()).toBeGreaterThan(first?.getTime() ?? 0);
    const dead = await foreignStream(t.hub.db, flakyId, 10 * 60_000);
    const alive = await foreignStream(t.hub.db, flakyId, 1_000);
    expect(await service.sweepUnattended()).toEqual([dead]);
    expect(await activeOf(t.hub.db, [live, dead, alive])).toEqual({
      [live]: true,
      [dead]: false,
      [alive]: true,
    });
    const listed = await t.hub.db.query<{ stream_id: string }>('SELECT stream_id FROM mcp_active_streams');
    expect(listed.rows.map((r) => r.stream_id)).not.toContain(dead);
    expect(await service.sweepUnattended()).toEqual([]);
  });

  it('server notifications reach every client of the stream as server-notification', async () => {
    const { streamId } = await service.startStream({ serverId: flakyId, clientId: 'a' });
    const a = fakePeer('a');
    const b = fakePeer('b');
    service.attach({ streamId, clientId: 'a' }, a.peer);
    service.attach({ streamId, clientId: 'b' }, b.peer);
    await service.handleMessage({ streamId, clientId: 'a' }, { type: 'toggle_extra' });
    await until(
      () => b.received.some((r) => r.event === 'server-notification'),
      'the tools/list_changed notification',
    );
    const n = b.received.find((r) => r.event === 'server-notification')!.payload;
    expect(n).toMatchObject({ method: 'notifications/tools/list_changed', seq: expect.any(Number) });
    expect(a.received.some((r) => r.event === 'server-notification')).toBe(true);
  });

  it('a stream nobody uses expires after the idle time, inactive in the database', async () => {
    const { streamId } = await service.startStream({ serverId: flakyId, clientId: 'idle' });
    const p = fakePeer('idle');
    const detach = service.attach({ streamId, clientId: 'idle' }, p.peer);
    await new Promise((r) => setTimeout(r, 300));
    // Connected clients keep it alive.
    expect(await service.isKnown(streamId)).toBe(true);
    const listed = async () => (await service.status()).some((s) => s.streamId === streamId);
    expect(await listed()).toBe(true);
    detach();
    for (let i = 0; i < 150 && (await listed()); i++) await new Promise((r) => setTimeout(r, 20));
    expect(await listed()).toBe(false);
    await expect(service.issueToken(streamId, 'x')).rejects.toMatchObject({ code: 'SB_ERR_STREAM_STOPPED' });
    let row = await counters(streamId);
    for (let i = 0; i < 50 && row?.active !== false; i++) {
      await new Promise((r) => setTimeout(r, 20));
      row = await counters(streamId);
    }
    expect(row?.active).toBe(false);
  });

  it('after close, new work fails with SB_ERR_CLOSED and close is idempotent', async () => {
    const other = new StreamService({
      db: t.hub.db,
      pool: t.hub.pool,
      registry: t.hub.registry,
      events: t.hub.events,
      log: createLogger('silent'),
    });
    const { streamId } = await other.startStream({ serverId: flakyId, clientId: 'z' });
    const p = fakePeer('z');
    other.attach({ streamId, clientId: 'z' }, p.peer);
    await other.close();
    await other.close();
    expect(p.disconnects).toEqual(['hub shutting down']);
    expect(p.received.at(-1)).toMatchObject({
      event: 'stream-stopped',
      payload: { reason: 'hub shutting down' },
    });
    await expect(other.startStream({ serverId: flakyId, clientId: 'z' })).rejects.toMatchObject({
      code: 'SB_ERR_CLOSED',
    });
    expect((await counters(streamId))?.active).toBe(false);
  });
});

describe('sweeping streams with their state in Redis', () => {
  const prefix = `sbtest-${randomBytes(4).toString('hex')}:`;
  let t: TestHub;
  let redis: RedisClient;
  let flakyId: number;
  const services: StreamService[] = [];
  /** Another hub's stream service, as far as streams go: the shared store, this test's database and pool. */
  const serviceOn = (
    store: RedisStreamStore,
    options: { staleAfterMs?: number; idleTimeoutMs?: number } = {},
  ) => {
    const service = new StreamService({
      db: t.hub.db,
      pool: t.hub.pool,
      registry: t.hub.registry,
      events: t.hub.events,
      log: createLogger('silent'),
      store,
      flushIntervalMs: 25,
      ...options,
    });
    services.push(service);
    return service;
  };
  beforeAll(async () => {
    // PostgreSQL: where streams are shared in practice (and the sweep's SQL runs on both drivers).
    t = await startTestHub('postgres');
    flakyId = await t.addStdioServer('flaky', [flakyServer]);
    redis = createClient({ url: redisUrl });
    await redis.connect();
  });
  afterAll(async () => {
    for (const service of services) await service.close();
    await redis?.close();
    await t?.close();
    await deleteRedisKeys(prefix);
  });

  it('keeps a stream that a client may still resume, and sweeps one whose Redis state has expired', async () => {
    const store = new RedisStreamStore(redis, { prefix, keyTtlMs: 60_000 });
    // A hub starts a stream, then shuts down: its clients may resume it on another hub.
    const leaving = serviceOn(store);
    const { streamId: resumable } = await leaving.startStream({ serverId: flakyId, clientId: 'r' });
    await leaving.close();
    const expired = await foreignStream(t.hub.db, flakyId, 10 * 60_000);
    const other = serviceOn(store, { staleAfterMs: 1 });
    await new Promise((r) => setTimeout(r, 20));
    expect(await other.sweepUnattended()).toEqual([expired]);
    expect(await activeOf(t.hub.db, [resumable, expired])).toEqual({ [resumable]: true, [expired]: false });
  });

  it('a stream idle on one hub but used on another is let go of there, not stopped; idle everywhere, it stops', async () => {
    const store = new RedisStreamStore(redis, { prefix, keyTtlMs: 60_000 });
    const a = serviceOn(store, { idleTimeoutMs: 150 });
    const b = serviceOn(store, { idleTimeoutMs: 150 });
    a.start();
    b.start();
    const { streamId } = await a.startStream({ serverId: flakyId, clientId: 'x' });
    const ctx = await b.authenticate(streamId, (await b.issueToken(streamId, 'x')).token);
    const client = fakePeer('x');
    const detach = b.attach(ctx, client.peer);
    // Well past the idle time on A, which has no client of it: A lets go, the stream stays.
    await new Promise((r) => setTimeout(r, 600));
    expect(await activeOf(t.hub.db, [streamId])).toEqual({ [streamId]: true });
    expect((await b.status()).some((x) => x.streamId === streamId)).toBe(true);
    expect(client.disconnects).toEqual([]);
    detach();
    let row = await activeOf(t.hub.db, [streamId]);
    for (let i = 0; i < 100 && row[streamId] !== false; i++) {
      await new Promise((r) => setTimeout(r, 20));
      row = await activeOf(t.hub.db, [streamId]);
    }
    expect(row).toEqual({ [streamId]: false });
    await expect(a.issueToken(streamId, 'y')).rejects.toMatchObject({ code: 'SB_ERR_STREAM_STOPPED' });
  });
});
