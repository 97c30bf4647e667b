import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { projectRoot } from '../../src/paths.js';

/**
 * The workflows of bench:bundle, and how they run without the hub: one SDK client per server process (the
 * `flaky` fixture, whose `sleep` tool stands for a tool of realistic latency), each step as soon as its
 * dependencies have finished. Used by the bench itself (the ceiling) and by the bare relay it compares with.
 */
export const flaky = `${projectRoot}/dist/examples/servers/flaky.js`;
export const SERVERS = 3;

export interface Step {
  server: number;
  tool: 'sleep';
  args: { ms: number };
  dependsOn?: number[];
}

/** One step of `ms` on each server, independent of each other. */
export const independentSteps = (ms: number): Step[] =>
  Array.from({ length: SERVERS }, (_, i) => ({ server: i, tool: 'sleep', args: { ms } }));

/** Layer k's step j waits for steps j and j+1 (mod width) of layer k-1: a DAG, not a barrier per layer. */
export function layeredDag(layers: number, width: number, ms: number): Step[] {
  const steps: Step[] = [];
  for (let k = 0; k < layers; k++) {
    for (let j = 0; j < width; j++) {
      const i = k * width + j;
      const prev = (k - 1) * width;
      steps.push({
        server: i % SERVERS,
        tool: 'sleep',
        args: { ms },
        ...(k > 0 ? { dependsOn: [prev + j, prev + ((j + 1) % width)] } : {}),
      });
    }
  }
  return steps;
}

/** A sleep result is only right when the server slept the time asked and was not cancelled. */
export function checkSleep(value: unknown, ms: number): void {
  const v = value as { cancelled?: boolean; sleptMs?: number } | undefined;
  if (v?.cancelled !== false || (v.sleptMs ?? -1) < ms - 1) {
    throw new Error(`wrong sleep result ${JSON.stringify(value)}`);
  }
}

/** The ceiling: one SDK client per server process, in this process. */
export async function directClients(): Promise<Client[]> {
  return Promise.all(
    Array.from({ length: SERVERS }, async () => {
      const client = new Client({ name: 'bench', version: '0' }, { versionNegotiation: { mode: 'auto' } });
      await client.connect(
        new StdioClientTransport({ command: process.execPath, args: [flaky], stderr: 'ignore' }),
      );
      return client;
    }),
  );
}

async function directStep(clients: Client[], step: Step): Promise<void> {
  const r = await clients[step.server]!.callTool({ name: step.tool, arguments: step.args });
  checkSleep(r.structuredContent, step.args.ms);
}

/** Runs a workflow directly: each step starts as soon as all of its dependencies have finished. */
export function directWorkflow(clients: Client[], steps: Step[]): Promise<unknown> {
  const done = new Map<number, Promise<void>>();
  const start = (i: number): Promise<void> => {
    let p = done.get(i);
    if (!p) {
      const step = steps[i]!;
      p = Promise.all((step.dependsOn ?? []).map(start)).then(() => directStep(clients, step));
      done.set(i, p);
    }
    return p;
  };
  return Promise.all(steps.map((_, i) => start(i)));
}
