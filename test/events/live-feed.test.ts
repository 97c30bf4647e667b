import type { AddressInfo } from 'node:net';
import { io as connect, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HubEventBus } from '../../src/events/hub-events.js';
import { type LiveBatch, LiveEventFeed } from '../../src/events/live-feed.js';
import { prng } from '../helpers/events.js';
import { startTestHub, type TestHub, testToken } from '../helpers/hub.js';

const at = new Date('2026-01-01T00:00:00Z');

describe('LiveEventFeed', () => {
  it('batches events in time order and drops their data', () => {
    const bus = new HubEventBus();
    const batches: LiveBatch[] = [];
    const feed = new LiveEventFeed({ bus, onBatch: (b) => batches.push(b), intervalMs: 60_000 });
    feed.start();
    bus.emit({ type: 'tool_call', serverId: 1, at: new Date(at.getTime() + 5), data: { secret: 'x' } });
    bus.emit({ type: 'api_call', at, ok: true });
    feed.flush();
    feed.flush();
    expect(batches).toHaveLength(1);
    expect(batches[0]).toMatchObject({ seen: 2, sampled: false, perServer: { '1': 1, none: 1 } });
    expect(batches[0]!.events.map((e) => e.type)).toEqual(['api_call', 'tool_call']);
    expect(JSON.stringify(batches[0])).not.toContain('secret');
    feed.close();
    bus.emit({ type: 'api_call', at });
    feed.flush();
    expect(batches).toHaveLength(1);
  });

  it('neither counts nor keeps events while nobody watches', () => {
    const bus = new HubEventBus();
    const batches: LiveBatch[] = [];
    let watched = false;
    const feed = new LiveEventFeed({
      bus,
      onBatch: (b) => batches.push(b),
      intervalMs: 60_000,
      watched: () => watched,
    });
    feed.start();
    bus.emit({ type: 'api_call', serverId: 1, at });
    feed.flush();
    expect(batches).toHaveLength(0);
    watched = true;
    bus.emit({ type: 'tool_call', serverId: 2, at });
    feed.flush();
    expect(batches).toMatchObject([{ seen: 1, perServer: { '2': 1 }, events: [{ type: 'tool_call' }] }]);
    feed.close();
  });

  it('samples a busy interval uniformly, keeping exact counts', () => {
    const bus = new HubEventBus();
    const batches: LiveBatch[] = [];
    const feed = new LiveEventFeed({
      bus,
      onBatch: (b) => batches.push(b),
      intervalMs: 60_000,
      maxPerBatch: 100,
      random: prng(9),
    });
    feed.start();
    for (let i = 0; i < 10_000; i++)
      bus.emit({ type: 'tool_call', serverId: 1 + (i % 4), at: new Date(at.getTime() + i) });
    feed.flush();
    const [batch] = batches;
    expect(batch).toMatchObject({
      seen: 10_000,
      sampled: true,
      perServer: { '1': 2500, '2': 2500, '3': 2500, '4': 2500 },
    });
    expect(batch!.events).toHaveLength(100);
    // Uniform: every quarter of the interval and every server is represented.
    const quarters = new Set(batch!.events.map((e) => Math.floor((Date.parse(e.at) - at.getTime()) / 2500)));
    expect(quarters.size).toBe(4);
    expect(new Set(batch!.events.map((e) => e.serverId)).size).toBe(4);
    feed.close();
  });
});

describe('the /mcp-events namespace', () => {
  let t: TestHub;
  let url: string;
  const sockets: Socket[] = [];
  beforeAll(async () => {
    t = await startTestHub('pglite');
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    url = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}/mcp-events`;
  });
  afterAll(async () => {
    for (const s of sockets) s.disconnect();
    await t?.close();
  });

  const open = (auth: Record<string, unknown>) => {
    const socket = connect(url, { auth, transports: ['websocket'], reconnection: false });
    sockets.push(socket);
    return socket;
  };
  const connected = (socket: Socket) =>
    new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('connect_error', reject);
    });

  it('refuses a handshake without the API token', async () => {
    await expect(connected(open({ token: 'nope' }))).rejects.toMatchObject({
      data: { code: 'SB_ERR_UNAUTHORIZED' },
    });
    await expect(connected(open({}))).rejects.toMatchObject({ data: { code: 'SB_ERR_UNAUTHORIZED' } });
    await expect(connected(open({ token: testToken, serverId: 'x' }))).rejects.toMatchObject({
      data: { code: 'SB_ERR_VALIDATION' },
    });
  });

  it('pushes new events to every client, and one server’s to its subscribers', async () => {
    const all = open({ token: testToken });
    const two = open({ token: testToken, serverId: 2 });
    await Promise.all([connected(all), connected(two)]);
    const received = (socket: Socket) => new Promise<LiveBatch>((resolve) => socket.once('events', resolve));
    const [forAll, forTwo] = [received(all), received(two)];
    t.hub.events.emit({ type: 'tool_call', serverId: 1, toolName: 'analyze_seo', ok: true, durationMs: 12 });
    t.hub.events.emit({ type: 'tool_call', serverId: 2, toolName: 'generate_content', ok: false });
    const a = await forAll;
    expect(a.events.filter((e) => e.type === 'tool_call').map((e) => e.serverId)).toEqual([1, 2]);
    const b = await forTwo;
    expect(b.events.map((e) => [e.serverId, e.toolName, e.ok])).toEqual([[2, 'generate_content', false]]);
    expect(b.seen).toBe(1);
  });
});
