import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { finishExecution, insertBundle, insertExecution } from '../../src/bundles/queries.js';
import { STEP_RESULT_DELAY_MS, StepResultWriter } from '../../src/bundles/step-results.js';
import type { StepState } from '../../src/bundles/workflow-engine.js';
import type { Queryable } from '../../src/db/db.js';
import { createLogger } from '../../src/logger.js';
import { drivers, openTestDb, type TestDb } from '../helpers/db.js';

const executionId = 'exec-writer';

describe.each(drivers)('step results of an execution on %s', (driver) => {
  let t: TestDb;
  let serverId: number;
  let logged: string[];
  const log = () =>
    createLogger('error', {
      write: (line: string) => {
        logged.push(line);
      },
    });
  const step = (i: number, server = serverId): StepState => ({
    step: i,
    id: `s${i}`,
    server: 0,
    serverId: server,
    tool: 'sleep',
    status: 'succeeded',
    ok: true,
    result: { slept: i },
    args: { ms: i },
    attempts: 1,
    durationMs: 5,
    startedAt: new Date().toISOString(),
  });
  const stored = async (db: Queryable = t.db) =>
    (
      await db.query<{ step: number }>(
        'SELECT step FROM mcp_bundle_step_results WHERE execution_id = $1 ORDER BY step',
        [executionId],
      )
    ).rows.map((r) => r.step);

  beforeEach(async () => {
    logged = [];
    t = await openTestDb(driver);
    const { rows } = await t.db.query<{ id: number }>(
      "INSERT INTO mcp_servers (name, transport, command) VALUES ('writer', 'stdio', 'node') RETURNING id",
    );
    serverId = rows[0]!.id;
    await insertBundle(t.db, {
      id: 'bundle-writer',
      name: 'writer',
      serverIds: [serverId],
      config: {},
      description: '',
      workflow: null,
    });
    await insertExecution(t.db, {
      id: executionId,
      bundleId: 'bundle-writer',
      config: {},
      workflow: { steps: [{ server: 0, tool: 'sleep' }] },
      context: {},
      clientId: null,
      startedAt: new Date(),
      ownerInstance: 'test',
    });
  });
  afterEach(() => t.drop());

  const end = (steps: StepState[]) =>
    finishExecution(
      t.db,
      { id: executionId, bundleId: 'bundle-writer', status: 'succeeded', context: {}, durationMs: 5 },
      steps,
    );
  const execution = async () =>
    (
      await t.db.query<{ status: string; execution_count: number }>(
        `SELECT e.status, b.execution_count FROM mcp_bundle_executions e JOIN mcp_bundles b ON b.id = e.bundle_id
         WHERE e.id = $1`,
        [executionId],
      )
    ).rows[0];

  it('writes results together after a while when the run goes on, and those still queued with the end', async () => {
    const writer = new StepResultWriter(t.db, executionId, Promise.resolve(true), log());
    writer.add(step(0));
    writer.add(step(1));
    for (let i = 0; i < 500 && (await stored()).length === 0; i++)
      await new Promise((r) => setTimeout(r, STEP_RESULT_DELAY_MS / 10));
    expect(await stored()).toEqual([0, 1]);
    for (let i = 2; i < 5; i++) writer.add(step(i));
    expect(await writer.finish(end)).toBe(true);
    expect(await stored()).toEqual([0, 1, 2, 3, 4]);
    expect(await execution()).toEqual({ status: 'succeeded', execution_count: 1 });
    expect(logged).toEqual([]);
  });

  it('an execution ended by another hub meanwhile is not counted again', async () => {
    await t.db.query("UPDATE mcp_bundle_executions SET status = 'failed' WHERE id = $1", [executionId]);
    const writer = new StepResultWriter(t.db, executionId, Promise.resolve(true), log());
    writer.add(step(0));
    expect(await writer.finish(end)).toBe(false);
    expect(await stored()).toEqual([0]);
    expect(await execution()).toEqual({ status: 'succeeded', execution_count: 0 });
  });

  it('stores the end when results cannot be stored, and logs the steps it lost', async () => {
    const writer = new StepResultWriter(t.db, executionId, Promise.resolve(true), log());
    writer.add(step(0));
    // No such server: the foreign key refuses the row.
    writer.add(step(1, serverId + 1000));
    expect(await writer.finish(end)).toBe(true);
    expect(await stored()).toEqual([]);
    expect(await execution()).toEqual({ status: 'succeeded', execution_count: 1 });
    expect(logged.join('\n')).toContain('could not store step results');
    expect(JSON.parse(logged[0]!).steps).toEqual([0, 1]);
  });

  it('writes nothing when the execution row was not written', async () => {
    const writer = new StepResultWriter(t.db, executionId, Promise.resolve(false), log());
    writer.add(step(0));
    writer.add(step(1));
    expect(await writer.finish(async () => 'ended')).toBe('ended');
    expect(await stored()).toEqual([]);
  });
});
