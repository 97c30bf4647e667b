/**
 * Tool-call throughput through the hub's REST API against the two ceilings it stands on, all in one run:
 *   (a) direct: the SDK v2 client calling server-everything's echo over stdio in this process;
 *   (b) bare HTTP: a Fastify route returning a constant, driven by the same fetch client;
 *   (c) the hub: POST /api/mcp/servers/:id/tools/echo/call (recording on, and off);
 *   (d) a bare relay: one Fastify route calling echo through one SDK client (bench/bare-relay-server.ts).
 * A hub call does the work of both (a) and (b), so its ceiling is the two-hop figure 1 / (1/a + 1/b); (d) shows
 * how much of that ceiling joining the hops costs by itself, so (c) / (d) is the price of the hub's own work.
 * Also: start-up time to /readyz and idle RSS on PGlite and on PostgreSQL.
 * Settings: BENCH_REPS (3), BENCH_SEQ (2000 calls), BENCH_CONC (4000 calls at 32 in flight).
 */
import path from 'node:path';
import { projectRoot } from '../src/paths.js';
import { freePort, rssMb, startChild, waitForHttp } from '../test/helpers/processes.js';
import {
  type Caller,
  directEverything,
  echoMessage,
  hubCaller,
  measure,
  reportTwoHop,
  reps,
  startBenchHub,
} from './lib/everything-hub.js';
import { printTable, ratioLine, type Summary, summarize } from './lib/measure.js';

/** A Fastify process from bench/: the bare HTTP floor, or the bare relay. */
async function bare(script: string): Promise<{ call: Caller; close(): Promise<void> }> {
  const port = await freePort();
  const child = startChild(process.execPath, ['--import', 'tsx', path.join(projectRoot, 'bench', script)], {
    PORT: String(port),
  });
  await waitForHttp(`http://127.0.0.1:${port}/ready`, 20_000, child);
  const body = JSON.stringify({ arguments: { message: echoMessage } });
  return {
    call: async () => {
      const res = await fetch(`http://127.0.0.1:${port}/call`, {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/json', authorization: 'Bearer bench' },
      });
      const json = (await res.json()) as { result: { content: { text: string }[] } };
      if (json.result.content[0]?.text !== `Echo: ${echoMessage}`) throw new Error('wrong answer');
    },
    close: () => child.stop(),
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
    rep % 2 === 0
      ? ['direct', 'bare', 'relay', 'hub', 'hub-norec']
      : ['hub-norec', 'hub', 'relay', 'bare', 'direct'];
  for (const which of order) {
    if (which === 'direct' || which === 'bare' || which === 'relay') {
      const target =
        which === 'direct'
          ? await directEverything()
          : await bare(which === 'bare' ? 'bare-http-server.ts' : 'bare-relay-server.ts');
      const r = await measure(target.call);
      add(`${which}.seq`, r.seq);
      add(`${which}.conc`, r.conc);
      await target.close();
    } else {
      const hub = await startBenchHub(
        which === 'hub-norec' ? { env: { SWITCHBOARD_RECORD_EVENTS: 'false' } } : {},
      );
      const r = await measure(hubCaller(hub));
      add(`${which}.seq`, r.seq);
      add(`${which}.conc`, r.conc);
      warnings += (hub.process.child.stderr().match(/MaxListenersExceededWarning/g) ?? []).length;
      await hub.close();
    }
  }
}

const s = (k: string): Summary => summarize(runs[k]!);
reportTwoHop(
  `Tool calls (echo on server-everything over stdio), ${reps} runs, median`,
  s,
  { bare: 'bare Fastify HTTP', bareUnit: 'req/s', hub: 'hub REST call', relay: 'bare relay (Fastify + SDK)' },
  [{ name: 'hub, recording off', key: 'hub-norec' }],
);
ratioLine('recording on / off, sequential', s('hub.seq').median / s('hub-norec.seq').median, 0.9);
ratioLine('recording on / off, 32 in flight', s('hub.conc').median / s('hub-norec.conc').median, 0.9);
console.log(`  MaxListenersExceededWarning lines in the hub's logs: ${warnings}`);

// Start-up to /readyz on a fresh data dir / fresh database, and RSS after 2 s idle.
const startup = {
  pglite: { ready: [] as number[], rss: [] as number[] },
  postgres: { ready: [] as number[], rss: [] as number[] },
};
for (let rep = 0; rep < reps; rep++) {
  for (const database of ['pglite', 'postgres'] as const) {
    const hub = await startBenchHub({ database });
    await new Promise((r) => setTimeout(r, 2000));
    startup[database].ready.push(hub.readyMs);
    startup[database].rss.push(rssMb(hub.process.child.proc.pid!));
    await hub.close();
  }
}
printTable('Start-up (fresh data, process spawn → /readyz 200) and idle RSS after 2 s', [
  { name: 'PGlite: start-up', value: summarize(startup.pglite.ready), unit: 'ms' },
  { name: 'PGlite: idle RSS', value: summarize(startup.pglite.rss), unit: 'MB' },
  { name: 'PostgreSQL: start-up', value: summarize(startup.postgres.ready), unit: 'ms' },
  { name: 'PostgreSQL: idle RSS', value: summarize(startup.postgres.rss), unit: 'MB' },
]);
