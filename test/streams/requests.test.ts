import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StreamClient } from '../../src/client/stream-client.js';
import type { ServerProgress, ServerResponse } from '../../src/realtime/stream-events.js';
import { structured } from '../helpers/example-servers.js';
import { type StreamTestHub, startStreamTestHub, until } from '../helpers/stream-hub.js';

const textOf = (result: unknown) =>
  ((result as { content?: { type: string; text?: string }[] }).content ?? []).map((c) => c.text).join('');

describe('requests over a stream', () => {
  let t: StreamTestHub;
  let flaky: StreamClient;
  let everything: StreamClient;
  beforeAll(async () => {
    t = await startStreamTestHub();
    flaky = await (await t.start({ serverId: t.flakyId, clientId: 'worker' })).connect();
    everything = await (
      await t.start({
        serverId: t.everythingId,
        clientId: 'ev',
        streamConfig: { routes: { say: 'echo', long: 'trigger-long-running-operation' } },
      })
    ).connect();
  });
  afterAll(() => t?.close());

  it('many requests in flight complete out of order and are matched by id', async () => {
    const order: (string | number)[] = [];
    const onResponse = (r: ServerResponse) => order.push(r.id);
    flaky.socket.on('server-response', onResponse);
    const [slow, mid, fast] = await Promise.all([
      flaky.request('sleep', { ms: 600 }, { id: 'slow' }),
      flaky.request('sleep', { ms: 300 }, { id: 'mid' }),
      flaky.request('sleep', { ms: 10 }, { id: 'fast' }),
    ]);
    expect(order).toEqual(['fast', 'mid', 'slow']);
    for (const [r, id] of [
      [slow, 'slow'],
      [mid, 'mid'],
      [fast, 'fast'],
    ] as const) {
      expect(r).toMatchObject({ id, type: 'sleep', ok: true });
    }
    expect(slow.durationMs).toBeGreaterThan(mid.durationMs);
    expect(mid.durationMs).toBeGreaterThan(fast.durationMs);
    // seq numbers grow in the order the hub sent them.
    expect(fast.seq).toBeLessThan(mid.seq);
    expect(mid.seq).toBeLessThan(slow.seq);
    flaky.socket.off('server-response', onResponse);
  });

  it('an ack callback gets the same server-response; a message without id gets one', async () => {
    const acked = await flaky.socket.emitWithAck('client-message', { type: 'echo', message: 'hi' });
    expect(acked).toMatchObject({
      type: 'echo',
      ok: true,
      id: expect.stringMatching(/^worker#[0-9a-f]{6}\.\d+$/),
    });
    expect(structured(acked.result)).toMatchObject({ message: 'hi' });
  });

  it('progress notifications become server-progress; cancel stops the upstream call', async () => {
    const progress: ServerProgress[] = [];
    const pending = flaky.request(
      'sleep',
      { ms: 5_000, progressEvery: 50 },
      { id: 'long', onProgress: (p) => progress.push(p) },
    );
    await until(() => progress.length >= 2, 'two progress notifications');
    expect(progress[0]).toMatchObject({ id: 'long', progress: 1, total: 100, seq: expect.any(Number) });
    expect(await flaky.cancel('long')).toEqual({ ok: true });
    const response = await pending;
    expect(response).toMatchObject({ id: 'long', ok: false, error: { code: 'SB_ERR_CANCELLED' } });
    // Ended by the cancel, not by the 5 s sleep.
    expect(response.durationMs).toBeLessThan(5_000);
    // The server saw the cancellation.
    let stats: { cancellations: number } = { cancellations: 0 };
    const poll = async () => {
      stats = structured((await flaky.request('stats')).result);
    };
    for (let i = 0; i < 50 && stats.cancellations < 1; i++) {
      await poll();
      if (stats.cancellations < 1) await new Promise((r) => setTimeout(r, 50));
    }
    expect(stats.cancellations).toBeGreaterThanOrEqual(1);
    // Cancelling what is not running is answered, not ignored.
    expect(await flaky.cancel('long')).toMatchObject({ ok: false, error: { code: 'SB_ERR_NOT_FOUND' } });
  });

  it('progress and cancellation through to server-everything (routes map a type to a tool)', async () => {
    const progress: ServerProgress[] = [];
    const done = await everything.request(
      'long',
      { duration: 0.4, steps: 4 },
      { onProgress: (p) => progress.push(p) },
    );
    expect(done).toMatchObject({ type: 'long', ok: true });
    expect(textOf(done.result)).toContain('Long running operation completed');
    expect(progress.map((p) => p.progress).slice(0, 3)).toEqual([1, 2, 3]);
    expect(progress[0]).toMatchObject({ total: 4 });

    const pending = everything.request(
      'trigger-long-running-operation',
      { duration: 10, steps: 10 },
      { id: 7 },
    );
    await new Promise((r) => setTimeout(r, 150));
    await everything.cancel(7);
    expect(await pending).toMatchObject({ id: 7, ok: false, error: { code: 'SB_ERR_CANCELLED' } });
    const echo = await everything.request('say', { message: 'still here' });
    expect(textOf(echo.result)).toBe('Echo: still here');
  });

  it('reserved types map to MCP requests', async () => {
    const tools = await everything.request('list-tools');
    expect((tools.result as { tools: { name: string }[] }).tools.map((x) => x.name)).toContain('echo');
    const call = await everything.request('call-tool', { name: 'get-sum', arguments: { a: 2, b: 3 } });
    expect(textOf(call.result)).toContain('5');
    expect(await everything.request('ping')).toMatchObject({ ok: true, type: 'ping' });
    const resources = await everything.request('list-resources');
    const first = (resources.result as { resources: { uri: string }[] }).resources[0]!;
    const read = await everything.request('read-resource', { uri: first.uri });
    expect((read.result as { contents: unknown[] }).contents.length).toBeGreaterThan(0);
    const prompt = await everything.request('get-prompt', { name: 'simple-prompt' });
    expect(prompt).toMatchObject({ ok: true });
    expect(await everything.request('call-tool', { arguments: {} })).toMatchObject({
      ok: false,
      error: { code: 'SB_ERR_VALIDATION' },
    });
  });

  it('a tool error is ok:false with the result; an unknown tool is SB_ERR_TOOL_NOT_FOUND', async () => {
    const failed = await flaky.request('fail');
    expect(failed).toMatchObject({ ok: false, result: { isError: true } });
    expect(await flaky.request('no_such_tool')).toMatchObject({
      ok: false,
      type: 'no_such_tool',
      error: { code: 'SB_ERR_TOOL_NOT_FOUND' },
    });
  });

  it('an upstream crash mid-request gives an error reply and the stream keeps working', async () => {
    const crashed = await flaky.request('crash', { afterMs: 50 });
    expect(crashed).toMatchObject({ ok: false, error: { code: 'SB_ERR_UPSTREAM_UNAVAILABLE' } });
    expect(flaky.socket.connected).toBe(true);
    let again: ServerResponse | undefined;
    for (let i = 0; i < 40; i++) {
      again = await flaky.request('echo', { message: 'back' });
      if (again.ok) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(again).toMatchObject({ ok: true });
    expect(structured(again!.result)).toMatchObject({ message: 'back' });
  });

  it('bad client-messages get error replies and the connection survives', async () => {
    const replies: ServerResponse[] = [];
    const onResponse = (r: ServerResponse) => replies.push(r);
    flaky.socket.on('server-response', onResponse);
    const raw = flaky.socket as unknown as { emit: (...a: unknown[]) => void };
    raw.emit('client-message', 'not an object');
    raw.emit('client-message', { type: 42, id: 'bad-type' });
    raw.emit('client-message', { type: 'echo', id: 'bad-data', data: 'text' });
    raw.emit('client-message', Buffer.from([0, 1, 2, 255]));
    await until(() => replies.length >= 4, 'four error replies');
    for (const r of replies) expect(r).toMatchObject({ ok: false, error: { code: 'SB_ERR_VALIDATION' } });
    expect(replies.map((r) => r.id)).toEqual(expect.arrayContaining(['bad-type', 'bad-data']));
    const errors: unknown[] = [];
    const onError = (e: unknown) => errors.push(e);
    flaky.socket.on('stream-error', onError);
    raw.emit('no-such-event', 1);
    raw.emit('subscribe-topic', { not: 'a string' });
    raw.emit('publish', 'no topic');
    await until(() => errors.length >= 3, 'three stream-errors');
    expect(errors.map((e) => (e as { event: string }).event)).toEqual([
      'no-such-event',
      'subscribe-topic',
      'publish',
    ]);
    expect(flaky.socket.connected).toBe(true);
    expect((await flaky.request('echo', { message: 'fine' })).ok).toBe(true);
    flaky.socket.off('server-response', onResponse);
    flaky.socket.off('stream-error', onError);
  });
});

describe('stream limits', () => {
  let t: StreamTestHub;
  beforeAll(async () => {
    t = await startStreamTestHub('pglite', { SWITCHBOARD_BODY_LIMIT_BYTES: '4096' });
  });
  afterAll(() => t?.close());

  it('a message over the size limit gets SB_ERR_PAYLOAD_TOO_LARGE and the socket stays', async () => {
    const c = await (await t.start({ serverId: t.flakyId, clientId: 'big' })).connect();
    const r = await c.request('echo', { message: 'x'.repeat(5_000) });
    expect(r).toMatchObject({ ok: false, error: { code: 'SB_ERR_PAYLOAD_TOO_LARGE' } });
    expect(c.socket.connected).toBe(true);
    expect((await c.request('echo', { message: 'small' })).ok).toBe(true);
  });

  it('over the message rate, requests get SB_ERR_RATE_LIMITED replies (none dropped)', async () => {
    const c = await (
      await t.start({ serverId: t.flakyId, clientId: 'fast', streamConfig: { rate_limit_per_second: 5 } })
    ).connect();
    const replies = await Promise.all(
      Array.from({ length: 12 }, (_, i) => c.request('echo', { message: `m${i}` })),
    );
    expect(replies).toHaveLength(12);
    const limited = replies.filter((r) => !r.ok);
    expect(limited.length).toBeGreaterThanOrEqual(6);
    for (const r of limited) expect(r.error).toMatchObject({ code: 'SB_ERR_RATE_LIMITED' });
    expect(replies.filter((r) => r.ok).length).toBeGreaterThanOrEqual(5);
  });

  it('past the in-flight bound, requests get SB_ERR_QUEUE_FULL replies', async () => {
    const c = await (
      await t.start({ serverId: t.flakyId, clientId: 'many', streamConfig: { max_in_flight: 2 } })
    ).connect();
    const replies = await Promise.all(Array.from({ length: 4 }, () => c.request('sleep', { ms: 300 })));
    expect(replies.filter((r) => r.ok)).toHaveLength(2);
    expect(replies.filter((r) => !r.ok).map((r) => r.error?.code)).toEqual([
      'SB_ERR_QUEUE_FULL',
      'SB_ERR_QUEUE_FULL',
    ]);
  });
});

describe('the per-socket message rate of the hub (SWITCHBOARD_STREAM_RATE_PER_SECOND)', () => {
  let t: StreamTestHub;
  beforeAll(async () => {
    t = await startStreamTestHub('pglite', { SWITCHBOARD_STREAM_RATE_PER_SECOND: '4' });
  });
  afterAll(() => t?.close());

  it('limits every stream, and a stream config cannot raise it', async () => {
    const c = await (
      await t.start({ serverId: t.flakyId, clientId: 'eager', streamConfig: { rate_limit_per_second: 1000 } })
    ).connect();
    const replies = await Promise.all(
      Array.from({ length: 10 }, (_, i) => c.request('echo', { message: `m${i}` })),
    );
    const limited = replies.filter((r) => !r.ok);
    expect(limited.length).toBeGreaterThanOrEqual(5);
    for (const r of limited) expect(r.error).toMatchObject({ code: 'SB_ERR_RATE_LIMITED' });
    expect(replies.filter((r) => r.ok).length).toBeGreaterThanOrEqual(4);
  });
});
