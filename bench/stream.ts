/**
 * Streams against the ceilings they stand on, all in one run:
 *   1. request/response: (a) the SDK v2 client calling server-everything's echo over stdio in this process;
 *      (b) a bare socket.io echo server (bench/bare-socketio-server.ts) driven by the same socket.io client;
 *      (c) the hub: a stream on server-everything, `client-message` echo → `server-response` (auth, validation,
 *      recording and metrics on). A stream call does the work of both (a) and (b): ceiling 1 / (1/a + 1/b).
 *      (d) a bare socket.io → SDK relay (bench/bare-socketio-server.ts with BARE_RELAY=1): what joining the two
 *      hops costs before any of the hub's own work, also set against part 2's best peer.
 *   2. the npm peers that put a stdio server on the network (supergateway SSE and stateful Streamable HTTP,
 *      mcp-proxy SSE and stream), 1 and 8 sessions, every answer checked, vs the hub: bench/stream-peers.ts.
 *   3. push vs polling: time from a message being published to a client having it, pushed over the stream vs
 *      a client polling GET /api/mcp/stream/status every 250 ms and every 1 s for the stream's lastSeq.
 *   4. fan-out: one publish to N subscribed clients of one stream, until all have it, vs a bare socket.io
 *      broadcast to N clients.
 * Settings: BENCH_REPS (3), BENCH_SEQ (2000 calls), BENCH_CONC (4000 calls at 32 in flight),
 * BENCH_PEER_SEQ (1000) and BENCH_PEER_CONC (3000) for part 2,
 * BENCH_PARTS (1,2,3: the parts to run; 3 runs parts 3 and 4), BENCH_FANOUT (1000 clients), BENCH_POLLS
 * (20 samples per polling interval), BENCH_DB (`pglite`, or `postgres` for a throwaway database on the local
 * PostgreSQL).
 */
import path from 'node:path';
import { io, type Socket } from 'socket.io-client';
import { StreamClient } from '../src/client/stream-client.js';
import { projectRoot } from '../src/paths.js';
import { type Child, freePort, startChild, waitForHttp } from '../test/helpers/processes.js';
import { directEverything, measure, reportTwoHop, reps, startBenchHub } from './lib/everything-hub.js';
import { nowMs, printTable, ratioLine, type Summary, summarize } from './lib/measure.js';
import { hubStream, socketCaller } from './lib/stream-callers.js';
import { runPeerComparison } from './stream-peers.js';

const fanout = Number(process.env.BENCH_FANOUT ?? 1000);
const polls = Number(process.env.BENCH_POLLS ?? 20);
const parts = new Set((process.env.BENCH_PARTS ?? '1,2,3').split(',').map(Number));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Connects one socket.io client, resolving once connected. */
function connectSocket(url: string, auth?: Record<string, unknown>): Promise<Socket> {
  const socket = io(url, { transports: ['websocket'], forceNew: true, reconnection: false, auth });
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', reject);
  });
}

/** The bare socket.io server: an echo floor, or with `relay` a bare relay to server-everything. */
async function bareSocketIo(relay = false): Promise<{ url: string; child: Child; close(): Promise<void> }> {
  const port = await freePort();
  const child = startChild(
    process.execPath,
    ['--import', 'tsx', path.join(projectRoot, 'bench/bare-socketio-server.ts')],
    { PORT: String(port), BARE_RELAY: relay ? '1' : '0' },
  );
  await waitForHttp(`http://127.0.0.1:${port}/ready`, 20_000, child);
  return { url: `http://127.0.0.1:${port}`, child, close: () => child.stop() };
}

const startHub = () =>
  startBenchHub({ database: process.env.BENCH_DB === 'postgres' ? 'postgres' : 'pglite' });

const runs: Record<string, number[]> = {};
const add = (k: string, v: number) => {
  runs[k] ??= [];
  runs[k].push(v);
};
const s = (k: string): Summary => summarize(runs[k]!);

// 1. request/response
if (parts.has(1)) {
  for (let rep = 0; rep < reps; rep++) {
    const order = rep % 2 === 0 ? ['direct', 'bare', 'relay', 'hub'] : ['hub', 'relay', 'bare', 'direct'];
    for (const which of order) {
      if (which === 'direct') {
        const d = await directEverything();
        const r = await measure(d.call);
        add('direct.seq', r.seq);
        add('direct.conc', r.conc);
        await d.close();
      } else if (which === 'bare' || which === 'relay') {
        const b = await bareSocketIo(which === 'relay');
        const socket = await connectSocket(b.url);
        const r = await measure(socketCaller(socket));
        add(`${which}.seq`, r.seq);
        add(`${which}.conc`, r.conc);
        socket.close();
        await b.close();
      } else {
        const hub = await startHub();
        const c = await hubStream(hub, 'bench');
        const r = await measure(socketCaller(c.socket as unknown as Socket));
        add('hub.seq', r.seq);
        add('hub.conc', r.conc);
        c.close();
        await hub.close();
      }
    }
  }

  reportTwoHop(`1. Request/response (echo on server-everything over stdio), ${reps} runs, median`, s, {
    bare: 'bare socket.io echo',
    bareUnit: 'msg/s',
    hub: 'hub stream',
    relay: 'bare relay (socket.io + SDK)',
  });
}

