/** The Redis stream store against the local Redis (127.0.0.1:6379), under a prefix of its own. */
import { createHash, randomBytes } from 'node:crypto';
import { createClient } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisClient } from '../../src/realtime/redis.js';
import { RedisStreamStore } from '../../src/streams/redis-stream-store.js';
import { MemoryStreamStore, type StreamRecord, type StreamStore } from '../../src/streams/stream-store.js';

const redisUrl = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const limits = { maxTopicsPerClient: 2, maxTopicsPerStream: 3 };

describe('RedisStreamStore', () => {
  const prefix = `sbtest-${randomBytes(4).toString('hex')}:`;
  let redis: RedisClient;
  let store: RedisStreamStore;
  let n = 0;
  const record = (over: Partial<StreamRecord> = {}): StreamRecord => ({
    id: `stream-1-alice-${++n}`,
    serverId: 1,
    clientId: 'alice',
    config: {},
    startedAt: Date.now(),
    bufferSize: 1000,
    bufferBytes: 1024 * 1024,
    ...over,
  });
  const keys = async () => {
    const all: string[] = [];
    for await (const batch of redis.scanIterator({ MATCH: `${prefix}*`, COUNT: 1000 })) all.push(...batch);
    return all;
  };

  beforeAll(async () => {
    redis = createClient({ url: redisUrl });
    await redis.connect();
    store = new RedisStreamStore(redis, { prefix, keyTtlMs: 60_000 });
  });

  afterAll(async () => {
    const all = await keys();
    if (all.length > 0) await redis.del(all);
    await redis.close();
  });

  it('keeps the last buffer_size messages, and no more bytes than the bound, with consecutive seqs', async () => {
    const r = record({ bufferSize: 3 });
    await store.create(r);
    for (let i = 1; i <= 5; i++)
      await store.append(r, { kind: 'all' }, 'topic-message', { topic: 't', data: i });
    const replay = await store.replay(r.id, 'alice', 0);
    expect(replay).toMatchObject({ firstSeq: 3, currentSeq: 5 });
    expect(replay.messages.map((m) => [m.seq, m.payload.data])).toEqual([
      [3, 3],
      [4, 4],
      [5, 5],
    ]);
    expect((await store.replay(r.id, 'alice', 4)).messages.map((m) => m.seq)).toEqual([5]);

    const small = record({ bufferBytes: 300 });
    await store.create(small);
    for (let i = 1; i <= 5; i++)
      await store.append(small, { kind: 'all' }, 'topic-message', { topic: 't', data: 'x'.repeat(100) });
    const kept = await store.replay(small.id, 'alice', 0);
    expect(kept.messages.length).toBeGreaterThanOrEqual(1);
    expect(kept.messages.length).toBeLessThan(5);
    expect(kept.messages.at(-1)?.seq).toBe(5);
    expect(kept.firstSeq).toBe(kept.messages[0]?.seq);
  });

  it('replays what reaches the client: its replies, stream-wide messages and its topics', async () => {
    const r = record();
    await store.create(r);
    await store.addClient(r.id, 'bob');
    await store.subscribe(r.id, 'bob', 'news', limits);
    const appended = await store.append(r, { kind: 'topic', topic: 'news' }, 'topic-message', {
      topic: 'news',
      data: 1,
      from: 'alice',
    });
    expect([...(appended?.subscribers ?? [])]).toEqual(['bob']);
    await store.append(r, { kind: 'topic', topic: 'sports' }, 'topic-message', { topic: 'sports', data: 2 });
    await store.append(r, { kind: 'client', clientId: 'alice' }, 'server-response', { id: 1, ok: true });
    await store.append(r, { kind: 'client', clientId: 'bob' }, 'server-response', { id: 2, ok: true });
    await store.append(r, { kind: 'all' }, 'server-notification', { method: 'x' });
    expect((await store.replay(r.id, 'bob', 0)).messages.map((m) => m.seq)).toEqual([1, 4, 5]);
    expect((await store.replay(r.id, 'alice', 0)).messages.map((m) => m.seq)).toEqual([3, 5]);
    const d = await store.describe(r.id);
    expect(d?.clientIds.sort()).toEqual(['alice', 'bob']);
    expect(d).toMatchObject({
      topics: ['news'],
      lastSeq: 5,
      connected: 0,
    });
  });

  it('limits topics per client and per stream, and forgets a topic nobody subscribes to', async () => {
    const r = record();
    await store.create(r);
    await store.subscribe(r.id, 'alice', 'a', limits);
    await store.subscribe(r.id, 'alice', 'a', limits);
    await store.subscribe(r.id, 'alice', 'b', limits);
    await expect(store.subscribe(r.id, 'alice', 'c', limits)).rejects.toMatchObject({
      code: 'SB_ERR_VALIDATION',
      message: expect.stringMatching(/per client/),
    });
    await store.subscribe(r.id, 'bob', 'c', limits);
    await expect(store.subscribe(r.id, 'bob', 'd', limits)).rejects.toMatchObject({
      message: expect.stringMatching(/per stream/),
    });
    await store.unsubscribe(r.id, 'bob', 'c');
    await store.subscribe(r.id, 'bob', 'd', limits);
    expect((await store.describe(r.id))?.topics.sort()).toEqual(['a', 'b', 'd']);
  });

  it('stores token digests only, and every key expires', async () => {
    const r = record();
    await store.create(r);
    await store.subscribe(r.id, 'alice', 'news', limits);
    await store.append(r, { kind: 'all' }, 'server-notification', { method: 'x' });
    const token = `sbst_${randomBytes(24).toString('base64url')}`;
    const digest = createHash('sha256').update(token).digest('base64url');
    await store.saveToken(digest, { streamId: r.id, clientId: 'alice', expiresAt: Date.now() + 1000 });
    expect(await store.findToken(digest)).toMatchObject({ streamId: r.id, clientId: 'alice' });
    for (const key of await keys()) {
      expect(key).not.toContain(token);
      expect(await redis.pTTL(key)).toBeGreaterThan(0);
      if ((await redis.type(key)) === 'string') expect(await redis.get(key)).not.toContain(token);
    }
  });

  it('a stopped stream keeps only its reason; late messages do not bring it back', async () => {
    const r = record();
    await store.create(r);
    await store.append(r, { kind: 'all' }, 'server-notification', { method: 'x' });
    await store.markStopped(r.id, 'stopped through the API');
    expect(await store.stoppedReason(r.id)).toBe('stopped through the API');
    expect(await store.load(r.id)).toBeUndefined();
    expect(await store.append(r, { kind: 'all' }, 'server-notification', { method: 'y' })).toBeUndefined();
    await store.touch(r.id, 1);
    await store.subscribe(r.id, 'alice', 'news', limits);
    expect((await keys()).filter((k) => k.includes(r.id))).toEqual([`${prefix}stopped:${r.id}`]);
  });
});

