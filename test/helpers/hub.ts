import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { buildApp, type Hub } from '../../src/app.js';
import { type Env, loadConfig } from '../../src/config.js';
import { type Driver, openTestDb } from './db.js';

export const testToken = 'test-token-0123456789abcdef';

export interface TestHub {
  app: FastifyInstance;
  hub: Hub;
  /** inject() with the bearer token set (pass headers to override). */
  api(opts: InjectOptions): Promise<LightMyRequestResponse>;
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
  return {
    app,
    hub,
    api: (opts) =>
      app.inject({ ...opts, headers: { authorization: `Bearer ${testToken}`, ...(opts.headers ?? {}) } }),
    async close() {
      await app.close();
      await testDb.drop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
