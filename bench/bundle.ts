/**
 * The workflow engine's overhead, all in one run, on three stdio servers (the `flaky` fixture registered three
 * times, so three processes) whose `sleep` tool stands for a tool of equal, realistic latency:
 *   1. three independent steps of BENCH_DELAY_MS (50):
 *      (a) the ceiling: three SDK v2 clients in this process, one per server process, called at once;
 *      (b) a client making the same calls one by one over REST (POST /api/mcp/servers/:id/tools/sleep/call);
 *      (c) the same three steps as one parallel bundle (POST /api/mcp/bundle/execute, `parallel: true`);
 *      (d) a bare relay: one Fastify route running the same steps through its own SDK clients
 *          (bench/bare-bundle-relay-server.ts), so what the HTTP hop in front of the ceiling costs by itself is
 *          measured in the same run, and (c) − (d) is the price of the hub's own work.
 *   2. a 20-step DAG of BENCH_DAG_MS (5) steps over the three servers, 4 layers of 5, each step depending on
 *      two of the layer before: the bundle vs the same DAG run directly with the SDK clients (each step starts
 *      when its dependencies have finished), and through the bare relay.
 * Each bundle figure is also split, run by run, into the engine's own run (`durationMs`) and the rest of the wall
 * time: the request, reading the bundle and storing the end — the fixed cost of an execution.
 * Connections are warmed up before timing; every repetition times each path once, alternating their order.
 * Settings: BENCH_REPS (30), BENCH_WARMUP (5 rounds of every path), BENCH_DELAY_MS (50), BENCH_DAG_MS (5),
 * BENCH_DB (`pglite`, or `postgres` for a throwaway database on the local PostgreSQL).
 */
import path from 'node:path';
import { projectRoot } from '../src/paths.js';
import { freePort, startChild, waitForHttp } from '../test/helpers/processes.js';
import {
  checkSleep,
  directClients,
  directWorkflow,
  flaky,
  independentSteps,
  layeredDag,
  SERVERS,
  type Step,
} from './lib/direct-workflow.js';
import { type BenchHub, startBenchHub } from './lib/everything-hub.js';
import { nowMs, printTable, type Summary, summarize } from './lib/measure.js';

const reps = Number(process.env.BENCH_REPS ?? 30);
const warmups = Number(process.env.BENCH_WARMUP ?? 5);
const delayMs = Number(process.env.BENCH_DELAY_MS ?? 50);
const dagMs = Number(process.env.BENCH_DAG_MS ?? 5);
const database = process.env.BENCH_DB === 'postgres' ? 'postgres' : 'pglite';
const independent = independentSteps(delayMs);
const dag = layeredDag(4, 5, dagMs);

async function post(hub: BenchHub, url: string, body: unknown): Promise<unknown> {
  const res = await fetch(`${hub.base}${url}`, {
    method: 'POST',
    headers: hub.headers,
    body: JSON.stringify(body),
  });
  const json = (await res.json()) as unknown;
  if (!res.ok) throw new Error(`${url}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

async function sequentialRest(hub: BenchHub, serverIds: number[], steps: Step[]): Promise<void> {
  for (const step of steps) {
    const r = (await post(hub, `/api/mcp/servers/${serverIds[step.server]}/tools/${step.tool}/call`, {
      arguments: step.args,
    })) as { ok: boolean; result: { structuredContent?: unknown } };
    if (!r.ok) throw new Error(`call failed ${JSON.stringify(r)}`);
    checkSleep(r.result.structuredContent, step.args.ms);
  }
}

/** Runs a bundle synchronously; returns the engine's own duration (from the plan's start to the last step). */
async function bundleRun(hub: BenchHub, bundleId: string, steps: Step[]): Promise<number> {
  const r = (await post(hub, '/api/mcp/bundle/execute', { bundleId, workflow: { steps } })) as {
    status: string;
    durationMs: number;
    results: { result: unknown }[];
  };
  if (r.status !== 'succeeded' || r.results.length !== steps.length) {
    throw new Error(`bundle failed ${JSON.stringify(r)}`);
  }
  for (const [i, s] of r.results.entries()) checkSleep(s.result, steps[i]!.args.ms);
  return r.durationMs;
}

/** The bare relay in its own process (as the hub is); returns how to run a workflow through it. */
async function bareRelay(): Promise<{ run(steps: Step[]): Promise<void>; close(): Promise<void> }> {
  const port = await freePort();
  const script = path.join(projectRoot, 'bench', 'bare-bundle-relay-server.ts');
  const child = startChild(process.execPath, ['--import', 'tsx', script], { PORT: String(port) });
  await waitForHttp(`http://127.0.0.1:${port}/ready`, 20_000, child);
  return {
    async run(steps) {
      const res = await fetch(`http://127.0.0.1:${port}/workflow`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ steps }),
      });
      const r = (await res.json()) as { status?: string };
      if (r.status !== 'succeeded') throw new Error(`relay failed ${JSON.stringify(r)}`);
    },
    close: () => child.stop(),
  };
}

