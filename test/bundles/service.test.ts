import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BundleService, type ExecutionUpdate, executionUpdateTypes } from '../../src/bundles/service.js';
import type { Driver } from '../helpers/db.js';
import { flakyServer, startTestHub, type TestHub } from '../helpers/hub.js';

/** A test hub on `driver` with the flaky fixture registered, for the tests of the describe block that calls it. */
function flakyHub(driver: Driver) {
  const h = {} as { t: TestHub; service: BundleService; flakyId: number };
  beforeAll(async () => {
    h.t = await startTestHub(driver);
    h.flakyId = await h.t.addStdioServer('flaky', [flakyServer]);
    h.service = h.t.hub.bundles;
  });
  afterAll(async () => {
    await h.service?.close();
    await h.t?.close();
  });
  return h;
}

/** The service without HTTP: what a live view (socket.io namespace, UI) can follow of an execution. */
describe('BundleService updates', () => {
  const h = flakyHub('pglite');

  it('publishes the start, each step with its progress, and the end, in order', async () => {
    const bundle = await h.service.create({ bundleName: 'live', serverIds: [h.flakyId] });
    const updates: ExecutionUpdate[] = [];
    const unsubscribe = h.service.subscribe((u) => updates.push(u));
    const { executionId, done } = await h.service.execute({
      bundleId: bundle.id,
      workflow: {
        steps: [
          { server: 0, tool: 'sleep', args: { ms: 200, progressEvery: 50 } },
          { server: 0, tool: 'fail', dependsOn: [0] },
          { server: 0, tool: 'echo', args: { message: 'x' }, dependsOn: [1] },
        ],
      },
    });
    const result = await done;
    unsubscribe();
    expect(result.status).toBe('failed');
    expect(updates.every((u) => u.executionId === executionId && u.bundleId === bundle.id)).toBe(true);
    const kinds = updates.map((u) => (u.type === 'step-progress' ? 'progress' : u.type));
    const t0 = executionUpdateTypes;
    expect(kinds[0]).toBe(t0.started);
    expect(kinds.at(-1)).toBe(t0.finished);
    expect(kinds.filter((k) => k === 'progress').length).toBeGreaterThanOrEqual(2);
    expect(kinds.filter((k) => k !== 'progress')).toEqual([
      t0.started,
      t0.stepStarted,
      t0.stepFinished,
      t0.stepStarted,
      t0.stepFinished,
      t0.stepFinished,
      t0.finished,
    ]);
    const finished = updates.flatMap((u) => (u.type === 'step-finished' ? [u.step.status] : []));
    expect(finished).toEqual(['succeeded', 'failed', 'skipped']);
    const last = updates.at(-1);
    expect(last?.type === 'execution-finished' && last.result.status).toBe('failed');
  });
});

/**
 * The embedded database has one process, so a waiting caller gets the result as soon as the run ends and the
 * hub's own reads wait for the end to be stored; on PostgreSQL other hubs read it, so the answer waits for it.
 */
describe.each(['pglite', 'postgres'] as const)('BundleService answers a waiting caller (%s)', (driver) => {
  const h = flakyHub(driver);

  it('with the result that every later read finds stored', async () => {
    const bundle = await h.service.create({ bundleName: 'answer', serverIds: [h.flakyId] });
    const { executionId, ended, done } = await h.service.execute({
      bundleId: bundle.id,
      workflow: { steps: [{ server: 0, tool: 'echo', args: { message: 'x' } }] },
    });
    let stored = false;
    void done.then(() => {
      stored = true;
    });
    const result = await ended;
    expect(result.status).toBe('succeeded');
    if (driver === 'pglite') {
      expect(stored).toBe(false);
      const [read, cancel] = await Promise.allSettled([
        h.service.getExecution(executionId),
        h.service.cancel(executionId),
      ]);
      expect(stored).toBe(true);
      expect(read).toEqual({ status: 'fulfilled', value: result });
      expect(cancel).toMatchObject({
        status: 'rejected',
        reason: { code: 'SB_ERR_CONFLICT', details: { status: 'succeeded' } },
      });
    } else {
      // What another hub reads: the database, at once.
      const { rows } = await h.t.hub.db.query<{ status: string }>(
        'SELECT status FROM mcp_bundle_executions WHERE id = $1',
        [executionId],
      );
      expect(rows[0]?.status).toBe('succeeded');
    }
    const listed = (await h.service.list()).find((b) => b.id === bundle.id);
    expect(listed?.execution_count).toBe(1);
    expect((await h.service.executions(bundle.id, 10)).map((e) => [e.executionId, e.status])).toEqual([
      [executionId, 'succeeded'],
    ]);
    expect(await done).toEqual(result);
  });
});
