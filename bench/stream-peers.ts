/**
 * bench:stream part 2: the hub stream against the npm peers that put a stdio MCP server on the network —
 * supergateway (SSE; stateful Streamable HTTP) and mcp-proxy (SSE; Streamable HTTP "stream") — each relaying
 * server-everything over stdio on a loopback port and called through the SDK v2 client.
 * Each path runs with 1 and 8 client sessions (hub: 1 and 8 streams), one call at a time and 32 in flight
 * spread round-robin over the sessions. Every echo carries a message unique to its session and call, so an
 * answer meant for another session is caught: one wrong answer marks the peer incorrect, and an incorrect
 * peer's speed is not compared. Goal: hub / best correct peer ≥ 5 at 32 in flight.
 * Runs from bench/stream.ts, or alone: `npm run bench:stream:peers`.
 * Settings: BENCH_REPS (3), BENCH_PEER_SEQ (1000 calls), BENCH_PEER_CONC (3000 calls at 32 in flight),
 * BENCH_DB (`pglite` or `postgres`, for the hub).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Client, SSEClientTransport, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { StreamClient } from '../src/client/stream-client.js';
import { perRequestSignalFetch } from '../src/mcp/upstream-transport.js';
import { projectRoot } from '../src/paths.js';
import { freePort, rssMb } from '../test/helpers/processes.js';
import {
  type BenchHub,
  type Caller,
  everything,
  measureCaller,
  startBenchHub,
} from './lib/everything-hub.js';
import { printTable, ratioLine, type Summary, summarize } from './lib/measure.js';

interface PeerConfig {
  name: string;
  args(port: number): string[];
  path: '/sse' | '/mcp';
  transport: 'sse' | 'streamable-http';
}

const supergateway = path.join(projectRoot, 'node_modules/supergateway/dist/index.js');
const mcpProxy = path.join(projectRoot, 'node_modules/mcp-proxy/dist/bin/mcp-proxy.mjs');
// supergateway runs its child through a shell, from one command string.
const everythingCommand = `${process.execPath} ${everything} stdio`;
// Both peers listen on every interface unless told otherwise; the preload pins them to 127.0.0.1.
const loopbackOnly = path.join(projectRoot, 'test/helpers/loopback-listen.mjs');

/** mcp-proxy relaying server-everything over stdio, serving `server` (SSE or Streamable HTTP) on loopback. */
const mcpProxyArgs =
  (server: 'sse' | 'stream') =>
  (port: number): string[] => [
    mcpProxy,
    '--port',
    `${port}`,
    '--host',
    '127.0.0.1',
    '--server',
    server,
    '--',
    process.execPath,
    everything,
    'stdio',
  ];

export const peerConfigs: PeerConfig[] = [
  {
    name: 'supergateway SSE',
    args: (port) => [supergateway, '--stdio', everythingCommand, '--port', `${port}`, '--logLevel', 'none'],
    path: '/sse',
    transport: 'sse',
  },
  {
    name: 'supergateway Streamable HTTP, stateful',
    args: (port) => [
      supergateway,
      '--stdio',
      everythingCommand,
      '--outputTransport',
      'streamableHttp',
      '--stateful',
      '--port',
      `${port}`,
      '--logLevel',
      'none',
    ],
    path: '/mcp',
    transport: 'streamable-http',
  },
  {
    name: 'mcp-proxy SSE',
    args: mcpProxyArgs('sse'),
    path: '/sse',
    transport: 'sse',
  },
  {
    name: 'mcp-proxy stream (Streamable HTTP)',
    args: mcpProxyArgs('stream'),
    path: '/mcp',
    transport: 'streamable-http',
  },
];

/** One client session: sends an echo and returns the text it got back. */
interface Session {
  echo(message: string): Promise<string | undefined>;
  close(): Promise<void>;
}

interface Tally {
  calls: number;
  wrong: number;
  errors: number;
  firstProblem?: string;
}

/** Echo calls spread round-robin over the sessions, each answer checked against its own unique message. */
function checkedCaller(sessions: Session[], tally: Tally): Caller {
  let n = 0;
  return async () => {
    const i = n++;
    const s = i % sessions.length;
    const message = `s${s}-c${i}-`.padEnd(55, 'x');
    tally.calls++;
    try {
      const text = await sessions[s]!.echo(message);
      if (text !== `Echo: ${message}`) {
        tally.wrong++;
        tally.firstProblem ??= `sent ${message.slice(0, 12)}…, got ${text?.slice(0, 18)}…`;
      }
    } catch (err) {
      tally.errors++;
      tally.firstProblem ??= String(err).slice(0, 80);
    }
  };
}

interface RunningPeer {
  url: URL;
  child: ChildProcess;
  /** Resident memory of the peer and every process under it (supergateway's stateful mode forks per session). */
  rssMb(): number;
  stop(): Promise<void>;
}

