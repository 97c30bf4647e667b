import type { CallToolResult, Tool } from '@modelcontextprotocol/client';
import { describe, expect, it } from 'vitest';
import type { Workflow } from '../../src/bundles/payloads.js';
import {
  findCycle,
  isTruthy,
  planWorkflow,
  resultValue,
  type ToolCaller,
  WorkflowRun,
} from '../../src/bundles/workflow-engine.js';
import { HubError } from '../../src/errors.js';

const tool = (name: string, required: string[] = [], properties: string[] = required): Tool => ({
  name,
  inputSchema: { type: 'object', properties: Object.fromEntries(properties.map((p) => [p, {}])), required },
});

const tools: Record<number, Tool[]> = {
  10: [tool('make'), tool('take', ['image'], ['image', 'quality']), tool('ctx', [], ['context'])],
  20: [tool('other')],
};
const lookup = async (id: number) => tools[id];

/** A caller that answers from a script and logs the order of starts and ends. */
function fakeCaller(
  answer: (name: string, args: Record<string, unknown>, signal?: AbortSignal) => Promise<CallToolResult>,
) {
  const log: string[] = [];
  const caller: ToolCaller = {
    async callTool(_serverId, name, args, opts) {
      log.push(`start ${name}:${JSON.stringify(args)}`);
      const started = performance.now();
      try {
        const result = await answer(name, args, opts.signal);
        return {
          result,
          outcome: result.isError ? 'tool_error' : 'success',
          ok: !result.isError,
          durationMs: performance.now() - started,
          resultJson: JSON.stringify(result),
        };
      } finally {
        log.push(`end ${name}`);
      }
    },
  };
  return { caller, log };
}

const structured = (value: Record<string, unknown>): CallToolResult => ({
  content: [{ type: 'text', text: JSON.stringify(value) }],
  structuredContent: value,
});
const wait = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(new HubError('SB_ERR_CANCELLED', 'aborted'));
    });
  });

const bundle = (config: Record<string, boolean> = {}) => ({ serverIds: [10, 20], config });

describe('planWorkflow', () => {
  it('resolves explicit, reference and implicit dependencies', async () => {
    const wf: Workflow = {
      steps: [
        { server: 0, tool: 'make', id: 'm' },
        { server: 1, tool: 'other', args: { v: '{{steps.m.result.x}}' } },
        { server: 0, tool: 'take', args: {} },
        { server: 1, tool: 'other', dependsOn: ['m', 1] },
      ],
    };
    const plan = await planWorkflow(wf, bundle({ auto_chain: true, parallel: true }), lookup);
    expect(plan.steps.map((s) => s.deps)).toEqual([[], [0], [1], [0, 1]]);
    expect(plan.steps[2]).toMatchObject({ chainFrom: 1, missingRequired: ['image'] });
  });

  it('without auto_chain, braces are plain text and nothing chains', async () => {
    const wf: Workflow = {
      steps: [
        { server: 0, tool: 'make' },
        { server: 0, tool: 'take', args: { image: '{{prev.result}}' } },
      ],
    };
    const plan = await planWorkflow(wf, bundle(), lookup);
    expect(plan.steps[1]!.deps).toEqual([]);
    expect(plan.steps[1]!.args).toEqual({ kind: 'literal', value: { image: '{{prev.result}}' } });
  });

  it('finds cycles', () => {
    expect(findCycle([{ deps: [] }, { deps: [2] }, { deps: [1] }])).toEqual([1, 2, 1]);
    expect(findCycle([{ deps: [] }, { deps: [0] }, { deps: [0, 1] }])).toBeUndefined();
  });

  it('names a server that no longer exists', async () => {
    const err = await planWorkflow(
      { steps: [{ server: 0, tool: 'make' }] },
      { serverIds: [99], config: {} },
      lookup,
    ).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'SB_ERR_VALIDATION', details: { step: 0, serverId: 99 } });
  });
});

