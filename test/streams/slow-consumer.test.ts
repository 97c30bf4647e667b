import type { Socket as ServerSocket } from 'socket.io';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StreamClient } from '../../src/client/stream-client.js';
import type { StreamGap, TopicMessage } from '../../src/realtime/stream-events.js';
import { drivers } from '../helpers/db.js';
import { type StreamTestHub, startStreamTestHub, until } from '../helpers/stream-hub.js';

/** The most one socket may have queued, set lower than the default (80 MiB) to keep the flood short. */
const SLOW_CONSUMER_BYTES = 16 * 1024 * 1024;
const BUFFER_SIZE = 500;
// Each publisher stays within the per-socket burst (5,000), so no publish is refused whatever the timing. The
// total (54 MB) passes the limit by more than the kernel's socket buffers absorb (≈ 4 MiB here, 1,000 of these
// messages) before the hub starts queueing.
const PUBLISHERS = 3;
const PER_PUBLISHER = 4_400;
const WAVE = 200;
const TOTAL = PUBLISHERS * PER_PUBLISHER;
const filler = 'x'.repeat(4096);

/** The engine.io side of a client socket: the WebSocket (the `ws` package under Node) it reads from. */
const webSocketOf = (c: StreamClient) =>
  (c.socket.io.engine.transport as unknown as { ws: { pause(): void; resume(): void } }).ws;

describe.each(drivers)('slow stream consumers (%s)', (driver) => {
  let t: StreamTestHub;
  beforeAll(async () => {
    t = await startStreamTestHub(driver, { SWITCHBOARD_STREAM_SLOW_CONSUMER_BYTES: SLOW_CONSUMER_BYTES });
  });
  afterAll(() => t?.close());

  it('a client that stops reading is cut off at the queue limit, the others get everything, and it resumes past a gap', async () => {
    const fast = await t.start({
      serverId: t.everythingId,
      clientId: 'fast',
      streamConfig: { buffer_size: BUFFER_SIZE },
    });
    const slow = await t.join(fast.streamId, 'slow');
    const publishers = await Promise.all(
      Array.from({ length: PUBLISHERS }, (_, i) => t.join(fast.streamId, `publisher-${i}`)),
    );
    const fastSeqs: number[] = [];
    const slowSeqs: number[] = [];
    const slowGaps: StreamGap[] = [];
    fast.on('topic-message', (m: TopicMessage) => fastSeqs.push(m.seq));
    slow.on('topic-message', (m: TopicMessage) => slowSeqs.push(m.seq));
    slow.on('stream-gap', (g) => slowGaps.push(g));
    await Promise.all([fast, slow, ...publishers].map((c) => c.connect()));
    expect(await fast.subscribe('flood')).toEqual({ ok: true });
    expect(await slow.subscribe('flood')).toEqual({ ok: true });

    const namespace = t.hub.realtime.io.of(`/mcp-stream/${fast.streamId}`);
    const slowOnHub = [...namespace.sockets.values()].find(
      (s) => (s as ServerSocket).data.ctx.clientId === 'slow',
    ) as ServerSocket;
    const conn = slowOnHub.conn as unknown as {
      writeBuffer: { data?: unknown }[];
      on(event: 'packetCreate', fn: () => void): void;
    };
    let mostQueued = 0;
    conn.on('packetCreate', () => {
      let bytes = 0;
      for (const p of conn.writeBuffer) bytes += typeof p.data === 'string' ? p.data.length : 0;
      mostQueued = Math.max(mostQueued, bytes);
    });
    let hubDisconnectReason: string | undefined;
    slowOnHub.once('disconnect', (reason) => {
      hubDisconnectReason = reason;
    });

    // The slow client's TCP socket stops being read: the kernel buffers fill, then the hub's queue grows. The
    // publishers go in waves that the fast client reads up to before the next, as a client that keeps up does
    // (one burst of more than the limit, faster than the network drains it, would cut any client off).
    let slowDisconnected = false;
    slow.socket.once('disconnect', () => {
      slowDisconnected = true;
    });
    const slowWebSocket = webSocketOf(slow);
    slowWebSocket.pause();
    for (let sent = 0; sent < PER_PUBLISHER; sent += WAVE) {
      for (const [i, p] of publishers.entries())
        for (let n = sent; n < sent + WAVE; n++)
          p.socket.emit('publish', { topic: 'flood', data: { i, n, filler } });
      const published = (sent + WAVE) * PUBLISHERS;
      await until(() => fastSeqs.length === published, `the fast client gets ${published} messages`, 60_000);
    }
    expect(fast.socket.connected).toBe(true);
    expect(fastSeqs).toEqual(Array.from({ length: TOTAL }, (_, i) => fastSeqs[0]! + i));
    // Bounded: the queue never passed the limit (+ the message that crossed it), though more were sent. On a
    // machine so loaded that the flood outlasts engine.io's heartbeat (25 s + 20 s), the unanswered pings cut the
    // socket first, with less queued.
    const message = 4096 + 200;
    expect(['forced close', 'ping timeout']).toContain(hubDisconnectReason);
    if (hubDisconnectReason === 'forced close')
      expect(mostQueued).toBeGreaterThan(SLOW_CONSUMER_BYTES - message);
    expect(mostQueued).toBeLessThanOrEqual(SLOW_CONSUMER_BYTES + message);

    // Reading again, it gets what its kernel buffers held (the hub dropped its queue when it cut it off) and
    // sees the close; then it resumes from its lastSeq.
    slowWebSocket.resume();
    await until(() => slowDisconnected, 'the slow client sees the disconnect', 30_000);
    const receivedBeforeCut = slowSeqs.length;
    expect(slow.lastSeq).toBe(slowSeqs.at(-1) ?? 0);
    const lastSeq = slow.lastSeq;

    await slow.reconnect();
    const currentSeq = fastSeqs.at(-1)!;
    await until(
      () => slowSeqs.length === receivedBeforeCut + BUFFER_SIZE,
      'the replay of the buffer',
      30_000,
    );
    // Only the last buffer_size messages were kept for replay; the gap before them is reported.
    expect(slowGaps).toEqual([{ lastSeq, firstAvailableSeq: currentSeq - BUFFER_SIZE + 1, currentSeq }]);
    expect(slowSeqs.slice(receivedBeforeCut)).toEqual(
      Array.from({ length: BUFFER_SIZE }, (_, i) => currentSeq - BUFFER_SIZE + 1 + i),
    );

    // The stream goes on for everyone.
    const ack = await publishers[0]!.publish('flood', 'after');
    await until(
      () => fastSeqs.length === TOTAL + 1 && slowSeqs.at(-1) === fastSeqs.at(-1),
      'one more message',
    );
    expect(ack).toMatchObject({ ok: true, seq: currentSeq + 1 });
  }, 180_000);
});
