import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StreamClient } from '../../src/client/stream-client.js';
import type { StreamGap, TopicMessage } from '../../src/realtime/stream-events.js';
import { type StreamTestHub, startStreamTestHub, until } from '../helpers/stream-hub.js';

const settle = () => new Promise((r) => setTimeout(r, 100));

/** Records every topic-message (and gap) a client receives, across reconnects. */
function inbox(c: StreamClient) {
  const topics: TopicMessage[] = [];
  const gaps: StreamGap[] = [];
  c.on('topic-message', (m) => topics.push(m));
  c.on('stream-gap', (g) => gaps.push(g));
  return { topics, gaps };
}

describe('topics, seq and replay', () => {
  let t: StreamTestHub;
  beforeAll(async () => {
    t = await startStreamTestHub();
  });
  afterAll(() => t?.close());

  it('three clients on one stream: only subscribers get topic messages', async () => {
    const alice = await t.start({
      serverId: t.flakyId,
      clientId: 'alice',
      streamConfig: { topics: ['seo-analysis'] },
    });
    const bob = await t.join(alice.streamId, 'bob');
    const carol = await t.join(alice.streamId, 'carol');
    const [a, b, c] = [inbox(alice), inbox(bob), inbox(carol)];
    await Promise.all([alice.connect(), bob.connect(), carol.connect()]);
    expect(await bob.subscribe('seo-analysis')).toEqual({ ok: true });

    const ack = await alice.publish('seo-analysis', { score: 91 });
    expect(ack).toMatchObject({ ok: true, seq: expect.any(Number) });
    await until(() => a.topics.length === 1 && b.topics.length === 1, 'alice and bob get it');
    for (const m of [a.topics[0], b.topics[0]])
      expect(m).toEqual({
        topic: 'seo-analysis',
        data: { score: 91 },
        from: 'alice',
        seq: (ack as { seq: number }).seq,
      });

    // A request naming a topic: the requester gets its server-response, subscribers see it as a topic-message.
    const response = await carol.request('echo', { message: 'shared' }, { topic: 'seo-analysis' });
    expect(response.ok).toBe(true);
    await until(() => a.topics.length === 2 && b.topics.length === 2, 'the response reaches the subscribers');
    expect(b.topics[1]).toMatchObject({
      topic: 'seo-analysis',
      from: 'carol',
      data: { id: response.id, ok: true },
    });

    expect(await bob.unsubscribe('seo-analysis')).toEqual({ ok: true });
    await alice.publish('seo-analysis', 'after bob left');
    await alice.publish('other', 'nobody listens');
    await until(() => a.topics.length === 3, 'alice gets the third');
    await settle();
    expect(b.topics).toHaveLength(2);
    expect(c.topics).toHaveLength(0);

    const status = (await t.api({ method: 'GET', url: '/api/mcp/stream/status' })).json();
    const s = status.streams.find((x: { streamId: string }) => x.streamId === alice.streamId);
    expect(s).toMatchObject({ connectedClients: 3, clientIds: ['alice', 'bob', 'carol'] });
    expect(s.topics).toContain('seo-analysis');
    expect(s.messagesReceived).toBeGreaterThanOrEqual(6);
  });

  it('topic names and counts are limited', async () => {
    const c = await (await t.start({ serverId: t.flakyId, clientId: 'greedy' })).connect();
    expect(await c.subscribe('x'.repeat(200))).toMatchObject({
      ok: false,
      error: { code: 'SB_ERR_VALIDATION' },
    });
    for (let i = 0; i < 32; i++) expect(await c.subscribe(`t${i}`)).toEqual({ ok: true });
    expect(await c.subscribe('one-too-many')).toMatchObject({
      ok: false,
      error: { code: 'SB_ERR_VALIDATION' },
    });
  });

  it('a client reconnecting with lastSeq gets exactly what it missed, in order, then live messages', async () => {
    const alice = await t.start({ serverId: t.flakyId, clientId: 'alice' });
    const bob = await t.join(alice.streamId, 'bob');
    const b = inbox(bob);
    await Promise.all([alice.connect(), bob.connect()]);
    await bob.subscribe('news');
    await alice.subscribe('news');
    await alice.publish('news', 'before');
    await until(() => b.topics.length === 1, 'bob gets the first');
    const seen = bob.lastSeq;
    expect(seen).toBe(b.topics[0]!.seq);

    bob.close();
    for (let i = 1; i <= 3; i++) await alice.publish('news', `missed ${i}`);
    await alice.publish('sports', 'not for bob');
    await alice.request('echo', { message: 'only for alice' });
    await alice.publish('news', 'missed 4');

    const bobResponses: unknown[] = [];
    bob.on('server-response', (r) => bobResponses.push(r));
    await bob.reconnect();
    await until(() => b.topics.length === 5, 'the four missed messages');
    await alice.publish('news', 'live');
    await until(() => b.topics.length === 6, 'the live one');
    expect(b.topics.map((m) => m.data)).toEqual([
      'before',
      'missed 1',
      'missed 2',
      'missed 3',
      'missed 4',
      'live',
    ]);
    const seqs = b.topics.map((m) => m.seq);
    expect([...seqs].sort((x, y) => x - y)).toEqual(seqs);
    expect(new Set(seqs).size).toBe(seqs.length);
    expect(b.gaps).toEqual([]);
    expect(bobResponses).toEqual([]);
  });

  it('what is older than the buffer is reported as a stream-gap, then the rest is replayed', async () => {
    const alice = await t.start({ serverId: t.flakyId, clientId: 'alice', streamConfig: { buffer_size: 3 } });
    const bob = await t.join(alice.streamId, 'bob');
    const b = inbox(bob);
    await Promise.all([alice.connect(), bob.connect()]);
    await bob.subscribe('news');
    await alice.publish('news', 0);
    await until(() => b.topics.length === 1, 'the first');
    const lastSeq = bob.lastSeq;
    bob.close();
    for (let i = 1; i <= 6; i++) await alice.publish('news', i);
    await bob.reconnect();
    await until(() => b.topics.length === 4, 'the three still buffered');
    expect(b.topics.map((m) => m.data)).toEqual([0, 4, 5, 6]);
    expect(b.gaps).toEqual([{ lastSeq, firstAvailableSeq: b.topics[1]!.seq, currentSeq: b.topics[3]!.seq }]);
  });

  it('a fresh token for the same client id resumes the stream', async () => {
    const alice = await t.start({ serverId: t.flakyId, clientId: 'alice' });
    const a = inbox(alice);
    await alice.connect();
    await alice.subscribe('news');
    await alice.publish('news', 1);
    await until(() => a.topics.length === 1, 'first');
    alice.close();
    await alice.reconnect({ freshToken: true });
    expect(alice.socket.connected).toBe(true);
  });
});