describe('WorkflowRun', () => {
  it('chains a missing required argument by name and passes the context to tools that take one', async () => {
    const { caller, log } = fakeCaller(async (name, args) =>
      name === 'make' ? structured({ image: 'IMG', context: { made: true } }) : structured({ got: args }),
    );
    const plan = await planWorkflow(
      {
        steps: [
          { server: 0, tool: 'make' },
          { server: 0, tool: 'take', args: { quality: 5 } },
          { server: 0, tool: 'ctx', dependsOn: [1] },
        ],
      },
      bundle({ auto_chain: true, share_context: true }),
      lookup,
    );
    const summary = await new WorkflowRun(plan, { caller, bundleId: 'b', context: { start: 1 } }).run();
    expect(summary.status).toBe('succeeded');
    expect(log).toEqual([
      'start make:{}',
      'end make',
      'start take:{"quality":5,"image":"IMG"}',
      'end take',
      'start ctx:{"context":{"start":1,"made":true}}',
      'end ctx',
    ]);
    expect(summary.context).toEqual({ start: 1, made: true });
  });

  it('in order, one step at a time; as a DAG, independent steps overlap', async () => {
    const wf: Workflow = {
      steps: [
        { server: 0, tool: 'make' },
        { server: 1, tool: 'other' },
        { server: 0, tool: 'make', dependsOn: [1] },
      ],
    };
    for (const parallel of [false, true]) {
      const { caller, log } = fakeCaller(async () => {
        await wait(20);
        return structured({});
      });
      const plan = await planWorkflow(wf, bundle({ parallel }), lookup);
      await new WorkflowRun(plan, { caller, bundleId: 'b' }).run();
      expect(log.map((l) => l.split(':')[0])).toEqual(
        parallel
          ? ['start make', 'start other', 'end make', 'end other', 'start make', 'end make']
          : ['start make', 'end make', 'start other', 'end other', 'start make', 'end make'],
      );
    }
  });

  it('skips the dependants of a failed step (transitively) and runs the rest; retries count', async () => {
    let calls = 0;
    const { caller } = fakeCaller(async (name) => {
      calls++;
      return name === 'make' ? { content: [{ type: 'text', text: 'boom' }], isError: true } : structured({});
    });
    const plan = await planWorkflow(
      {
        steps: [
          { server: 0, tool: 'make', retry: 1 },
          { server: 1, tool: 'other', dependsOn: [0] },
          { server: 1, tool: 'other', dependsOn: [1] },
          { server: 1, tool: 'other' },
        ],
      },
      bundle({ parallel: true }),
      lookup,
    );
    const s = await new WorkflowRun(plan, { caller, bundleId: 'b' }).run();
    expect(s.steps.map((x) => x.status)).toEqual(['failed', 'skipped', 'skipped', 'succeeded']);
    expect(s.steps[0]).toMatchObject({ attempts: 2, error: { code: 'SB_ERR_TOOL_ERROR', message: 'boom' } });
    expect(s.steps[2]!.error?.message).toContain('step 1 (other) was skipped');
    expect(calls).toBe(3);
  });

  it('a timeout aborts the attempt; cancel aborts everything in flight', async () => {
    const signals: AbortSignal[] = [];
    const { caller } = fakeCaller(async (_name, _args, signal) => {
      if (signal) signals.push(signal);
      await wait(5_000, signal);
      return structured({});
    });
    const timed = await planWorkflow(
      { steps: [{ server: 0, tool: 'make', timeout_ms: 30 }] },
      bundle(),
      lookup,
    );
    const t = await new WorkflowRun(timed, { caller, bundleId: 'b' }).run();
    expect(t.steps[0]!.error).toMatchObject({ code: 'SB_ERR_UPSTREAM_TIMEOUT' });
    expect(signals[0]!.aborted).toBe(true);

    const plan = await planWorkflow(
      {
        steps: [
          { server: 0, tool: 'make' },
          { server: 1, tool: 'other' },
          { server: 0, tool: 'make', dependsOn: [0] },
        ],
      },
      bundle({ parallel: true }),
      lookup,
    );
    const run = new WorkflowRun(plan, { caller, bundleId: 'b' });
    const done = run.run();
    await wait(20);
    run.cancel();
    const s = await done;
    expect(s.status).toBe('cancelled');
    expect(s.steps.map((x) => x.status)).toEqual(['cancelled', 'cancelled', 'cancelled']);
    expect(s.steps[2]!.attempts).toBe(0);
  });

  it('`if`: a false condition skips the step and its dependants without failing; a missing path fails', async () => {
    const { caller, log } = fakeCaller(async (name) =>
      name === 'make' ? structured({ flag: false, n: 2 }) : structured({}),
    );
    const steps: Workflow['steps'] = [
      { server: 0, tool: 'make' },
      { server: 1, tool: 'other', if: '{{steps.0.result.flag}}' },
      { server: 1, tool: 'other', dependsOn: [1] },
      { server: 1, tool: 'other', if: '{{steps.0.result.n}}' },
      { server: 1, tool: 'other', if: false },
    ];
    const plan = await planWorkflow({ steps }, bundle({ parallel: true }), lookup);
    expect(plan.steps[1]!.deps).toEqual([0]);
    const s = await new WorkflowRun(plan, { caller, bundleId: 'b' }).run();
    expect(s.steps.map((x) => x.status)).toEqual(['succeeded', 'skipped', 'skipped', 'succeeded', 'skipped']);
    expect(s.status).toBe('succeeded');
    expect(s.steps[1]!.error).toMatchObject({ code: 'SB_ERR_STEP_SKIPPED', details: { condition: false } });
    expect(s.steps[2]!.error).toMatchObject({ code: 'SB_ERR_STEP_SKIPPED', details: { condition: false } });
    expect(log.filter((l) => l.startsWith('start'))).toHaveLength(2);

    const missing = await planWorkflow(
      { steps: [steps[0]!, { server: 1, tool: 'other', if: '{{prev.result.nope}}' }] },
      bundle(),
      lookup,
    );
    const m = await new WorkflowRun(missing, { caller, bundleId: 'b' }).run();
    expect(m.status).toBe('failed');
    expect(m.steps[1]!.error).toMatchObject({ code: 'SB_ERR_STEP_INPUT' });
    expect(m.steps[1]!.error?.message).toContain('"nope"');
  });

  it.each([
    [true, true],
    ['yes', true],
    [1, true],
    [{}, true],
    [[], true],
    [false, false],
    [null, false],
    [0, false],
    ['', false],
    ['false', false],
    ['0', false],
  ])('isTruthy(%j) is %s', (value, expected) => {
    expect(isTruthy(value)).toBe(expected);
  });

  it('reads a result from structuredContent, else JSON text, else the text', () => {
    expect(resultValue(structured({ a: 1 }))).toEqual({ a: 1 });
    expect(resultValue({ content: [{ type: 'text', text: '{"b":2}' }] })).toEqual({ b: 2 });
    expect(resultValue({ content: [{ type: 'text', text: 'hello' }] })).toBe('hello');
    expect(resultValue({ content: [{ type: 'image', data: 'AA', mimeType: 'image/png' }] })).toBeNull();
  });
});
