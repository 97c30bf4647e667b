import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type Hub } from '../../src/app.js';
import type { BundleService, ExecutionUpdate } from '../../src/bundles/service.js';
import { loadConfig } from '../../src/config.js';
import type { Queryable } from '../../src/db/db.js';
import { drivers, openTestDb, type TestDb } from '../helpers/db.js';
import { flakyServer, peerBundleService, testToken } from '../helpers/hub.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(probe: () => Promise<T | undefined>, what: string, tries = 400): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const value = await probe();
    if (value !== undefined) return value;
    await sleep(25);
  }
  throw new Error(`timed out waiting for ${what}`);
}

const workflow = {
  steps: [
    { server: 0, tool: 'echo', args: { message: 'one' } },
    { server: 0, tool: 'echo', args: { message: 'two' }, dependsOn: [0] },
  ],
};

/** A running execution as a hub writes it, owned by `owner`, last heartbeat `ageSeconds` ago. */
async function insertRunning(db: Queryable, id: string, bundleId: string, owner: string, ageSeconds: number) {
  await db.query(
    `INSERT INTO mcp_bundle_executions (id, bundle_id, status, workflow, owner_instance, started_at, heartbeat_at)
     VALUES ($1, $2, 'running', $3::jsonb, $4, LOCALTIMESTAMP - make_interval(secs => $5 + 60),
             LOCALTIMESTAMP - make_interval(secs => $5))`,
    [id, bundleId, JSON.stringify(workflow), owner, ageSeconds],
  );
}

async function statusOf(db: Queryable, id: string) {
  const { rows } = await db.query<{
    status: string;
    error: { code: string } | null;
    finished_at: Date | null;
  }>('SELECT status, error, finished_at FROM mcp_bundle_executions WHERE id = $1', [id]);
  return rows[0]!;
}

async function executionCount(db: Queryable, bundleId: string): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    'SELECT execution_count AS n FROM mcp_bundles WHERE id = $1',
    [bundleId],
  );
  return Number(rows[0]!.n);
}

