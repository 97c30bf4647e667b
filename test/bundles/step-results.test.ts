import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { findExecution, finishExecution, insertBundle, insertExecution } from '../../src/bundles/queries.js';
import { STEP_RESULT_DELAY_MS, StepResultWriter } from '../../src/bundles/step-results.js';
import type { StepState } from '../../src/bundles/workflow-engine.js';
import type { Queryable } from '../../src/db/db.js';
import { openPgDb } from '../../src/db/pg-db.js';
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

  it('stores every field of a result as it reads back, in a batch and with the end, with or without async commit', async () => {
    const results: StepState[] = [
      { ...step(0), content: [{ type: 'text', text: '{"slept":0}' }] },
      {
        ...step(1),
        id: null,
        status: 'failed',
        ok: false,
        result: undefined,
        error: { code: 'SB_ERR_TOOL', message: 'it failed', details: { why: ['a', 1] } },
        attempts: 3,
      },
      {
        step: 2,
        id: 's2',
        server: 0,
        serverId,
        tool: 'sleep',
        status: 'skipped',
        ok: false,
        error: { code: 'SB_ERR_DEPENDENCY', message: 'step 1 failed' },
        attempts: 0,
        durationMs: null,
        startedAt: null,
      },
    ];
    const asyncCommit = driver === 'postgres';
    const writer = new StepResultWriter(t.db, executionId, Promise.resolve(true), log(), { asyncCommit });
    writer.add(results[0]!);
    for (let i = 0; i < 500 && (await stored()).length === 0; i++)
      await new Promise((r) => setTimeout(r, STEP_RESULT_DELAY_MS / 10));
    writer.add(results[1]!);
    writer.add(results[2]!);
    const ended = await writer.finish((rest) =>
      finishExecution(
        t.db,
        { id: executionId, bundleId: 'bundle-writer', status: 'failed', context: { k: 'v' }, durationMs: 7 },
        rest,
        { asyncCommit },
      ),
    );
    expect(ended).toBe(true);
    const read = await findExecution(t.db, executionId);
    expect(read).toMatchObject({ status: 'failed', durationMs: 7, finalContext: { k: 'v' } });
    // JSON drops what is undefined, as the database does.
    expect(read?.steps).toEqual(JSON.parse(JSON.stringify(results)));
    expect(await execution()).toEqual({ status: 'failed', execution_count: 1 });
    expect(logged).toEqual([]);
  });

  it('commits asynchronously only the statement that asks for it', async () => {
    // One connection (PGlite has only one): a setting that outlived its statement would show in the next one.
    const db = driver === 'postgres' ? await openPgDb(t.url!, { max: 1 }) : t.db;
    try {
      const before = await db.query<{ synchronous_commit: string }>('SHOW synchronous_commit');
      expect(before.rows[0]?.synchronous_commit).toBe('on');
      const writer = new StepResultWriter(db, executionId, Promise.resolve(true), log(), {
        asyncCommit: true,
      });
      writer.add(step(0));
      for (let i = 0; i < 500 && (await stored(db)).length === 0; i++)
        await new Promise((r) => setTimeout(r, STEP_RESULT_DELAY_MS / 10));
      expect(await db.query('SHOW synchronous_commit')).toMatchObject({
        rows: [{ synchronous_commit: 'on' }],
      });
      writer.add(step(1));
      const end = (steps: StepState[]) =>
        finishExecution(
          db,
          { id: executionId, bundleId: 'bundle-writer', status: 'succeeded', context: {}, durationMs: 5 },
          steps,
          { asyncCommit: true },
        );
      expect(await writer.finish(end)).toBe(true);
      expect(await db.query('SHOW synchronous_commit')).toMatchObject({
        rows: [{ synchronous_commit: 'on' }],
      });
      expect(await stored(db)).toEqual([0, 1]);
    } finally {
      if (db !== t.db) await db.close();
    }
  });

  it('writes nothing when the execution row was not written', async () => {
    const writer = new StepResultWriter(t.db, executionId, Promise.resolve(false), log());
    writer.add(step(0));
    writer.add(step(1));
    expect(await writer.finish(async () => 'ended')).toBe('ended');
    expect(await stored()).toEqual([]);
  });
});
