import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { insertBundle, insertExecution } from '../../src/bundles/queries.js';
import { StepResultWriter } from '../../src/bundles/step-results.js';
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

  it('writes a result while the run goes on, and those still queued in the transaction of the end', async () => {
    const writer = new StepResultWriter(t.db, executionId, Promise.resolve(true), log());
    writer.add(step(0));
    for (let i = 0; i < 500 && (await stored()).length === 0; i++)
      await new Promise((r) => setTimeout(r, 10));
    expect(await stored()).toEqual([0]);
    for (let i = 1; i < 5; i++) writer.add(step(i));
    const seen = await writer.finish((tx) => stored(tx));
    expect(seen).toEqual([0, 1, 2, 3, 4]);
    expect(await stored()).toEqual([0, 1, 2, 3, 4]);
    expect(logged).toEqual([]);
  });

  it('stores the end when results cannot be stored, and logs the steps it lost', async () => {
    const writer = new StepResultWriter(t.db, executionId, Promise.resolve(true), log());
    writer.add(step(0));
    // No such server: the foreign key refuses the row.
    writer.add(step(1, serverId + 1000));
    const end = await writer.finish(async (tx) => {
      await tx.query("UPDATE mcp_bundle_executions SET status = 'succeeded' WHERE id = $1", [executionId]);
      return 'ended';
    });
    expect(end).toBe('ended');
    expect(await stored()).toEqual([]);
    const { rows } = await t.db.query<{ status: string }>(
      'SELECT status FROM mcp_bundle_executions WHERE id = $1',
      [executionId],
    );
    expect(rows[0]!.status).toBe('succeeded');
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