describe.each(drivers)('executions orphaned by a stopped hub, on %s', (driver) => {
  let testDb: TestDb;
  let app: FastifyInstance;
  let hub: Hub;
  let dataDir: string;
  let bundleId: string;
  const extra: BundleService[] = [];

  const api = (method: 'GET' | 'POST', url: string, payload?: Record<string, unknown>) =>
    app.inject({
      method,
      url,
      headers: { authorization: `Bearer ${testToken}` },
      ...(payload ? { payload } : {}),
    });

  /** Another hub process sharing the database, as far as executions go: its own instance id and timers. */
  async function peer(liveness: { heartbeatMs: number; staleAfterMs: number }): Promise<BundleService> {
    const service = peerBundleService(hub, liveness);
    extra.push(service);
    await service.start();
    return service;
  }

  beforeAll(async () => {
    // What a crashed hub and a live one left in the database before this hub starts.
    testDb = await openTestDb(driver);
    await testDb.db.query(
      `INSERT INTO mcp_bundles (id, name, server_ids, config) VALUES ('bundle-old', 'old', '[]'::jsonb, '{}'::jsonb)`,
    );
    await insertRunning(testDb.db, 'exec-crashed', 'bundle-old', 'dead-hub', 3600);
    await testDb.db.query(
      `INSERT INTO mcp_bundle_step_results (execution_id, step, server_index, tool_name, status, ok, result,
         attempts, started_at, duration_ms)
       VALUES ('exec-crashed', 0, 0, 'echo', 'succeeded', true, '{"message":"one"}'::jsonb, 1,
               LOCALTIMESTAMP - interval '3660 seconds', 3)`,
    );
    await insertRunning(testDb.db, 'exec-of-live-peer', 'bundle-old', 'live-peer', 0);

    dataDir = await mkdtemp(path.join(tmpdir(), 'sb-test-'));
    const config = loadConfig({
      SWITCHBOARD_DATA_DIR: dataDir,
      SWITCHBOARD_API_TOKEN: testToken,
      LOG_LEVEL: 'silent',
    } as Record<string, string>);
    ({ app, hub } = await buildApp(config, { db: testDb.db }));
    await app.ready();
    const server = await api('POST', '/api/mcp/servers', {
      name: 'flaky-orphans',
      transport: 'stdio',
      command: process.execPath,
      args: [flakyServer],
    });
    expect(server.statusCode, server.body).toBe(201);
    const bundle = await api('POST', '/api/mcp/bundle/create', {
      bundleName: 'orphans',
      serverIds: [server.json().server.id],
    });
    expect(bundle.statusCode, bundle.body).toBe(201);
    bundleId = bundle.json().bundleId;
  });
  afterAll(async () => {
    for (const s of extra) await s.close();
    await app?.close();
    await testDb?.drop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('closes at start the stale running execution, not the live peer’s; its steps stay readable', async () => {
    const crashed = await api('GET', '/api/mcp/bundle/executions/exec-crashed');
    expect(crashed.statusCode).toBe(200);
    const body = crashed.json();
    expect(body).toMatchObject({
      success: false,
      status: 'failed',
      bundleId: 'bundle-old',
      error: {
        code: 'SB_ERR_INTERRUPTED',
        details: { executionId: 'exec-crashed', ownerInstance: 'dead-hub' },
      },
    });
    expect(body.error.message).toMatch(/the hub running execution exec-crashed stopped/);
    // What ran before the crash is kept; what never ended says why.
    expect(body.results[0]).toMatchObject({
      step: 0,
      status: 'succeeded',
      ok: true,
      result: { message: 'one' },
    });
    expect(body.results[1]).toMatchObject({ step: 1, status: 'cancelled', ok: false, error: body.error });
    // Its duration is what is known of it: from its start to its last heartbeat.
    expect(body.durationMs).toBe(60_000);
    expect((await statusOf(hub.db, 'exec-crashed')).finished_at).not.toBeNull();

    const live = (await api('GET', '/api/mcp/bundle/executions/exec-of-live-peer')).json();
    expect(live).toMatchObject({ status: 'running' });
    expect(live.error).toBeUndefined();
    expect(live.results.map((s: { status: string }) => s.status)).toEqual(['pending', 'pending']);
    expect(await statusOf(hub.db, 'exec-of-live-peer')).toMatchObject({ status: 'running', error: null });

    // Counted like any ended execution, and recorded as a failed one for mcp_bundle_performance.
    expect(await executionCount(hub.db, 'bundle-old')).toBe(1);
    await hub.recorder.flush();
    const { rows } = await hub.db.query<{ ok: boolean | null; event_data: { executionId: string } }>(
      "SELECT ok, event_data FROM mcp_events WHERE event_type = 'bundle_execution' AND bundle_id = 'bundle-old'",
    );
    expect(rows).toMatchObject([{ ok: false, event_data: { executionId: 'exec-crashed' } }]);
  });

  it('a peer with a running execution keeps it alive by heartbeats; one that stops is closed by the others', async () => {
    // Ten heartbeats to the staleness, as in production (three): only a stalled peer misses that many.
    const liveness = { heartbeatMs: 250, staleAfterMs: 2500 };
    const runner = await peer(liveness);
    const watcher = await peer(liveness);
    const updates: ExecutionUpdate[] = [];
    // Either may close what a stopped hub left: both publish to their followers.
    for (const service of [runner, watcher]) service.subscribe((u) => updates.push(u));

    // Runs longer than the staleness: without heartbeats the watcher would close it.
    const { executionId, done } = await runner.execute({
      bundleId,
      workflow: { steps: [{ server: 0, tool: 'sleep', args: { ms: 4000 } }] },
    });
    const result = await done;
    expect(result.status).toBe('succeeded');
    expect(await statusOf(hub.db, executionId)).toMatchObject({ status: 'succeeded', error: null });
    // Had the watcher taken it for an orphan, it would have published a failed end of its own.
    const ends = updates.flatMap((u) =>
      u.type === 'execution-finished' && u.executionId === executionId ? [u.result.status] : [],
    );
    expect(ends).toEqual(['succeeded']);

    // A hub that stops mid-run: its row is left running and nobody heartbeats it any more.
    await insertRunning(hub.db, 'exec-gone', bundleId, 'gone-hub', 0);
    const closed = await waitFor(async () => {
      const s = await statusOf(hub.db, 'exec-gone');
      return s.status === 'running' ? undefined : s;
    }, 'the stale execution to be closed');
    expect(closed).toMatchObject({ status: 'failed', error: { code: 'SB_ERR_INTERRUPTED' } });
    // Followers (the /mcp-bundles namespace) learn the end like that of any execution, once.
    const finished = await waitFor(
      async () => updates.find((u) => u.type === 'execution-finished' && u.executionId === 'exec-gone'),
      'execution-finished of the closed execution',
    );
    expect(finished).toMatchObject({
      bundleId,
      result: { status: 'failed', error: { code: 'SB_ERR_INTERRUPTED' } },
    });
    expect(updates.filter((u) => u.executionId === 'exec-gone')).toHaveLength(1);
  });

  it('a hub that stalled past the staleness stores its real outcome when it ends, counted once', async () => {
    // The runner never heartbeats within the test; the watcher's staleness is short.
    const runner = await peer({ heartbeatMs: 600_000, staleAfterMs: 1_800_000 });
    await peer({ heartbeatMs: 100, staleAfterMs: 500 });
    const before = await executionCount(hub.db, bundleId);
    const { executionId, done } = await runner.execute({
      bundleId,
      workflow: { steps: [{ server: 0, tool: 'sleep', args: { ms: 3000 } }] },
    });
    await waitFor(async () => {
      const s = await statusOf(hub.db, executionId);
      return s.status === 'failed' ? s : undefined;
    }, 'the execution to be taken for an orphan');
    expect(await executionCount(hub.db, bundleId)).toBe(before + 1);

    expect((await done).status).toBe('succeeded');
    expect(await statusOf(hub.db, executionId)).toMatchObject({ status: 'succeeded', error: null });
    expect(await executionCount(hub.db, bundleId)).toBe(before + 1);
    const stored = (await api('GET', `/api/mcp/bundle/executions/${executionId}`)).json();
    expect(stored).toMatchObject({ status: 'succeeded', results: [{ status: 'succeeded', ok: true }] });
    expect(stored.error).toBeUndefined();
  });
});
