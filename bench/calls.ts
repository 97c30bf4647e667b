/**
 * Tool-call throughput through the hub's REST API against the two ceilings it stands on, all in one run:
 *   (a) direct: the SDK v2 client calling server-everything's echo over stdio in this process;
 *   (b) bare HTTP: a Fastify route returning a constant, driven by the same fetch client;
 *   (c) the hub: POST /api/mcp/servers/:id/tools/echo/call (recording on, and off).
 * A hub call does the work of both (a) and (b), so its ceiling is the two-hop figure 1 / (1/a + 1/b).
 * Also: start-up time to /readyz and idle RSS on PGlite and on PostgreSQL.
 * Settings: BENCH_REPS (3), BENCH_SEQ (2000 calls), BENCH_CONC (4000 calls at 32 in flight).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { projectRoot } from '../src/paths.js';
import { createPostgresDatabase } from '../test/helpers/db.js';
import { type Child, freePort, rssMb, startChild, waitForHttp } from '../test/helpers/processes.js';
import { nowMs, printTable, ratioLine, type Summary, summarize, throughput } from './lib/measure.js';

const reps = Number(process.env.BENCH_REPS ?? 3);
const seqCalls = Number(process.env.BENCH_SEQ ?? 2000);
const concCalls = Number(process.env.BENCH_CONC ?? 4000);
const inFlight = 32;
const message = 'x'.repeat(55);
const everything = path.join(
  projectRoot,
  'node_modules/@modelcontextprotocol/server-everything/dist/index.js',
);
const token = 'bench-token-0123456789abcdef';

type Caller = () => Promise<unknown>;

async function measure(call: Caller): Promise<{ seq: number; conc: number }> {
  for (let i = 0; i < 200; i++) await call();
  return { seq: await throughput(call, seqCalls, 1), conc: await throughput(call, concCalls, inFlight) };
}

async function direct(): Promise<{ call: Caller; close(): Promise<void> }> {
  const client = new Client({ name: 'bench', version: '0' }, { versionNegotiation: { mode: 'auto' } });
  await client.connect(
    new StdioClientTransport({ command: process.execPath, args: [everything, 'stdio'], stderr: 'ignore' }),
  );
  return {
    call: async () => {
      const r = await client.callTool({ name: 'echo', arguments: { message } });
      if ((r.content as { text: string }[])[0]?.text !== `Echo: ${message}`) throw new Error('wrong echo');
    },
    close: () => client.close(),
  };
}

async function bare(): Promise<{ call: Caller; close(): Promise<void> }> {
  const port = await freePort();
  const child = startChild(
    process.execPath,
    ['--import', 'tsx', path.join(projectRoot, 'bench/bare-http-server.ts')],
    {
      PORT: String(port),
    },
  );
  await waitForHttp(`http://127.0.0.1:${port}/ready`, 20_000, child);
  const body = JSON.stringify({ arguments: { message } });
  return {
    call: async () => {
      const res = await fetch(`http://127.0.0.1:${port}/call`, {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      });
      await res.json();
    },
    close: () => child.stop(),
  };
}

interface HubProcess {
  child: Child;
  base: string;
  readyMs: number;
  dataDir: string;
  close(): Promise<void>;
}

async function startHub(env: Record<string, string>): Promise<HubProcess> {
  const port = await freePort();
  const dataDir = await mkdtemp(path.join(tmpdir(), 'sb-bench-'));
  const t0 = nowMs();
  const child = startChild(process.execPath, [path.join(projectRoot, 'dist/src/main.js')], {
    PORT: String(port),
    HOST: '127.0.0.1',
    SWITCHBOARD_DATA_DIR: dataDir,
    SWITCHBOARD_API_TOKEN: token,
    SWITCHBOARD_SEED_EXAMPLES: 'false',
    // High enough never to trigger, so the limiter's cost is measured but it does not refuse calls.
    SWITCHBOARD_RATE_LIMIT_PER_MINUTE: '100000000',
    LOG_LEVEL: 'warn',
    ...env,
  });
  const base = `http://127.0.0.1:${port}`;
  await waitForHttp(`${base}/readyz`, 60_000, child);
  return {
    child,
    base,
    readyMs: nowMs() - t0,
    dataDir,
    async close() {
      await child.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

async function hubCaller(hub: HubProcess): Promise<Caller> {
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${token}` };
  const created = await fetch(`${hub.base}/api/mcp/servers`, {
    method: 'POST',
    headers,
    body: JSON.stringify({
      name: 'everything',
      transport: 'stdio',
      command: process.execPath,
      args: [everything, 'stdio'],
      config: { max_concurrency: 64 },
    }),
  });
  const { server } = (await created.json()) as { server: { id: number } };
  const url = `${hub.base}/api/mcp/servers/${server.id}/tools/echo/call`;
  const body = JSON.stringify({ arguments: { message } });
  return async () => {
    const res = await fetch(url, { method: 'POST', headers, body });
    const json = (await res.json()) as { ok: boolean; result: { content: { text: string }[] } };
    if (!json.ok || json.result.content[0]?.text !== `Echo: ${message}`)
      throw new Error(`wrong answer ${JSON.stringify(json)}`);
  };
}

const runs: Record<string, number[]> = {};
const add = (k: string, v: number) => {
  runs[k] ??= [];
  runs[k].push(v);
};

let warnings = 0;
for (let rep = 0; rep < reps; rep++) {
  // Alternate the order so that no path always runs on a warmer or cooler machine.
  const order =
    rep % 2 === 0 ? ['direct', 'bare', 'hub', 'hub-norec'] : ['hub-norec', 'hub', 'bare', 'direct'];
  for (const which of order) {
    if (which === 'direct' || which === 'bare') {
      const target = which === 'direct' ? await direct() : await bare();
      const r = await measure(target.call);
      add(`${which}.seq`, r.seq);
      add(`${which}.conc`, r.conc);
      await target.close();
    } else {
      const hub = await startHub(which === 'hub-norec' ? { SWITCHBOARD_RECORD_EVENTS: 'false' } : {});
      const r = await measure(await hubCaller(hub));
      add(`${which}.seq`, r.seq);
      add(`${which}.conc`, r.conc);
      warnings += (hub.child.stderr().match(/MaxListenersExceededWarning/g) ?? []).length;
      await hub.close();
    }
  }
}

const s = (k: string): Summary => summarize(runs[k]!);
const twoHop = (a: number, b: number) => 1 / (1 / a + 1 / b);
const ceilingSeq = twoHop(s('direct.seq').median, s('bare.seq').median);
const ceilingConc = twoHop(s('direct.conc').median, s('bare.conc').median);

printTable(`Tool calls (echo on server-everything over stdio), ${reps} runs, median`, [
  { name: '(a) direct SDK stdio, sequential', value: s('direct.seq'), unit: 'calls/s' },
  { name: '(a) direct SDK stdio, 32 in flight', value: s('direct.conc'), unit: 'calls/s' },
  { name: '(b) bare Fastify HTTP, sequential', value: s('bare.seq'), unit: 'req/s' },
  { name: '(b) bare Fastify HTTP, 32 in flight', value: s('bare.conc'), unit: 'req/s' },
  { name: '(c) hub REST call, sequential', value: s('hub.seq'), unit: 'calls/s' },
  { name: '(c) hub REST call, 32 in flight', value: s('hub.conc'), unit: 'calls/s' },
  { name: '(c) hub, recording off, sequential', value: s('hub-norec.seq'), unit: 'calls/s' },
  { name: '(c) hub, recording off, 32 in flight', value: s('hub-norec.conc'), unit: 'calls/s' },
]);
console.log(
  `\n  two-hop ceiling 1/(1/a+1/b): sequential ${Math.round(ceilingSeq)} calls/s, 32 in flight ${Math.round(ceilingConc)} calls/s`,
);
console.log('\nRatios');
ratioLine('hub / two-hop ceiling, sequential', s('hub.seq').median / ceilingSeq, 0.7);
ratioLine('hub / two-hop ceiling, 32 in flight', s('hub.conc').median / ceilingConc, 0.7);
ratioLine('recording on / off, sequential', s('hub.seq').median / s('hub-norec.seq').median, 0.9);
ratioLine('recording on / off, 32 in flight', s('hub.conc').median / s('hub-norec.conc').median, 0.9);
console.log(`  MaxListenersExceededWarning lines in the hub's logs: ${warnings}`);

// Start-up to /readyz on a fresh data dir / fresh database, and RSS after 2 s idle.
const startup: Record<string, { ready: number[]; rss: number[] }> = {
  pglite: { ready: [], rss: [] },
  postgres: { ready: [], rss: [] },
};
for (let rep = 0; rep < reps; rep++) {
  for (const driver of ['pglite', 'postgres'] as const) {
    const database = driver === 'postgres' ? await createPostgresDatabase() : undefined;
    const hub = await startHub(database ? { DATABASE_URL: database.url } : {});
    await new Promise((r) => setTimeout(r, 2000));
    startup[driver]!.ready.push(hub.readyMs);
    startup[driver]!.rss.push(rssMb(hub.child.proc.pid!));
    await hub.close();
    await database?.drop();
  }
}
printTable('Start-up (fresh data, process spawn → /readyz 200) and idle RSS after 2 s', [
  { name: 'PGlite: start-up', value: summarize(startup.pglite!.ready), unit: 'ms' },
  { name: 'PGlite: idle RSS', value: summarize(startup.pglite!.rss), unit: 'MB' },
  { name: 'PostgreSQL: start-up', value: summarize(startup.postgres!.ready), unit: 'ms' },
  { name: 'PostgreSQL: idle RSS', value: summarize(startup.postgres!.rss), unit: 'MB' },
]);
