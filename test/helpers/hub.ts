import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { buildApp, type Hub } from '../../src/app.js';
import { type BundleDeps, BundleService } from '../../src/bundles/service.js';
import { type Env, loadConfig } from '../../src/config.js';
import { projectRoot } from '../../src/paths.js';
import { type Driver, openTestDb } from './db.js';

export const testToken = 'test-token-0123456789abcdef';

/** The built fixture server (hangs, crashes, fails on demand) and the third-party reference server. */
export const flakyServer = `${projectRoot}/dist/examples/servers/flaky.js`;
export const everythingServer = `${projectRoot}/node_modules/@modelcontextprotocol/server-everything/dist/index.js`;

export interface TestHub {
  app: FastifyInstance;
  hub: Hub;
  /** inject() with the bearer token set (pass headers to override). */
  api(opts: InjectOptions): Promise<LightMyRequestResponse>;
  /** Registers a stdio server running `node <args>` (throws unless created) and returns its id. */
  addStdioServer(name: string, args: string[], config?: Record<string, unknown>): Promise<number>;
  close(): Promise<void>;
}

/** A whole hub on a fresh database of its own (PGlite in memory or a new PostgreSQL database), never listening. */
export async function startTestHub(driver: Driver, env: Env = {}): Promise<TestHub> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'sb-test-'));
  const testDb = await openTestDb(driver, { migrate: false });
  const config = loadConfig({
    SWITCHBOARD_DATA_DIR: dataDir,
    SWITCHBOARD_API_TOKEN: testToken,
    LOG_LEVEL: 'silent',
    ...env,
  } as Record<string, string>);
  const { app, hub } = await buildApp(config, { db: testDb.db });
  await app.ready();
  const api: TestHub['api'] = (opts) =>
    app.inject({ ...opts, headers: { authorization: `Bearer ${testToken}`, ...(opts.headers ?? {}) } });
  return {
    app,
    hub,
    api,
    async addStdioServer(name, args, config) {
      const res = await api({
        method: 'POST',
        url: '/api/mcp/servers',
        payload: { name, transport: 'stdio', command: process.execPath, args, ...(config ? { config } : {}) },
      });
      if (res.statusCode !== 201) throw new Error(`could not register ${name}: ${res.body}`);
      return res.json().server.id as number;
    },
    async close() {
      await app.close();
      await testDb.drop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * The bundle service of another hub sharing this hub's database, pool and registry: its own instance id and
 * timers, as a second hub process would have as far as bundles go. The caller closes it.
 */
export function peerBundleService(hub: Hub, liveness?: BundleDeps['liveness']): BundleService {
  return new BundleService({
    db: hub.db,
    events: hub.events,
    log: hub.log,
    config: hub.config,
    servers: hub.registry,
    pool: hub.pool,
    ...(liveness ? { liveness } : {}),
  });
}