describe('both stores answer alike', () => {
  const prefix = `sbtest-${randomBytes(4).toString('hex')}:`;
  let redis: RedisClient;
  beforeAll(async () => {
    redis = createClient({ url: redisUrl });
    await redis.connect();
  });
  afterAll(async () => {
    const all: string[] = [];
    for await (const batch of redis.scanIterator({ MATCH: `${prefix}*`, COUNT: 1000 })) all.push(...batch);
    if (all.length > 0) await redis.del(all);
    await redis.close();
  });

  it('the same operations give the same seqs, replays and gaps', async () => {
    const run = async (store: StreamStore) => {
      const r: StreamRecord = {
        id: 'stream-1-alice-1',
        serverId: 1,
        clientId: 'alice',
        config: {},
        startedAt: 0,
        bufferSize: 4,
        bufferBytes: 1024 * 1024,
      };
      await store.create(r);
      await store.addClient(r.id, 'bob');
      await store.subscribe(r.id, 'bob', 'news', limits);
      const seqs: number[] = [];
      for (let i = 0; i < 6; i++) {
        const audience =
          i % 3 === 0
            ? ({ kind: 'topic', topic: 'news' } as const)
            : i % 3 === 1
              ? ({ kind: 'client', clientId: 'alice' } as const)
              : ({ kind: 'all' } as const);
        const a = await store.append(r, audience, 'topic-message', { topic: 'news', data: i, from: 'alice' });
        seqs.push(a?.message.seq ?? -1);
      }
      const bob = await store.replay(r.id, 'bob', 1);
      const alice = await store.replay(r.id, 'alice', 0);
      return {
        seqs,
        bob: { ...bob, messages: bob.messages.map((m) => m.payload) },
        alice: { ...alice, messages: alice.messages.map((m) => m.payload) },
      };
    };
    const memory = await run(new MemoryStreamStore());
    expect(await run(new RedisStreamStore(redis, { prefix, keyTtlMs: 60_000 }))).toEqual(memory);
    expect(memory.bob).toMatchObject({ firstSeq: 3, currentSeq: 6 });
  });
});
