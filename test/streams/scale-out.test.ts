/**
 * Two hub processes (the built hub, `npm run build`) on one PostgreSQL database and one Redis: streams are
 * shared. PostgreSQL only: an embedded PGlite database cannot be shared by two processes.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createClient } from 'redis';
import { io } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StreamClient, StreamRequestError } from '../../src/client/stream-client.js';
import type { StreamStopped, TopicMessage } from '../../src/realtime/stream-events.js';
import { flakyServer } from '../helpers/hub.js';
import { type HubPair, startHubPair } from '../helpers/hub-pair.js';
import { type HubProcess, processToken, startHubProcess } from '../helpers/hub-process.js';
import { type Child, freePort, startChild } from '../helpers/processes.js';
import { redisUrl } from '../helpers/redis.js';
import { until } from '../helpers/stream-hub.js';

const settle = () => new Promise((r) => setTimeout(r, 300));

describe('streams across two hub processes (PostgreSQL + Redis)', () => {
  const clients: StreamClient[] = [];
  let pair: HubPair;
  let prefix: string;
  let a: HubProcess;
  let b: HubProcess;
  let flakyId: number;

  const client = (hub: HubProcess) => ({ baseUrl: hub.base, apiToken: processToken });
  const track = (c: StreamClient) => {
    clients.push(c);
    return c;
  };
  const join = async (hub: HubProcess, streamId: string, clientId: string) =>
    track(await StreamClient.join({ ...client(hub), streamId, clientId }));
  const topicInbox = (c: StreamClient) => {
    const got: TopicMessage[] = [];
    c.on('topic-message', (m) => got.push(m));
    return got;
  };

  beforeAll(async () => {
    pair = await startHubPair();
    ({ a, b, prefix } = pair);
    const res = await fetch(`${a.base}/api/mcp/servers`, {
      method: 'POST',
      headers: a.headers,
      body: JSON.stringify({
        name: 'flaky',
        transport: 'stdio',
        command: process.execPath,
        args: [flakyServer],
      }),
    });
    expect(res.status).toBe(201);
    flakyId = ((await res.json()) as { server: { id: number } }).server.id;
  }, 120_000);

  afterAll(async () => {
    for (const c of clients) c.close();
    await pair?.stop();
  }, 60_000);

  it('both hubs report Redis ready', async () => {
    for (const hub of [a, b])
      expect(await (await fetch(`${hub.base}/readyz`)).json()).toMatchObject({
        status: 'ready',
        database: 'postgres',
        redis: 'connected',
      });
  });

  it('a stream started on A is used from B with the token A issued; replies are matched by id', async () => {
    const started = track(await StreamClient.start({ ...client(a), serverId: flakyId, clientId: 'alice' }));
    const socket = io(new URL(started.wsUrl, b.base).href, {
      auth: { token: started.token },
      transports: ['websocket'],
      reconnection: false,
      forceNew: true,
    });
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('connect_error', reject);
      });
      const replies = await Promise.all(
        ['one', 'two', 'three'].map((message, i) =>
          socket.emitWithAck('client-message', { type: 'echo', id: `r${i}`, data: { message } }),
        ),
      );
      expect(replies.map((r) => [r.id, r.ok])).toEqual([
        ['r0', true],
        ['r1', true],
        ['r2', true],
      ]);
      expect(replies.map((r) => JSON.stringify(r.result))).toEqual([
        expect.stringContaining('one'),
        expect.stringContaining('two'),
        expect.stringContaining('three'),
      ]);
      const seqs = replies.map((r) => r.seq);
      expect(new Set(seqs).size).toBe(3);

      // Both hubs list it: started on A, its requests counted by B.
      for (const hub of [a, b]) {
        let s:
          | { streamId: string; lastSeq: number; connectedClients: number; messagesReceived: number }
          | undefined;
        for (let i = 0; i < 100; i++) {
          const status = (await (
            await fetch(`${hub.base}/api/mcp/stream/status`, { headers: hub.headers })
          ).json()) as {
            streams: {
              streamId: string;
              lastSeq: number;
              connectedClients: number;
              messagesReceived: number;
            }[];
          };
          s = status.streams.find((x) => x.streamId === started.streamId);
          if (s && s.messagesReceived >= 3) break;
          await new Promise((r) => setTimeout(r, 100));
        }
        expect(s).toMatchObject({ lastSeq: Math.max(...seqs), connectedClients: 1, messagesReceived: 3 });
      }

      // Each hub makes up ids for messages sent without one, from its own count: they must not collide.
      const viaB = await socket.emitWithAck('client-message', { type: 'echo', data: { message: 'no id' } });
      await started.connect();
      const viaA = await started.socket.emitWithAck('client-message', {
        type: 'echo',
        data: { message: 'no id' },
      });
      expect([viaA.ok, viaB.ok]).toEqual([true, true]);
      expect(viaA.id).toMatch(/^alice#/);
      expect(viaA.id).not.toBe(viaB.id);
    } finally {
      socket.close();
    }
  });

  it('a topic message published on one hub reaches the subscribers on the other, and nobody else', async () => {
    const alice = track(await StreamClient.start({ ...client(a), serverId: flakyId, clientId: 'alice' }));
    const bob = await join(b, alice.streamId, 'bob');
    const carol = await join(b, alice.streamId, 'carol');
    const dave = await join(a, alice.streamId, 'dave');
    const toAlice = topicInbox(alice);
    const toBob = topicInbox(bob);
    const toCarol = topicInbox(carol);
    const toDave = topicInbox(dave);
    await Promise.all([alice, bob, carol, dave].map((c) => c.connect()));
    expect(await alice.subscribe('news')).toEqual({ ok: true });
    expect(await bob.subscribe('news')).toEqual({ ok: true });

    const fromA = await alice.publish('news', 'from A');
    await until(() => toBob.length === 1 && toAlice.length === 1, 'bob (on B) and alice get it');
    expect(toBob[0]).toEqual({
      topic: 'news',
      data: 'from A',
      from: 'alice',
      seq: (fromA as { seq: number }).seq,
    });

    const fromB = await bob.publish('news', 'from B');
    await until(() => toAlice.length === 2 && toBob.length === 2, 'alice (on A) and bob get it');
    expect(toAlice[1]).toEqual({
      topic: 'news',
      data: 'from B',
      from: 'bob',
      seq: (fromB as { seq: number }).seq,
    });

    // A request naming the topic, answered on B: its response reaches alice on A too.
    const response = await carol.request('echo', { message: 'shared' }, { topic: 'news' });
    expect(response.ok).toBe(true);
    await until(() => toAlice.length === 3 && toBob.length === 3, 'the response as a topic-message');
    expect(toAlice[2]).toMatchObject({ topic: 'news', from: 'carol', data: { id: response.id, ok: true } });

    const redis = createClient({ url: redisUrl });
    await redis.connect();
    // Each hub's namespace of the stream has the adapter's subscriptions while its sockets are connected.
    expect((await redis.pubSubChannels(`${prefix}*${alice.streamId}*`)).length).toBeGreaterThanOrEqual(2);
    await redis.close();

    await dave.publish('other', 'nobody listens');
    await settle();
    expect(toCarol).toEqual([]);
    expect(toDave).toEqual([]);
    expect(toAlice).toHaveLength(3);
  });

  it('a client that left A resumes on B with lastSeq: exactly what it missed, in order, then live', async () => {
    const alice = track(await StreamClient.start({ ...client(a), serverId: flakyId, clientId: 'alice' }));
    const bobOnA = await join(a, alice.streamId, 'bob');
    const before = topicInbox(bobOnA);
    await Promise.all([alice.connect(), bobOnA.connect()]);
    await bobOnA.subscribe('news');
    await alice.publish('news', 'before');
    await until(() => before.length === 1, 'bob gets the first');
    bobOnA.close();

    for (let i = 1; i <= 3; i++) await alice.publish('news', `missed ${i}`);
    await alice.publish('sports', 'not for bob');
    await alice.request('echo', { message: 'only for alice' });
    await alice.publish('news', 'missed 4');

    const bobOnB = await join(b, alice.streamId, 'bob');
    const after = topicInbox(bobOnB);
    const responses: unknown[] = [];
    bobOnB.on('server-response', (r) => responses.push(r));
    await bobOnB.connect({ lastSeq: bobOnA.lastSeq });
    await until(() => after.length === 4, 'the four missed messages');
    await alice.publish('news', 'live');
    await until(() => after.length === 5, 'the live one');
    await settle();
    expect(after.map((m) => m.data)).toEqual(['missed 1', 'missed 2', 'missed 3', 'missed 4', 'live']);
    const seqs = after.map((m) => m.seq);
    expect(seqs[0]).toBeGreaterThan(bobOnA.lastSeq);
    expect([...seqs].sort((x, y) => x - y)).toEqual(seqs);
    expect(new Set(seqs).size).toBe(seqs.length);
    expect(responses).toEqual([]);
  });

  it('stop on B disconnects the clients on A and refuses later handshakes on both hubs', async () => {
    const alice = track(await StreamClient.start({ ...client(a), serverId: flakyId, clientId: 'alice' }));
    const bob = await join(b, alice.streamId, 'bob');
    const spareA = await join(a, alice.streamId, 'carol');
    const spareB = await join(b, alice.streamId, 'dave');
    const stopped: StreamStopped[] = [];
    const reasons: string[] = [];
    await Promise.all([alice.connect(), bob.connect()]);
    for (const c of [alice, bob]) {
      c.socket.on('stream-stopped', (p) => stopped.push(p));
      c.socket.on('disconnect', (reason) => reasons.push(reason));
    }
    // A client is told it is connected before its hub has counted it in Redis; the count is what stop reports.
    for (let i = 0; ; i++) {
      const status = (await (
        await fetch(`${b.base}/api/mcp/stream/status`, { headers: b.headers })
      ).json()) as { streams: { streamId: string; connectedClients: number }[] };
      if (status.streams.find((x) => x.streamId === alice.streamId)?.connectedClients === 2) break;
      if (i === 100) throw new Error('the hubs did not count both connections');
      await new Promise((r) => setTimeout(r, 20));
    }
    const res = await fetch(`${b.base}/api/mcp/stream/stop`, {
      method: 'POST',
      headers: b.headers,
      body: JSON.stringify({ streamId: alice.streamId }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ success: true, active: false, disconnected: 2 });
    await until(() => reasons.length === 2, 'both clients disconnected');
    expect(stopped.map((s) => s.reason)).toEqual(['stopped through the API', 'stopped through the API']);
    expect(stopped[0]?.seq).toBe(stopped[1]?.seq);

    for (const spare of [spareA, spareB]) {
      const refused = await spare.connect().then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(refused).toBeInstanceOf(StreamRequestError);
      expect(refused).toMatchObject({ code: 'SB_ERR_STREAM_STOPPED' });
    }
    for (const hub of [a, b]) {
      const token = await fetch(`${hub.base}/api/mcp/stream/${alice.streamId}/token`, {
        method: 'POST',
        headers: hub.headers,
        body: JSON.stringify({ clientId: 'erin' }),
      });
      expect((await token.json()) as unknown).toMatchObject({ error: { code: 'SB_ERR_STREAM_STOPPED' } });
      const status = (await (
        await fetch(`${hub.base}/api/mcp/stream/status`, { headers: hub.headers })
      ).json()) as {
        streams: { streamId: string }[];
      };
      expect(status.streams.some((s) => s.streamId === alice.streamId)).toBe(false);
    }

    // Its namespaces are gone on both hubs, and with them the adapter's Redis subscriptions.
    const redis = createClient({ url: redisUrl });
    await redis.connect();
    try {
      const channels = () => redis.pubSubChannels(`${prefix}*${alice.streamId}*`);
      for (let i = 0; i < 100 && (await channels()).length > 0; i++)
        await new Promise((r) => setTimeout(r, 50));
      expect(await channels()).toEqual([]);
    } finally {
      await redis.close();
    }
  });
});

/** A Redis server of this test's own, on a free port, whose data survives a restart (SHUTDOWN SAVE). */
async function startRedis(port: number, dir: string): Promise<Child> {
  const child = startChild('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir], {});
  const url = `redis://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    const probe = createClient({ url, socket: { reconnectStrategy: false } });
    probe.on('error', () => {});
    try {
      await probe.connect();
      await probe.ping();
      await probe.close();
      return child;
    } catch (err) {
      if (i > 200 || child.proc.exitCode !== null)
        throw new Error(`redis-server did not start: ${String(err)}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

describe('a hub whose Redis goes away for a while', () => {
  let redisDir: string;
  let port: number;
  let redis: Child | undefined;
  let hub: HubProcess;
  const clients: StreamClient[] = [];

  beforeAll(async () => {
    redisDir = await mkdtemp(path.join(tmpdir(), 'sb-redis-'));
    port = await freePort();
    redis = await startRedis(port, redisDir);
    hub = await startHubProcess({
      REDIS_URL: `redis://127.0.0.1:${port}`,
      SWITCHBOARD_SEED_EXAMPLES: 'false',
    });
  }, 120_000);

  afterAll(async () => {
    for (const c of clients) c.close();
    await hub?.stop();
    await redis?.stop();
    await rm(redisDir, { recursive: true, force: true });
  }, 60_000);

  it('reports it in /readyz, does not crash, serves REST meanwhile, and the stream goes on once Redis is back', async () => {
    const res = await fetch(`${hub.base}/api/mcp/servers`, {
      method: 'POST',
      headers: hub.headers,
      body: JSON.stringify({
        name: 'flaky',
        transport: 'stdio',
        command: process.execPath,
        args: [flakyServer],
      }),
    });
    const serverId = ((await res.json()) as { server: { id: number } }).server.id;
    const alice = await StreamClient.start({
      baseUrl: hub.base,
      apiToken: processToken,
      serverId,
      clientId: 'alice',
    });
    clients.push(alice);
    await alice.connect();
    expect((await alice.request('echo', { message: 'before' })).ok).toBe(true);

    const stopping = redis?.proc;
    const exited = new Promise<void>((resolve) =>
      stopping?.exitCode === null ? stopping.once('exit', () => resolve()) : resolve(),
    );
    const admin = createClient({ url: `redis://127.0.0.1:${port}`, socket: { reconnectStrategy: false } });
    admin.on('error', () => {});
    await admin.connect();
    await admin.sendCommand(['SHUTDOWN', 'SAVE']).catch(() => {});
    await exited;
    admin.destroy();
    redis = undefined;
    let ready: Response | undefined;
    for (let i = 0; i < 200; i++) {
      ready = await fetch(`${hub.base}/readyz`);
      if (ready.status === 503) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    expect(ready?.status).toBe(503);
    expect(await ready?.json()).toMatchObject({ reason: expect.stringMatching(/Redis/) });

    // REST requests are counted in Redis too (the rate limit): while it is away they are let through at once.
    const listed = await fetch(`${hub.base}/api/mcp/servers`, {
      headers: hub.headers,
      signal: AbortSignal.timeout(5_000),
    });
    expect(listed.status).toBe(200);
    expect(((await listed.json()) as { servers: unknown[] }).servers).toHaveLength(1);

    // Asked while Redis is away: answered once it is back (its seq comes from Redis).
    const during = alice.request('echo', { message: 'during' });
    redis = await startRedis(port, redisDir);
    expect(await during).toMatchObject({ ok: true, seq: expect.any(Number) });
    expect(hub.child.proc.exitCode).toBe(null);
    for (let i = 0; i < 200 && (await fetch(`${hub.base}/readyz`)).status !== 200; i++)
      await new Promise((r) => setTimeout(r, 25));
    expect((await fetch(`${hub.base}/readyz`)).status).toBe(200);
    expect((await alice.request('echo', { message: 'after' })).ok).toBe(true);
  }, 120_000);
});