// 2. the npm peers
if (parts.has(2)) {
  const bestPeer = await runPeerComparison({ reps, startHub });
  if (bestPeer && runs['relay.conc'])
    ratioLine(
      'bare relay of part 1 / best correct peer, 1 session, 32 in flight',
      s('relay.conc').median / bestPeer,
    );
}

// 3. push vs polling, and 4. fan-out, on one hub.
if (parts.has(3)) {
  const hub = await startHub();
  const publisher = await hubStream(hub, 'pub');
  const streamId = publisher.streamId;
  const listener = await StreamClient.join({
    baseUrl: hub.base,
    apiToken: hub.token,
    streamId,
    clientId: 'sub',
  });
  await listener.connect();
  await listener.subscribe('news');

  const push: number[] = [];
  for (let i = 0; i < polls * 5; i++) {
    const got = new Promise<number>((resolve) =>
      listener.socket.once('topic-message', () => resolve(nowMs())),
    );
    const t0 = nowMs();
    await publisher.publish('news', i);
    push.push((await got) - t0);
    await sleep(5);
  }
  const lastSeqOf = async () => {
    const res = await fetch(`${hub.base}/api/mcp/stream/status`, { headers: hub.headers });
    const body = (await res.json()) as { streams: { streamId: string; lastSeq: number }[] };
    return body.streams.find((x) => x.streamId === streamId)!.lastSeq;
  };
  const polled = async (intervalMs: number) => {
    const samples: number[] = [];
    for (let i = 0; i < polls; i++) {
      const before = await lastSeqOf();
      let publishedAt = 0;
      // Publish at a random point of the polling cycle, as a result would become ready.
      const publishing = sleep(Math.random() * intervalMs).then(async () => {
        publishedAt = nowMs();
        await publisher.publish('news', 'ready');
      });
      for (;;) {
        await sleep(intervalMs);
        if ((await lastSeqOf()) > before && publishedAt > 0) break;
      }
      samples.push(nowMs() - publishedAt);
      await publishing;
    }
    return samples;
  };
  const poll250 = await polled(250);
  const poll1000 = await polled(1000);
  printTable('3. Result ready → client has it (ms)', [
    { name: 'stream push', value: summarize(push), unit: 'ms' },
    { name: 'REST polling every 250 ms', value: summarize(poll250), unit: 'ms' },
    { name: 'REST polling every 1 s', value: summarize(poll1000), unit: 'ms' },
  ]);
  ratioLine(
    'push latency lower than 1 s polling by',
    1 - summarize(push).median / summarize(poll1000).median,
    0.99,
  );
  ratioLine(
    'push latency lower than 250 ms polling by',
    1 - summarize(push).median / summarize(poll250).median,
    0.9,
  );

  // 4. fan-out
  const subscribers: StreamClient[] = [];
  for (let i = 0; i < fanout; i++) {
    const c = await StreamClient.join({
      baseUrl: hub.base,
      apiToken: hub.token,
      streamId,
      clientId: `f${i}`,
    });
    await c.connect();
    await c.subscribe('fan');
    subscribers.push(c);
  }
  const hubFan: number[] = [];
  for (let rep = 0; rep < reps * 3; rep++) {
    let left = fanout;
    const all = new Promise<number>((resolve) => {
      for (const c of subscribers)
        c.socket.once('topic-message', () => {
          if (--left === 0) resolve(nowMs());
        });
    });
    const t0 = nowMs();
    await publisher.publish('fan', { rep });
    hubFan.push((await all) - t0);
  }
  for (const c of subscribers) c.close();
  listener.close();
  publisher.close();
  await hub.close();

  const bare = await bareSocketIo();
  const bareClients: Socket[] = [];
  for (let i = 0; i < fanout; i++) bareClients.push(await connectSocket(bare.url));
  const controller = await connectSocket(bare.url);
  const bareFan: number[] = [];
  for (let rep = 0; rep < reps * 3; rep++) {
    let left = fanout;
    const all = new Promise<number>((resolve) => {
      for (const c of bareClients)
        c.once('topic-message', () => {
          if (--left === 0) resolve(nowMs());
        });
    });
    const t0 = nowMs();
    controller.emit('publish', { topic: 'fan', data: { rep } });
    bareFan.push((await all) - t0);
    controller.off('topic-message');
  }
  for (const c of [...bareClients, controller]) c.close();
  await bare.close();

  printTable(`4. One publish to ${fanout} clients, until all have it (ms)`, [
    { name: 'hub stream topic', value: summarize(hubFan), unit: 'ms' },
    { name: 'bare socket.io broadcast', value: summarize(bareFan), unit: 'ms' },
  ]);
  ratioLine('hub fan-out speed / bare broadcast', summarize(bareFan).median / summarize(hubFan).median, 0.5);
}
process.exit(0);
