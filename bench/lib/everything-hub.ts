/**
 * What the call benchmarks share: server-everything's echo as the workload, the direct SDK caller (the
 * ceiling), and a built hub process (on PGlite, or on a throwaway PostgreSQL database) with server-everything
 * registered.
 */
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { projectRoot } from '../../src/paths.js';
import { createPostgresDatabase } from '../../test/helpers/db.js';
import { type HubProcess, processToken, startHubProcess } from '../../test/helpers/hub-process.js';
import { nowMs, printTable, ratioLine, type Summary, throughput } from './measure.js';

export const everything = `${projectRoot}/node_modules/@modelcontextprotocol/server-everything/dist/index.js`;
export const echoMessage = 'x'.repeat(55);

export type Caller = () => Promise<unknown>;

/**
 * The call benchmarks' settings: BENCH_REPS (3), BENCH_SEQ (2000 calls), BENCH_CONC (4000 at 32 in flight),
 * BENCH_WARMUP (2000 calls, one at a time, before each path is measured: a hub is a long-running process, and
 * its code paths, longer than the bare ones, are not compiled by V8 until well past 200 calls).
 */
export const reps = Number(process.env.BENCH_REPS ?? 3);
const seqCalls = Number(process.env.BENCH_SEQ ?? 2000);
const concCalls = Number(process.env.BENCH_CONC ?? 4000);
const warmupCalls = Number(process.env.BENCH_WARMUP ?? 2000);

/** measureCaller with the counts of the settings. */
export const measure = (call: Caller) => measureCaller(call, seqCalls, concCalls);

/** Throughput after a warm-up: `seqCalls` one at a time, then `concCalls` with 32 in flight. */
export async function measureCaller(
  call: Caller,
  seqCalls: number,
  concCalls: number,
): Promise<{ seq: number; conc: number }> {
  for (let i = 0; i < warmupCalls; i++) await call();
  return { seq: await throughput(call, seqCalls, 1), conc: await throughput(call, concCalls, 32) };
}

/** The SDK v2 client calling echo on server-everything over stdio, in this process. */
export async function directEverything(): Promise<{ call: Caller; close(): Promise<void> }> {
  const client = new Client({ name: 'bench', version: '0' }, { versionNegotiation: { mode: 'auto' } });
  await client.connect(
    new StdioClientTransport({ command: process.execPath, args: [everything, 'stdio'], stderr: 'ignore' }),
  );
  return {
    call: async () => {
      const r = await client.callTool({ name: 'echo', arguments: { message: echoMessage } });
      if ((r.content as { text: string }[])[0]?.text !== `Echo: ${echoMessage}`)
        throw new Error('wrong echo');
    },
    close: () => client.close(),
  };
}

export interface BenchHub {
  process: HubProcess;
  base: string;
  headers: Record<string, string>;
  token: string;
  everythingId: number;
  /** Spawn → /readyz answering 200, in ms. */
  readyMs: number;
  close(): Promise<void>;
}

/**
 * A hub process with server-everything registered; `database: 'postgres'` gives it a throwaway database,
 * `main` another build of the hub (bench:ab).
 */
export async function startBenchHub(
  options: { database?: 'pglite' | 'postgres'; env?: Record<string, string>; main?: string } = {},
): Promise<BenchHub> {
  const database = options.database === 'postgres' ? await createPostgresDatabase() : undefined;
  const t0 = nowMs();
  const hub = await startHubProcess(
    {
      SWITCHBOARD_SEED_EXAMPLES: 'false',
      ...(database ? { DATABASE_URL: database.url } : {}),
      ...options.env,
    },
    undefined,
    options.main,
  );
  const readyMs = nowMs() - t0;
  const created = await fetch(`${hub.base}/api/mcp/servers`, {
    method: 'POST',
    headers: hub.headers,
    body: JSON.stringify({
      name: 'everything',
      transport: 'stdio',
      command: process.execPath,
      args: [everything, 'stdio'],
      config: { max_concurrency: 64 },
    }),
  });
  const { server } = (await created.json()) as { server: { id: number } };
  return {
    process: hub,
    base: hub.base,
    headers: hub.headers,
    token: processToken,
    everythingId: server.id,
    readyMs,
    async close() {
      await hub.stop();
      await database?.drop();
    },
  };
}

/** The medians of one call benchmark's paths, by `<path>.seq` / `<path>.conc`. */
export type PathSummaries = (key: string) => Summary;

/**
 * Prints the table of a call benchmark's paths — (a) direct, (b) the bare transport, (c) the hub (and any
 * `more` rows), (d) the bare relay — with the two-hop ceiling 1 / (1/a + 1/b), and the ratios against it and
 * against the relay. `what` names the paths of this benchmark; the goal is ≥ 0.7 of the ceiling.
 */
export function reportTwoHop(
  title: string,
  s: PathSummaries,
  what: { bare: string; bareUnit: string; hub: string; relay: string },
  more: { name: string; key: string }[] = [],
): void {
  const twoHop = (a: number, b: number) => 1 / (1 / a + 1 / b);
  const ceiling = {
    seq: twoHop(s('direct.seq').median, s('bare.seq').median),
    conc: twoHop(s('direct.conc').median, s('bare.conc').median),
  };
  const modes = [
    ['seq', 'sequential'],
    ['conc', '32 in flight'],
  ] as const;
  const rows = (name: string, key: string, unit = 'calls/s') =>
    modes.map(([m, label]) => ({ name: `${name}, ${label}`, value: s(`${key}.${m}`), unit }));
  printTable(title, [
    ...rows('(a) direct SDK stdio', 'direct'),
    ...rows(`(b) ${what.bare}`, 'bare', what.bareUnit),
    ...rows(`(c) ${what.hub}`, 'hub'),
    ...more.flatMap((r) => rows(`(c) ${r.name}`, r.key)),
    ...rows(`(d) ${what.relay}`, 'relay'),
  ]);
  console.log(
    `\n  two-hop ceiling 1/(1/a+1/b): sequential ${Math.round(ceiling.seq)} calls/s, 32 in flight ${Math.round(ceiling.conc)} calls/s`,
  );
  for (const [m, label] of modes)
    ratioLine(`hub / two-hop ceiling, ${label}`, s(`hub.${m}`).median / ceiling[m], 0.7);
  for (const [m, label] of modes)
    ratioLine(`bare relay / two-hop ceiling, ${label}`, s(`relay.${m}`).median / ceiling[m]);
  for (const [m, label] of modes)
    ratioLine(`hub / bare relay, ${label}`, s(`hub.${m}`).median / s(`relay.${m}`).median);
}

/** The hub's REST call of echo on server-everything (`message`: echoMessage), its answer checked. */
export function hubCaller(hub: BenchHub, message = echoMessage): Caller {
  const url = `${hub.base}/api/mcp/servers/${hub.everythingId}/tools/echo/call`;
  const body = JSON.stringify({ arguments: { message } });
  return async () => {
    const res = await fetch(url, { method: 'POST', headers: hub.headers, body });
    const json = (await res.json()) as { ok: boolean; result: { content: { text: string }[] } };
    if (!json.ok || json.result.content[0]?.text !== `Echo: ${message}`) {
      throw new Error(`wrong answer ${JSON.stringify(json)}`);
    }
  };
}