/** Pids of a process and all its descendants, from /proc (Linux). */
function processTree(pid: number): number[] {
  const out = [pid];
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const children = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim();
      if (children) for (const c of children.split(/\s+/)) out.push(...processTree(Number(c)));
    }
  } catch {
    // the process exited while being walked
  }
  return out;
}

async function startPeer(config: PeerConfig): Promise<RunningPeer> {
  const port = await freePort();
  // A process group of its own, so stopping it also ends the stdio servers it spawned.
  const child = spawn(process.execPath, ['--import', loopbackOnly, ...config.args(port)], {
    cwd: projectRoot,
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const signalGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, signal);
    } catch {
      // the group is gone already
    }
  };
  const peer: RunningPeer = {
    url: new URL(`http://127.0.0.1:${port}${config.path}`),
    child,
    rssMb: () =>
      processTree(child.pid!).reduce((sum, pid) => {
        try {
          return sum + rssMb(pid);
        } catch {
          return sum;
        }
      }, 0),
    async stop() {
      signalGroup('SIGTERM');
      const killed = setTimeout(() => signalGroup('SIGKILL'), 2_000);
      await exited;
      clearTimeout(killed);
      // Children of the group that outlive the peer itself.
      signalGroup('SIGKILL');
    },
  };
  let stderr = '';
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${config.name} did not listen: ${stderr}`)), 20_000);
      child.stderr!.on('data', (d: Buffer) => {
        // Only the start is of interest; later logging is not kept.
        if (stderr.length < 10_000) stderr += d.toString();
        if (stderr.includes('SB_TEST_LISTENING')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`${config.name} exited (${code}): ${stderr}`));
      });
    });
  } catch (err) {
    await peer.stop();
    throw err;
  }
  return peer;
}

async function peerSession(config: PeerConfig, url: URL, n: number): Promise<Session> {
  const client = new Client({ name: `bench-${n}`, version: '0' });
  // The hub's own fix for the SDK's shared abort signal, so that the client side is not what slows a peer.
  const transport =
    config.transport === 'sse'
      ? new SSEClientTransport(url, { fetch: perRequestSignalFetch })
      : new StreamableHTTPClientTransport(url, { fetch: perRequestSignalFetch });
  await client.connect(transport);
  return {
    async echo(message) {
      const r = await client.callTool({ name: 'echo', arguments: { message } }, { timeout: 10_000 });
      return (r.content as { text?: string }[])[0]?.text;
    },
    async close() {
      // Ends the session on the peer too (stateful supergateway then stops that session's child).
      if (transport instanceof StreamableHTTPClientTransport)
        await transport.terminateSession().catch(() => {});
      await client.close();
    },
  };
}

async function hubSession(hub: BenchHub, n: number): Promise<Session> {
  const c = await StreamClient.start({
    baseUrl: hub.base,
    apiToken: hub.token,
    serverId: hub.everythingId,
    clientId: `bench-${n}`,
  });
  await c.connect();
  return {
    async echo(message) {
      const r = await c.request('echo', { message }, { timeoutMs: 10_000 });
      return r.ok ? (r.result as { content: { text?: string }[] }).content[0]?.text : undefined;
    },
    async close() {
      c.close();
    },
  };
}

const sessionCounts = [1, 8] as const;

export interface PeerComparisonOptions {
  reps: number;
  startHub(): Promise<BenchHub>;
  seqCalls?: number;
  concCalls?: number;
}

/**
 * Measures every peer and the hub, prints the table and the ratios; the peers are stopped whatever happens.
 * Returns the best correct peer's median at 32 in flight with one session, for other figures to compare with.
 */
export async function runPeerComparison(options: PeerComparisonOptions): Promise<number | undefined> {
  const seqCalls = options.seqCalls ?? Number(process.env.BENCH_PEER_SEQ ?? 1000);
  const concCalls = options.concCalls ?? Number(process.env.BENCH_PEER_CONC ?? 3000);
  const runs: Record<string, number[]> = {};
  const tallies: Record<string, Tally> = {};
  const failures: Record<string, string> = {};
  const add = (k: string, v: number) => {
    runs[k] ??= [];
    runs[k].push(v);
  };

  /** Opens the sessions, measures them (sequential, then 32 in flight), closes them. */
  const measureSessions = async (
    name: string,
    count: number,
    open: (n: number) => Promise<Session>,
    whileOpen?: () => void,
  ) => {
    const sessions: Session[] = [];
    try {
      for (let i = 0; i < count; i++) sessions.push(await open(i));
      tallies[`${name}|${count}`] ??= { calls: 0, wrong: 0, errors: 0 };
      const r = await measureCaller(
        checkedCaller(sessions, tallies[`${name}|${count}`]!),
        seqCalls,
        concCalls,
      );
      add(`${name}|${count}|seq`, r.seq);
      add(`${name}|${count}|conc`, r.conc);
      whileOpen?.();
    } finally {
      await Promise.all(sessions.map((s) => s.close().catch(() => {})));
    }
  };

  for (let rep = 0; rep < options.reps; rep++) {
    const order = rep % 2 === 0 ? [...peerConfigs, undefined] : [undefined, ...peerConfigs];
    for (const config of order) {
      if (!config) {
        const hub = await options.startHub();
        try {
          for (const count of sessionCounts) await measureSessions('hub', count, (n) => hubSession(hub, n));
        } finally {
          await hub.close();
        }
        continue;
      }
      let peer: RunningPeer | undefined;
      try {
        peer = await startPeer(config);
        const { url } = peer;
        for (const count of sessionCounts)
          await measureSessions(
            config.name,
            count,
            (n) => peerSession(config, url, n),
            () => add(`${config.name}|${count}|rss`, peer!.rssMb()),
          );
      } catch (err) {
        failures[config.name] ??= String(err).slice(0, 300);
      } finally {
        await peer?.stop();
      }
    }
  }

  const problems = (name: string) =>
    sessionCounts.reduce((sum, count) => {
      const t = tallies[`${name}|${count}`];
      return sum + (t ? t.wrong + t.errors : 0);
    }, 0);
  const correct = (name: string) => !failures[name] && problems(name) === 0;
  const note = (name: string, count: number) => {
    const t = tallies[`${name}|${count}`];
    if (!t) return failures[name] ? `failed: ${failures[name]}` : '';
    const rss = runs[`${name}|${count}|rss`];
    const memory = rss ? `; RSS with children ${Math.round(summarize(rss).median)} MB` : '';
    if (t.wrong + t.errors === 0) return `${t.calls.toLocaleString('en-US')} answers right${memory}`;
    return `INCORRECT: ${t.wrong.toLocaleString('en-US')} wrong, ${t.errors.toLocaleString('en-US')} failed of ${t.calls.toLocaleString('en-US')} (${t.firstProblem})${memory}`;
  };
  const rows: { name: string; value: Summary; unit: string; note?: string }[] = [];
  for (const name of [...peerConfigs.map((c) => c.name), 'hub']) {
    const label = name === 'hub' ? 'hub stream' : name;
    for (const count of sessionCounts) {
      const sessions =
        name === 'hub'
          ? count === 1
            ? '1 stream'
            : `${count} streams`
          : `${count} session${count === 1 ? '' : 's'}`;
      for (const kind of ['seq', 'conc'] as const) {
        const values = runs[`${name}|${count}|${kind}`];
        if (!values) continue;
        rows.push({
          name: `${label}, ${sessions}, ${kind === 'seq' ? 'sequential' : '32 in flight'}`,
          value: summarize(values),
          unit: 'calls/s',
          note: kind === 'conc' ? note(name, count) : undefined,
        });
      }
    }
  }
  for (const [name, failure] of Object.entries(failures))
    if (!rows.some((r) => r.name.startsWith(name)))
      rows.push({ name, value: summarize([0]), unit: 'calls/s', note: `failed: ${failure}` });
  printTable(
    `2. Echo through the npm peers vs the hub, ${seqCalls} sequential + ${concCalls} at 32 in flight, ${options.reps} runs, median`,
    rows,
  );

  const hubConc = (count: number) => runs[`hub|${count}|conc`];
  let bestSingle: number | undefined;
  for (const count of sessionCounts) {
    const best = peerConfigs
      .filter((c) => correct(c.name) && runs[`${c.name}|${count}|conc`])
      .map((c) => ({ name: c.name, median: summarize(runs[`${c.name}|${count}|conc`]!).median }))
      .sort((a, b) => b.median - a.median)[0];
    if (count === 1) bestSingle = best?.median;
    const hub = hubConc(count);
    if (!best || !hub) {
      console.log(`  no correct peer or no hub figure with ${count} session(s): no ratio`);
      continue;
    }
    ratioLine(
      `hub / best correct peer (${best.name}), ${count} session${count === 1 ? '' : 's'}, 32 in flight`,
      summarize(hub).median / best.median,
      5,
    );
    // The load on a shared machine drifts between runs: the ratio within each run (same minutes) is steadier.
    const peer = runs[`${best.name}|${count}|conc`]!;
    if (hub.length > 1 && hub.length === peer.length)
      console.log(`    per run: ${hub.map((h, i) => `${(h / peer[i]!).toFixed(2)}×`).join(', ')}`);
  }
  if (problems('hub') > 0) console.log('  the hub itself gave wrong or failed answers: see the table');
  return bestSingle;
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  await runPeerComparison({
    reps: Number(process.env.BENCH_REPS ?? 3),
    startHub: () => startBenchHub({ database: process.env.BENCH_DB === 'postgres' ? 'postgres' : 'pglite' }),
  });
  process.exit(0);
}
