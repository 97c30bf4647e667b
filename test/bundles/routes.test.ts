import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/paths.js';
import { drivers } from '../helpers/db.js';
import { everythingServer, flakyServer, startTestHub, type TestHub } from '../helpers/hub.js';

interface StepResult {
  step: number;
  id: string | null;
  server: number;
  serverId: number;
  tool: string;
  status: string;
  ok: boolean;
  result?: Record<string, unknown>;
  error?: { code: string; message: string };
  args?: Record<string, unknown>;
  attempts: number;
  durationMs: number;
  startedAt: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(probe: () => Promise<T | undefined>, what: string, tries = 200): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const value = await probe();
    if (value !== undefined) return value;
    await sleep(25);
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe.each(drivers)('bundles on %s', (driver) => {
  let t: TestHub;
  const flaky: Record<string, number> = {};
  let contextServer: number;
  let everything: number;

  async function createBundle(payload: Record<string, unknown>): Promise<string> {
    const res = await t.api({ method: 'POST', url: '/api/mcp/bundle/create', payload });
    expect(res.statusCode, res.body).toBe(201);
    return res.json().bundleId;
  }

  async function execute(payload: Record<string, unknown>) {
    const res = await t.api({ method: 'POST', url: '/api/mcp/bundle/execute', payload });
    return { status: res.statusCode, body: res.json() };
  }

  async function stats(serverId: number) {
    const res = await t.api({
      method: 'POST',
      url: `/api/mcp/servers/${serverId}/tools/stats/call`,
      payload: {},
    });
    return res.json().result.structuredContent as { calls: number; cancellations: number; running: number };
  }

  async function countRows(sql: string, params: unknown[]): Promise<number> {
    const { rows } = await t.hub.db.query<{ n: number }>(sql, params);
    return Number(rows[0]!.n);
  }

  beforeAll(async () => {
    t = await startTestHub(driver);
    // One flaky process per concern, so that one test's counters do not leak into another's.
    for (const name of ['seq', 'par', 'chain', 'fail', 'cancel']) {
      flaky[name] = await t.addStdioServer(`flaky-${name}`, [flakyServer]);
    }
    contextServer = await t.addStdioServer('context-fixture', [
      `${projectRoot}/test/helpers/context-server.mjs`,
    ]);
    everything = await t.addStdioServer('everything', [everythingServer, 'stdio']);
    flaky.bounded = await t.addStdioServer('flaky-bounded', [flakyServer], { max_concurrency: 2 });
  });
  afterAll(() => t?.close());

  describe('store', () => {
    it('creates, reads, changes, lists and deletes a bundle', async () => {
      const create = await t.api({
        method: 'POST',
        url: '/api/mcp/bundle/create',
        payload: {
          bundleName: 'SEO Analysis Bundle',
          serverIds: [1, 2, 3],
          bundleConfig: { auto_chain: true, parallel: false, share_context: true },
          description: 'seo then content then graphics',
        },
      });
      expect(create.statusCode).toBe(201);
      const body = create.json();
      expect(body.bundleId).toMatch(/^bundle-\d{13}-[0-9a-f]+$/);
      expect(body.bundle).toMatchObject({
        id: body.bundleId,
        name: 'SEO Analysis Bundle',
        serverIds: [1, 2, 3],
        config: { auto_chain: true, parallel: false, share_context: true },
        execution_count: 0,
        workflow: null,
      });
      const id = body.bundleId;

      const got = await t.api({ method: 'GET', url: `/api/mcp/bundle/${id}` });
      expect(got.json().bundle.description).toBe('seo then content then graphics');

      const patched = await t.api({
        method: 'PATCH',
        url: `/api/mcp/bundle/${id}`,
        payload: {
          bundleName: 'Renamed',
          workflow: { steps: [{ server: 0, tool: 'analyze_seo', args: { html: '<title>x</title>' } }] },
        },
      });
      expect(patched.statusCode, patched.body).toBe(200);
      expect(patched.json().bundle).toMatchObject({
        name: 'Renamed',
        workflow: { steps: [{ tool: 'analyze_seo' }] },
      });

      const list = (await t.api({ method: 'GET', url: '/api/mcp/bundle/list' })).json();
      const listed = list.bundles.find((b: { id: string }) => b.id === id);
      expect(listed).toMatchObject({
        name: 'Renamed',
        execution_count: 0,
        performance: { executions: 0, success_rate: null, avg_duration_ms: null, last_run: null },
      });

      const del = await t.api({ method: 'DELETE', url: `/api/mcp/bundle/${id}` });
      expect(del.statusCode).toBe(200);
      expect((await t.api({ method: 'GET', url: `/api/mcp/bundle/${id}` })).statusCode).toBe(404);
      const after = (await t.api({ method: 'GET', url: '/api/mcp/bundle/list' })).json();
      expect(after.bundles.some((b: { id: string }) => b.id === id)).toBe(false);
    });

    it('refuses unknown servers and unknown bundles clearly', async () => {
      const bad = await t.api({
        method: 'POST',
        url: '/api/mcp/bundle/create',
        payload: { bundleName: 'x', serverIds: [1, 999] },
      });
      expect(bad.statusCode).toBe(400);
      expect(bad.json().error).toMatchObject({ code: 'SB_ERR_VALIDATION', details: { missing: [999] } });
      expect(bad.json().error.message).toContain('999');

      const before = await countRows('SELECT count(*) AS n FROM mcp_bundles', []);
      const badWorkflow = await t.api({
        method: 'POST',
        url: '/api/mcp/bundle/create',
        payload: {
          bundleName: 'bad',
          serverIds: [1],
          workflow: { steps: [{ server: 0, tool: 'no_such_tool' }] },
        },
      });
      expect(badWorkflow.statusCode).toBe(400);
      expect(badWorkflow.json().error.message).toContain('step 0 (no_such_tool)');
      expect(await countRows('SELECT count(*) AS n FROM mcp_bundles', [])).toBe(before);

      const unknown = await execute({
        bundleId: 'bundle-1-nope',
        workflow: { steps: [{ server: 0, tool: 'x' }] },
      });
      expect(unknown.status).toBe(404);
      expect(unknown.body.error.code).toBe('SB_ERR_NOT_FOUND');
    });
  });

  describe('validation', () => {
    let bundleId: string;
    beforeAll(async () => {
      bundleId = await createBundle({
        bundleName: 'validation',
        serverIds: [flaky.chain!, flaky.chain!],
        bundleConfig: { auto_chain: true, parallel: true },
      });
    });

    const echo = (message: string, extra: Record<string, unknown> = {}) => ({
      server: 0,
      tool: 'echo',
      args: { message },
      ...extra,
    });

    it.each([
      [
        'a server index out of range',
        [echo('a'), { server: 5, tool: 'echo', args: { message: 'b' } }],
        1,
        'out of range',
      ],
      ['an unknown tool', [echo('a'), { server: 1, tool: 'nope', args: {} }], 1, 'has no tool "nope"'],
      ['a dependency cycle', [echo('a', { dependsOn: [1] }), echo('b', { dependsOn: [0] })], 0, 'cycle'],
      ['a reference to a later step', [echo('{{steps.1.result.message}}'), echo('b')], 0, 'later step'],
      ['a reference to a missing step id', [echo('{{steps.ghost.result.message}}')], 0, 'does not exist'],
      ['dependsOn a missing step', [echo('a', { dependsOn: [7] })], 0, 'does not exist'],
      ['{{prev}} on the first step', [echo('{{prev.result.message}}')], 0, 'no previous step'],
      ['a malformed reference', [echo('a'), echo('{{steps.0.message}}')], 1, 'write {{steps'],
      [
        'a required argument missing on the first step',
        [{ server: 0, tool: 'echo', args: {} }],
        0,
        'message',
      ],
      ['a duplicate id', [echo('a', { id: 'x' }), echo('b', { id: 'x' })], 1, 'already used'],
    ])('%s → 400 naming the step, nothing stored', async (_what, steps, step, fragment) => {
      const res = await execute({ bundleId, workflow: { steps } });
      expect(res.status, JSON.stringify(res.body)).toBe(400);
      expect(res.body.error.code).toBe('SB_ERR_VALIDATION');
      expect(res.body.error.message).toContain(`step ${step}`);
      expect(res.body.error.message).toContain(fragment);
      expect(res.body.error.details.step).toBe(step);
      expect(
        await countRows('SELECT count(*) AS n FROM mcp_bundle_executions WHERE bundle_id = $1', [bundleId]),
      ).toBe(0);
      expect(
        (await t.api({ method: 'GET', url: `/api/mcp/bundle/${bundleId}` })).json().bundle.execution_count,
      ).toBe(0);
    });

    it('a step on a later step in order (parallel: false) is refused; no workflow at all is refused', async () => {
      const seq = await createBundle({ bundleName: 'seq-validation', serverIds: [flaky.chain!] });
      const later = await execute({
        bundleId: seq,
        workflow: { steps: [echo('a', { dependsOn: [1] }), echo('b')] },
      });
      expect(later.status).toBe(400);
      expect(later.body.error.message).toContain('later step');
      const none = await execute({ bundleId: seq });
      expect(none.status).toBe(400);
      expect(none.body.error.message).toContain('no workflow');
    });

    it('a server deleted after the bundle was made is named', async () => {
      const doomed = await t.addStdioServer('flaky-doomed', [flakyServer]);
      const id = await createBundle({ bundleName: 'doomed', serverIds: [flaky.chain!, doomed] });
      await t.api({ method: 'DELETE', url: `/api/mcp/servers/${doomed}` });
      const res = await execute({
        bundleId: id,
        workflow: { steps: [echo('a'), { server: 1, tool: 'echo', args: { message: 'b' } }] },
      });
      expect(res.status).toBe(400);
      expect(res.body.error.message).toContain('step 1');
      expect(res.body.error.message).toContain('no longer exists');
    });
  });

  describe('execution', () => {
    it('parallel: false runs steps one after the other at the server', async () => {
      const bundleId = await createBundle({ bundleName: 'seq', serverIds: [flaky.seq!] });
      const steps = [0, 1, 2].map(() => ({ server: 0, tool: 'concurrency', args: { ms: 80 } }));
      const { status, body } = await execute({ bundleId, workflow: { steps } });
      expect(status).toBe(200);
      expect(body).toMatchObject({ success: true, status: 'succeeded' });
      expect(body.executionId).toMatch(/^exec-/);
      const results = body.results as StepResult[];
      expect(results.map((r) => r.result?.maxConcurrent)).toEqual([1, 1, 1]);
      for (let i = 1; i < 3; i++) {
        const prevEnd = Date.parse(results[i - 1]!.startedAt) + results[i - 1]!.durationMs;
        expect(Date.parse(results[i]!.startedAt)).toBeGreaterThanOrEqual(prevEnd - 2);
      }
      expect(body.durationMs).toBeGreaterThanOrEqual(240);
    });

    it('parallel: true runs independent steps at once and a dependant after them', async () => {
      const bundleId = await createBundle({
        bundleName: 'dag',
        serverIds: [flaky.par!],
        bundleConfig: { parallel: true },
      });
      const steps = [
        { server: 0, tool: 'concurrency', args: { ms: 200 } },
        { server: 0, tool: 'concurrency', args: { ms: 200 } },
        { server: 0, tool: 'concurrency', args: { ms: 200 } },
        { server: 0, tool: 'concurrency', args: { ms: 1 }, dependsOn: [0, 1, 2] },
      ];
      const { body } = await execute({ bundleId, workflow: { steps } });
      expect(body.status).toBe('succeeded');
      const results = body.results as StepResult[];
      expect(results.slice(0, 3).map((r) => r.result?.maxConcurrent)).toEqual([3, 3, 3]);
      const lastEnd = Math.max(...results.slice(0, 3).map((r) => Date.parse(r.startedAt) + r.durationMs));
      expect(Date.parse(results[3]!.startedAt)).toBeGreaterThanOrEqual(lastEnd - 2);
    });

    it("parallel: true stays within each server's max_concurrency", async () => {
      const bundleId = await createBundle({
        bundleName: 'bounded',
        serverIds: [flaky.bounded!],
        bundleConfig: { parallel: true },
      });
      const steps = [0, 1, 2, 3].map(() => ({ server: 0, tool: 'concurrency', args: { ms: 150 } }));
      const { body } = await execute({ bundleId, workflow: { steps } });
      expect(body.status).toBe('succeeded');
      expect(Math.max(...body.results.map((r: StepResult) => r.result?.maxConcurrent as number))).toBe(2);
      expect(body.durationMs).toBeGreaterThanOrEqual(290);
    });

    it('server-everything: runs alongside another server in parallel; its text results chain', async () => {
      const bundleId = await createBundle({
        bundleName: 'everything',
        serverIds: [everything, flaky.par!],
        bundleConfig: { parallel: true, auto_chain: true },
      });
      const steps = [
        { server: 0, tool: 'trigger-long-running-operation', args: { duration: 0.3, steps: 1 } },
        { server: 1, tool: 'sleep', args: { ms: 300 } },
        { server: 0, tool: 'get-sum', args: { a: 2, b: 40 } },
        { server: 0, tool: 'echo', args: { message: '{{prev.result}}' } },
      ];
      const { body } = await execute({ bundleId, workflow: { steps } });
      expect(body.status, JSON.stringify(body.results)).toBe('succeeded');
      const r = body.results as StepResult[];
      // The two 300 ms steps on different servers overlapped: each started before the other ended.
      const span = (x: StepResult) => [Date.parse(x.startedAt), Date.parse(x.startedAt) + x.durationMs];
      const [s0, e0] = span(r[0]!);
      const [s1, e1] = span(r[1]!);
      expect(s1).toBeLessThan(e0!);
      expect(s0).toBeLessThan(e1!);
      // get-sum answers text (no structuredContent): the reference gets the text.
      expect(r[3]!.args).toEqual({ message: r[2]!.result });
      expect(String(r[2]!.result)).toContain('42');
      expect(String(r[3]!.result)).toContain('42');
      expect(Date.parse(r[3]!.startedAt)).toBeGreaterThanOrEqual(
        Date.parse(r[2]!.startedAt) + r[2]!.durationMs - 2,
      );
    });

    it('auto_chain: every reference form, exact references keep their type, implicit chaining', async () => {
      const bundleId = await createBundle({
        bundleName: 'chain',
        serverIds: [flaky.chain!],
        bundleConfig: { auto_chain: true },
      });
      const steps = [
        { server: 0, tool: 'echo', args: { message: '{{context.campaign_id}}' }, id: 'first' },
        {
          server: 0,
          tool: 'echo',
          args: { message: 'after {{steps.first.result.message}} on {{prev.result.pid}}' },
        },
        { server: 0, tool: 'sleep', args: { ms: '{{context.wait.ms}}' } },
        { server: 0, tool: 'echo', args: { message: '{{steps.0.result.message}}' } },
        // No message and no dependency: chained to step 3, which returns a message.
        { server: 0, tool: 'echo', args: {} },
        // Braces around anything but steps/prev/context are left as they are.
        { server: 0, tool: 'echo', args: { message: 'Hello {{name}}' } },
      ];
      const { body } = await execute({
        bundleId,
        workflow: { steps },
        context: { campaign_id: 'campaign-123', wait: { ms: 5 } },
      });
      expect(body.status, JSON.stringify(body.results)).toBe('succeeded');
      const r = body.results as StepResult[];
      expect(r[0]!.result?.message).toBe('campaign-123');
      expect(r[1]!.result?.message).toBe(`after campaign-123 on ${r[0]!.result?.pid}`);
      expect(r[2]!.args).toEqual({ ms: 5 });
      expect(r[3]!.result?.message).toBe('campaign-123');
      expect(r[4]!.args).toEqual({ message: 'campaign-123' });
      expect(r[5]!.result?.message).toBe('Hello {{name}}');
      expect(body.context).toEqual({ campaign_id: 'campaign-123', wait: { ms: 5 } });
    });

    it('a missing path and an argument nothing fills fail their step with a clear error; dependants skip', async () => {
      const bundleId = await createBundle({
        bundleName: 'chain-errors',
        serverIds: [flaky.chain!],
        bundleConfig: { auto_chain: true, parallel: true },
      });
      const steps = [
        { server: 0, tool: 'echo', args: { message: 'hello' } },
        { server: 0, tool: 'echo', args: { message: '{{steps.0.result.nope.deeper}}' } },
        { server: 0, tool: 'echo', args: { message: '{{prev.result.message}}' } },
        { server: 0, tool: 'stats', args: {} },
        // Lacks `message`, chained to step 3 (stats), whose result has none.
        { server: 0, tool: 'echo', args: {} },
      ];
      const { body } = await execute({ bundleId, workflow: { steps } });
      expect(body).toMatchObject({ success: false, status: 'failed' });
      const r = body.results as StepResult[];
      expect(r[0]!.status).toBe('succeeded');
      expect(r[1]!.status).toBe('failed');
      expect(r[1]!.error?.code).toBe('SB_ERR_STEP_INPUT');
      expect(r[1]!.error?.message).toContain('{{steps.0.result.nope.deeper}}');
      expect(r[1]!.error?.message).toContain('"nope"');
      expect(r[2]!.status).toBe('skipped');
      expect(r[2]!.error?.code).toBe('SB_ERR_STEP_SKIPPED');
      expect(r[2]!.error?.message).toContain('step 1');
      expect(r[3]!.status).toBe('succeeded');
      expect(r[4]!.status).toBe('failed');
      expect(r[4]!.error?.code).toBe('SB_ERR_STEP_INPUT');
      expect(r[4]!.error?.message).toMatch(/required argument "message".*step 3 \(stats\)/);
    });

    it('`if` runs a step only when its condition holds, at the real server', async () => {
      const bundleId = await createBundle({ bundleName: 'if', serverIds: [flaky.chain!] });
      const steps = [
        { server: 0, tool: 'echo', args: { message: 'go' }, id: 'e' },
        { server: 0, tool: 'echo', args: { message: 'taken' }, if: '{{steps.e.result.message}}' },
        { server: 0, tool: 'echo', args: { message: 'not taken' }, if: '{{context.enabled}}' },
      ];
      const { body } = await execute({ bundleId, workflow: { steps }, context: { enabled: false } });
      expect(body).toMatchObject({ success: true, status: 'succeeded' });
      expect(body.results.map((r: StepResult) => r.status)).toEqual(['succeeded', 'succeeded', 'skipped']);
      expect(body.results[2].error.message).toContain('condition is false');
    });

    it('share_context: tools see the shared context and extend it', async () => {
      const bundleId = await createBundle({
        bundleName: 'context',
        serverIds: [contextServer],
        bundleConfig: { auto_chain: true, share_context: true },
      });
      const steps = [
        { server: 0, tool: 'remember', args: { key: 'a', value: 1 } },
        { server: 0, tool: 'remember', args: { key: 'b', value: '{{context.a}}' } },
      ];
      const { body } = await execute({ bundleId, workflow: { steps }, context: { campaign_id: 'c-1' } });
      expect(body.status, JSON.stringify(body.results)).toBe('succeeded');
      const r = body.results as StepResult[];
      expect(r[0]!.result?.saw).toEqual({ campaign_id: 'c-1' });
      expect(r[1]!.result?.saw).toEqual({ campaign_id: 'c-1', a: 1 });
      expect(r[1]!.args?.value).toBe(1);
      expect(body.context).toEqual({ campaign_id: 'c-1', a: 1, b: 1 });

      // Without share_context the tools get no context and results do not extend it.
      const apart = await createBundle({
        bundleName: 'apart',
        serverIds: [contextServer],
        bundleConfig: { auto_chain: true },
      });
      const other = await execute({ bundleId: apart, workflow: { steps: [steps[0]] }, context: { x: 1 } });
      expect(other.body.results[0].result.saw).toBeNull();
      expect(other.body.context).toEqual({ x: 1 });
    });

    it('a failed step skips its dependants while independent branches finish; retry counts attempts', async () => {
      const bundleId = await createBundle({
        bundleName: 'fail',
        serverIds: [flaky.fail!],
        bundleConfig: { parallel: true },
      });
      const before = await stats(flaky.fail!);
      const steps = [
        { server: 0, tool: 'fail', retry: 2 },
        { server: 0, tool: 'echo', args: { message: 'a' }, dependsOn: [0] },
        { server: 0, tool: 'echo', args: { message: 'b' }, dependsOn: [1] },
        { server: 0, tool: 'echo', args: { message: 'independent' } },
      ];
      const { body } = await execute({ bundleId, workflow: { steps } });
      expect(body.status).toBe('failed');
      const r = body.results as StepResult[];
      expect(r.map((s) => s.status)).toEqual(['failed', 'skipped', 'skipped', 'succeeded']);
      expect(r[0]!.error).toMatchObject({ code: 'SB_ERR_TOOL_ERROR', message: 'flaky: failing on purpose' });
      expect(r[0]!.attempts).toBe(3);
      expect(r[2]!.error?.message).toContain('step 1');
      expect(r[3]!.result?.message).toBe('independent');
      // 3 attempts of `fail` + 1 echo reached the server; the skipped steps did not.
      expect((await stats(flaky.fail!)).calls - before.calls).toBe(4);
    });

    it('timeout_ms fails the step and cancels its upstream call', async () => {
      const bundleId = await createBundle({ bundleName: 'timeout', serverIds: [flaky.cancel!] });
      const before = await stats(flaky.cancel!);
      const { body } = await execute({
        bundleId,
        workflow: { steps: [{ server: 0, tool: 'sleep', args: { ms: 10_000 }, timeout_ms: 100 }] },
      });
      expect(body.status).toBe('failed');
      expect(body.results[0].error.code).toBe('SB_ERR_UPSTREAM_TIMEOUT');
      expect(body.results[0].error.message).toContain('timeout_ms (100 ms)');
      // Ended by the step's timeout, not by the 10 s sleep.
      expect(body.durationMs).toBeLessThan(10_000);
      await waitFor(
        async () => ((await stats(flaky.cancel!)).cancellations > before.cancellations ? true : undefined),
        'the upstream cancellation',
      );
    });

    it('async: 202 at once, polled to the end', async () => {
      const bundleId = await createBundle({ bundleName: 'async', serverIds: [flaky.seq!] });
      const res = await execute({
        bundleId,
        async: true,
        workflow: {
          steps: [
            { server: 0, tool: 'sleep', args: { ms: 200 } },
            { server: 0, tool: 'echo', args: { message: 'done' } },
          ],
        },
      });
      expect(res.status).toBe(202);
      expect(res.body).toMatchObject({ success: true, status: 'running' });
      const first = (
        await t.api({ method: 'GET', url: `/api/mcp/bundle/executions/${res.body.executionId}` })
      ).json();
      expect(first.status).toBe('running');
      expect(first.results[1].status).toBe('pending');
      const final = await waitFor(async () => {
        const b = (
          await t.api({ method: 'GET', url: `/api/mcp/bundle/executions/${res.body.executionId}` })
        ).json();
        return b.status === 'running' ? undefined : b;
      }, 'the end of the execution');
      expect(final).toMatchObject({ success: true, status: 'succeeded', executionId: res.body.executionId });
      expect(final.results[1]).toMatchObject({ status: 'succeeded', result: { message: 'done' } });
      // Read back from the database once it has ended.
      expect(
        await countRows('SELECT count(*) AS n FROM mcp_bundle_step_results WHERE execution_id = $1', [
          res.body.executionId,
        ]),
      ).toBe(2);
    });

    it('results holding a NUL character are stored (as U+FFFD)', async () => {
      const bundleId = await createBundle({ bundleName: 'nul', serverIds: [flaky.seq!] });
      const { body } = await execute({
        bundleId,
        workflow: { steps: [{ server: 0, tool: 'echo', args: { message: 'a\u0000b' } }] },
      });
      expect(body.results[0].result.message).toBe('a\u0000b');
      const stored = (
        await t.api({ method: 'GET', url: `/api/mcp/bundle/executions/${body.executionId}` })
      ).json();
      expect(stored.results[0].result.message).toBe('a\ufffdb');
    });

    it('a change that would make the stored workflow invalid is refused', async () => {
      const bundleId = await createBundle({
        bundleName: 'stored',
        serverIds: [flaky.seq!],
        workflow: { steps: [{ server: 0, tool: 'echo', args: { message: 'stored' } }] },
      });
      const run = await execute({ bundleId });
      expect(run.body.results[0].result.message).toBe('stored');
      const res = await t.api({
        method: 'PATCH',
        url: `/api/mcp/bundle/${bundleId}`,
        payload: { serverIds: [contextServer] },
      });
      expect(res.statusCode).toBe(400);
      expect(res.json().error.message).toContain('step 0 (echo)');
      expect(
        (await t.api({ method: 'GET', url: `/api/mcp/bundle/${bundleId}` })).json().bundle.serverIds,
      ).toEqual([flaky.seq]);
    });

    it('a synchronous call that outlasts waitMs answers 202 and the execution runs on', async () => {
      const bundleId = await createBundle({ bundleName: 'waited', serverIds: [flaky.seq!] });
      const res = await execute({
        bundleId,
        waitMs: 50,
        workflow: { steps: [{ server: 0, tool: 'sleep', args: { ms: 400 } }] },
      });
      expect(res.status).toBe(202);
      expect(res.body).toMatchObject({ success: true, status: 'running' });
      const final = await waitFor(async () => {
        const b = (
          await t.api({ method: 'GET', url: `/api/mcp/bundle/executions/${res.body.executionId}` })
        ).json();
        return b.status === 'running' ? undefined : b;
      }, 'the end of the execution');
      expect(final.status).toBe('succeeded');
    });

    it('cancel aborts the execution and reaches the upstream call', async () => {
      const bundleId = await createBundle({ bundleName: 'cancel', serverIds: [flaky.cancel!] });
      const before = await stats(flaky.cancel!);
      const res = await execute({
        bundleId,
        async: true,
        workflow: {
          steps: [
            { server: 0, tool: 'sleep', args: { ms: 10_000 } },
            { server: 0, tool: 'echo', args: { message: 'never' } },
          ],
        },
      });
      const id = res.body.executionId;
      await waitFor(
        async () => ((await stats(flaky.cancel!)).running > 0 ? true : undefined),
        'the sleep to start',
      );
      const cancel = await t.api({ method: 'POST', url: `/api/mcp/bundle/executions/${id}/cancel` });
      expect(cancel.statusCode).toBe(200);
      expect(cancel.json()).toMatchObject({ success: false, status: 'cancelled' });
      expect(cancel.json().results.map((r: StepResult) => r.status)).toEqual(['cancelled', 'cancelled']);
      await waitFor(
        async () => ((await stats(flaky.cancel!)).cancellations > before.cancellations ? true : undefined),
        'the upstream cancellation',
      );
      const again = await t.api({ method: 'POST', url: `/api/mcp/bundle/executions/${id}/cancel` });
      expect(again.statusCode).toBe(409);
      const stored = (await t.api({ method: 'GET', url: `/api/mcp/bundle/executions/${id}` })).json();
      expect(stored.status).toBe('cancelled');
      expect((await t.api({ method: 'GET', url: '/api/mcp/bundle/executions/exec-0-none' })).statusCode).toBe(
        404,
      );
    });

    it('counts executions and feeds mcp_bundle_performance', async () => {
      const bundleId = await createBundle({ bundleName: 'counted', serverIds: [flaky.fail!] });
      const ok = { steps: [{ server: 0, tool: 'echo', args: { message: 'x' } }] };
      const bad = { steps: [{ server: 0, tool: 'fail' }] };
      const durations: number[] = [];
      for (const workflow of [ok, ok, bad])
        durations.push((await execute({ bundleId, workflow })).body.durationMs);
      // An execution is answered before its end is stored and recorded; reading it waits for that.
      const history = (
        await t.api({ method: 'GET', url: `/api/mcp/bundle/${bundleId}/executions?limit=2` })
      ).json();
      expect(history.executions.map((e: { status: string }) => e.status)).toEqual(['failed', 'succeeded']);
      expect(history.executions[0].durationMs).toBe(durations[2]);
      await t.hub.recorder.flush();
      const listed = (await t.api({ method: 'GET', url: '/api/mcp/bundle/list' }))
        .json()
        .bundles.find((b: { id: string }) => b.id === bundleId);
      const sorted = [...durations].sort((a, b) => a - b);
      // percentile_cont(0.95) over 3 values: between the 2nd and 3rd, at 0.9 of the way.
      const p95 = sorted[1]! + 0.9 * (sorted[2]! - sorted[1]!);
      expect(listed.execution_count).toBe(3);
      expect(listed.performance.executions).toBe(3);
      expect(listed.performance.success_rate).toBeCloseTo(2 / 3, 5);
      expect(listed.performance.avg_duration_ms).toBeCloseTo(
        (durations[0]! + durations[1]! + durations[2]!) / 3,
        5,
      );
      expect(listed.performance.p95_duration_ms).toBeCloseTo(p95, 5);
      expect(listed.performance.last_run).not.toBeNull();
      expect(
        (await t.api({ method: 'GET', url: '/api/mcp/bundle/bundle-0-none/executions' })).statusCode,
      ).toBe(404);
      expect(
        await countRows(
          "SELECT count(*) AS n FROM mcp_events WHERE bundle_id = $1 AND event_type = 'bundle_step'",
          [bundleId],
        ),
      ).toBe(3);
      expect(
        await countRows(
          "SELECT count(*) AS n FROM mcp_bundle_executions WHERE bundle_id = $1 AND status = 'succeeded'",
          [bundleId],
        ),
      ).toBe(2);
    });
  });
});
