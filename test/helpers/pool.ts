import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { CallToolResult } from '@modelcontextprotocol/client';
import { type HubEvent, HubEventBus } from '../../src/events/hub-events.js';
import { createLogger, type Logger } from '../../src/logger.js';
import { UpstreamPool, type UpstreamPoolOptions } from '../../src/mcp/upstream-pool.js';
import { createMetrics, type Metrics } from '../../src/metrics.js';
import { projectRoot } from '../../src/paths.js';
import type { ServerConfig, ServerRecord } from '../../src/servers/payloads.js';

const execFileP = promisify(execFile);

/** Built by `npm run build` (vitest's pretest runs it with `npm test`). */
export const flakyScript = 'dist/examples/servers/flaky.js';
export const everythingScript = 'node_modules/@modelcontextprotocol/server-everything/dist/index.js';

/** Fails a suite at once, saying what to do, when the flaky fixture has not been built. */
export function assertFlakyBuilt(): void {
  if (!existsSync(path.join(projectRoot, flakyScript)))
    throw new Error(`${flakyScript} missing: run npm run build`);
}

/** What the flaky fixture's `stats` tool reports of its process. */
export interface FlakyStats {
  calls: number;
  cancellations: number;
  maxConcurrent: number;
  completed: number;
  running: number;
  lookups: number;
  pid: number;
}

export function makeRecord(fields: Partial<ServerRecord> & Pick<ServerRecord, 'id'>): ServerRecord {
  const now = new Date();
  return {
    name: `server-${fields.id}`,
    description: '',
    transport: 'stdio',
    command: null,
    args: [],
    env: {},
    cwd: null,
    url: null,
    headers: {},
    config: {},
    configVersion: 1,
    enabled: true,
    protocolVersion: null,
    protocolEra: null,
    createdAt: now,
    updatedAt: now,
    ...fields,
  };
}

export function flakyRecord(
  id: number,
  config: ServerConfig = {},
  extra: Partial<ServerRecord> = {},
): ServerRecord {
  return makeRecord({ id, name: `flaky-${id}`, command: 'node', args: [flakyScript], config, ...extra });
}

export function everythingStdioRecord(
  id: number,
  config: ServerConfig = {},
  extra: Partial<ServerRecord> = {},
) {
  return makeRecord({
    id,
    name: `everything-${id}`,
    command: 'node',
    args: [everythingScript, 'stdio'],
    config,
    ...extra,
  });
}

export function everythingHttpRecord(id: number, url: string, config: ServerConfig = {}): ServerRecord {
  return makeRecord({ id, name: `everything-http-${id}`, transport: 'streamable-http', url, config });
}

export interface TestPool {
  pool: UpstreamPool;
  events: HubEvent[];
  metrics: Metrics;
  /** The records loadServer() serves; change one and call pool.invalidate(id) to reconfigure. */
  records: Map<number, ServerRecord>;
  log: Logger;
}

/** A pool over in-memory records (no database); LOG_LEVEL=debug shows its log. */
export function createTestPool(
  records: ServerRecord[],
  options: Partial<UpstreamPoolOptions> = {},
): TestPool {
  const map = new Map(records.map((r) => [r.id, r]));
  const events: HubEvent[] = [];
  const bus = new HubEventBus();
  bus.subscribe((e) => events.push(e));
  const metrics = createMetrics();
  const log = createLogger(process.env.LOG_LEVEL ?? 'silent');
  const pool = new UpstreamPool({
    loadServer: async (id) => map.get(id),
    events: bus,
    metrics,
    log,
    projectRoot,
    stdioAllow: [],
    ...options,
  });
  return { pool, events, metrics, records: map, log };
}

/** Pids of this process's children (`ps --ppid`): the pool's stdio servers and anything else spawned. */
export async function childPids(): Promise<number[]> {
  const run = execFileP('ps', ['-o', 'pid=', '--ppid', String(process.pid)]);
  const self = run.child.pid; // ps is a child too
  try {
    const { stdout } = await run;
    return stdout
      .split('\n')
      .map((s) => Number(s.trim()))
      .filter((n) => Number.isInteger(n) && n > 0 && n !== self);
  } catch {
    return []; // ps exits 1 when there is no child
  }
}

/** Children not in `except`. */
export async function childPidsExcept(except: readonly number[]): Promise<number[]> {
  return (await childPids()).filter((p) => !except.includes(p));
}

/** Waits until `check` holds (polling), or fails with `message`. */
export async function waitFor(check: () => boolean | Promise<boolean>, message: string, timeoutMs = 5_000) {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for: ${message}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export function textOf(result: CallToolResult): string {
  const first = result.content[0];
  return first && first.type === 'text' ? first.text : '';
}

export function structured<T = Record<string, unknown>>(result: CallToolResult): T {
  return (result.structuredContent ?? JSON.parse(textOf(result))) as T;
}

/** The flaky fixture's counters, read from server `id` of the pool. */
export async function flakyStats(t: TestPool, id: number): Promise<FlakyStats> {
  return structured<FlakyStats>((await t.pool.callTool(id, 'stats', {})).result);
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export interface EverythingHttp {
  url: string;
  port: number;
  child: ChildProcess;
  /** SIGKILL, and wait for the exit. */
  kill(): Promise<void>;
  /** Starts it again on the same port (after kill()). */
  restart(): Promise<void>;
}

/**
 * server-everything's Streamable HTTP app on 127.0.0.1 and a free port. It listens on every interface
 * and on PORT (3001 by default); the preload forces loopback, lets PORT=0 pick a port and reports it.
 */
export async function startEverythingHttp(): Promise<EverythingHttp> {
  const preload = path.join(projectRoot, 'test/helpers/loopback-listen.mjs');
  let child: ChildProcess;
  const start = async (port: number) => {
    child = spawn(process.execPath, ['--import', preload, everythingScript, 'streamableHttp'], {
      cwd: projectRoot,
      env: { PATH: process.env.PATH ?? '', PORT: String(port) },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    return new Promise<number>((resolve, reject) => {
      let buf = '';
      const timer = setTimeout(() => reject(new Error(`server-everything did not start: ${buf}`)), 10_000);
      child.stderr?.on('data', (d: Buffer) => {
        buf += d.toString();
        const m = /SB_TEST_LISTENING (\d+)/.exec(buf);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`server-everything exited (${code}): ${buf}`));
      });
    });
  };
  const port = await start(0);
  const handle: EverythingHttp = {
    url: `http://127.0.0.1:${port}/mcp`,
    port,
    get child() {
      return child;
    },
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    },
    async restart() {
      await start(port);
    },
  };
  return handle;
}