const hub = await startBenchHub({ database });
const clients = await directClients();
const relay = await bareRelay();
try {
  const serverIds: number[] = [];
  for (let i = 0; i < SERVERS; i++) {
    const { server } = (await post(hub, '/api/mcp/servers', {
      name: `bench-sleep-${i + 1}`,
      transport: 'stdio',
      command: process.execPath,
      args: [flaky],
      config: { max_concurrency: 64 },
    })) as { server: { id: number } };
    serverIds.push(server.id);
  }
  const { bundleId } = (await post(hub, '/api/mcp/bundle/create', {
    bundleName: 'bench: three sleeping servers',
    serverIds,
    bundleConfig: { parallel: true },
  })) as { bundleId: string };

  // Warm-up: every connection open, tool lists cached, code paths compiled.
  for (let i = 0; i < warmups; i++) {
    await directWorkflow(clients, independent);
    await directWorkflow(clients, dag);
    await relay.run(independent);
    await relay.run(dag);
    await sequentialRest(hub, serverIds, independent);
    await bundleRun(hub, bundleId, independent);
    await bundleRun(hub, bundleId, dag);
  }

  const timings: Record<string, number[]> = {};
  const add = (k: string, v: number) => {
    timings[k] ??= [];
    timings[k].push(v);
  };
  /** A bundle path returns the engine's own run: the rest of its wall time is the request's fixed cost. */
  const time = async (k: string, fn: () => Promise<unknown>) => {
    const t0 = nowMs();
    const engine = await fn();
    const wall = nowMs() - t0;
    add(k, wall);
    if (typeof engine === 'number') {
      add(`${k}.engine`, engine);
      add(`${k}.outside`, wall - engine);
    }
  };
  const paths: [string, () => Promise<unknown>][] = [
    ['direct', () => directWorkflow(clients, independent)],
    ['sequential', () => sequentialRest(hub, serverIds, independent)],
    ['bundle', () => bundleRun(hub, bundleId, independent)],
    ['relay', () => relay.run(independent)],
    ['dag.direct', () => directWorkflow(clients, dag)],
    ['dag.bundle', () => bundleRun(hub, bundleId, dag)],
    ['dag.relay', () => relay.run(dag)],
  ];
  for (let rep = 0; rep < reps; rep++) {
    // Alternate the order so that no path always runs on a warmer or cooler machine.
    for (const [k, fn] of rep % 2 === 0 ? paths : [...paths].reverse()) await time(k, fn);
  }

  const s = (k: string): Summary => summarize(timings[k]!);
  const med = (k: string) => s(k).median;
  printTable(
    `Three independent ${delayMs} ms steps on three servers (stdio), ${reps} runs, wall time, median`,
    [
      { name: '(a) direct SDK, 3 clients in parallel (ceiling)', value: s('direct'), unit: 'ms' },
      { name: '(b) REST calls one by one', value: s('sequential'), unit: 'ms' },
      { name: '(c) parallel bundle (POST execute)', value: s('bundle'), unit: 'ms' },
      { name: '    of which the engine run (durationMs)', value: s('bundle.engine'), unit: 'ms' },
      { name: '    the rest: request, bundle, stored end', value: s('bundle.outside'), unit: 'ms' },
      { name: '(d) bare relay: Fastify + 3 SDK clients', value: s('relay'), unit: 'ms' },
    ],
  );
  printTable(`20-step DAG (4 layers of 5) of ${dagMs} ms steps on three servers, ${reps} runs, median`, [
    { name: 'direct SDK, each step when its deps are done', value: s('dag.direct'), unit: 'ms' },
    { name: 'parallel bundle (POST execute)', value: s('dag.bundle'), unit: 'ms' },
    { name: '    of which the engine run (durationMs)', value: s('dag.bundle.engine'), unit: 'ms' },
    { name: '    the rest: request, bundle, stored end', value: s('dag.bundle.outside'), unit: 'ms' },
    { name: 'bare relay: Fastify + 3 SDK clients', value: s('dag.relay'), unit: 'ms' },
  ]);

  console.log('\nGoals');
  const goal = (name: string, value: string, met: boolean, target: string) =>
    console.log(`  ${name.padEnd(52)} ${value.padStart(9)}  (goal ${target}) ${met ? 'PASS' : 'MISS'}`);
  const less = (1 - med('bundle') / med('sequential')) * 100;
  goal('bundle: wall time less than sequential REST', `${less.toFixed(1)} %`, less >= 60, '≥ 60 %');
  const ceiling = med('bundle') / med('direct');
  goal('bundle / direct-parallel ceiling', `${ceiling.toFixed(3)}×`, ceiling <= 1.05, '≤ 1.05×');
  const perStep = (med('bundle') - med('direct')) / independent.length;
  goal('bundle overhead per step, 3 steps', `${perStep.toFixed(2)} ms`, perStep < 1, '< 1 ms');
  const dagPerStep = (med('dag.bundle') - med('dag.direct')) / dag.length;
  goal('DAG overhead per step, 20 steps', `${dagPerStep.toFixed(2)} ms`, dagPerStep < 1, '< 1 ms');
  console.log(
    `  (DAG: bundle / direct ${(med('dag.bundle') / med('dag.direct')).toFixed(2)}×; hub on ${database})`,
  );

  // What the HTTP hop costs by itself, and what is the hub's own on top of it.
  const hop = med('relay') - med('direct');
  console.log('\nThe HTTP hop (no goal)');
  console.log(
    `  bare relay / direct-parallel ceiling  ${(med('relay') / med('direct')).toFixed(3)}×  (+${hop.toFixed(2)} ms)`,
  );
  console.log(`  bundle / bare relay                   ${(med('bundle') / med('relay')).toFixed(3)}×`);
  const own = (med('bundle') - med('relay')) / independent.length;
  console.log(`  bundle − bare relay, per step, 3 steps   ${own.toFixed(2)} ms`);
  const dagOwn = (med('dag.bundle') - med('dag.relay')) / dag.length;
  console.log(`  bundle − bare relay, per step, 20-step DAG   ${dagOwn.toFixed(2)} ms`);
} finally {
  await Promise.all([...clients.map((c) => c.close()), relay.close()]);
  await hub.close();
}
