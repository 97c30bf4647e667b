import type { CallToolResult, Progress, Tool } from '@modelcontextprotocol/client';
import { HubError, isHubError } from '../errors.js';
import type { CallOptions, ToolCallResult } from '../mcp/upstream-pool.js';
import type { BundleConfig, Workflow } from './payloads.js';
import {
  compileTemplate,
  getPath,
  type Reference,
  renderTemplate,
  type Template,
  TemplateSyntaxError,
  TemplateValueError,
  templateReferences,
} from './templating.js';

/**
 * The workflow engine, in three stages: plan (validate a workflow against the bundle and the tools of its
 * servers, resolve every dependency; nothing runs), then run (a scheduler over the plan that calls tools
 * through a narrow interface). The same scheduler runs both modes: `parallel: false` launches one step at
 * a time in index order (every dependency is then an earlier step), `parallel: true` launches every step
 * whose dependencies have succeeded. A step whose dependency failed is skipped with the reason; steps that
 * do not depend on it go on.
 */

/** What the engine needs of the upstream pool. */
export interface ToolCaller {
  callTool(
    serverId: number,
    name: string,
    args: Record<string, unknown>,
    opts: CallOptions,
  ): Promise<ToolCallResult>;
}

export interface PlannedStep {
  index: number;
  id: string | undefined;
  /** Index into the bundle's serverIds. */
  server: number;
  serverId: number;
  tool: string;
  args: Template;
  /** `if`: the step runs only when this renders to a truthy value. */
  condition: Template | undefined;
  /** Steps that must succeed first (indices, ascending). */
  deps: number[];
  /** Implicit chaining: required arguments the step lacks, filled by name from this step's result. */
  chainFrom: number | undefined;
  missingRequired: string[];
  /** The tool declares a `context` argument the step does not set: it gets the shared context. */
  takesContext: boolean;
  retry: number;
  timeoutMs: number | undefined;
}

export interface Plan {
  steps: PlannedStep[];
  parallel: boolean;
  autoChain: boolean;
  shareContext: boolean;
}

export interface BundleShape {
  serverIds: readonly number[];
  config: BundleConfig;
}

/** The tools of a server; undefined when the server no longer exists. */
export type ToolLookup = (serverId: number) => Promise<Tool[] | undefined>;

function invalid(index: number, tool: string | undefined, reason: string, extra: object = {}): HubError {
  const label = tool === undefined ? `step ${index}` : `step ${index} (${tool})`;
  return new HubError('SB_ERR_VALIDATION', `workflow ${label}: ${reason}`, { step: index, reason, ...extra });
}

function requiredArgs(tool: Tool): string[] {
  const required = (tool.inputSchema as { required?: unknown }).required;
  return Array.isArray(required) ? required.filter((r): r is string => typeof r === 'string') : [];
}

function declaresArg(tool: Tool, name: string): boolean {
  const props = (tool.inputSchema as { properties?: unknown }).properties;
  return props !== null && typeof props === 'object' && Object.hasOwn(props, name);
}

/** Validates a workflow and resolves its dependencies; throws SB_ERR_VALIDATION naming the step. */
export async function planWorkflow(
  workflow: Workflow,
  bundle: BundleShape,
  lookup: ToolLookup,
): Promise<Plan> {
  const autoChain = bundle.config.auto_chain === true;
  const parallel = bundle.config.parallel === true;
  const shareContext = bundle.config.share_context === true;
  const steps = workflow.steps;

  const ids = new Map<string, number>();
  steps.forEach((s, i) => {
    if (s.id === undefined) return;
    if (ids.has(s.id)) throw invalid(i, s.tool, `id "${s.id}" is already used by step ${ids.get(s.id)}`);
    ids.set(s.id, i);
  });
  const resolveRef = (i: number, tool: string, ref: number | string, what: string): number => {
    const target = typeof ref === 'number' ? ref : ids.get(ref);
    if (target === undefined || target >= steps.length) {
      throw invalid(i, tool, `${what} names step ${JSON.stringify(ref)}, which does not exist`);
    }
    if (target === i) throw invalid(i, tool, `${what} names the step itself`);
    return target;
  };

  // Servers and tools: every distinct server once (a bundle of [3,3,3] lists tools once), all looked up at
  // once rather than one after the other, since each may be a round trip (the registry, tools/list).
  const toolsByServer = new Map<number, Promise<Tool[] | undefined>>();
  for (const s of steps) {
    const serverId = bundle.serverIds[s.server];
    if (serverId === undefined || toolsByServer.has(serverId)) continue;
    const loading = lookup(serverId);
    // Its failure is reported by the first step that needs it; one an earlier step's error cut short is moot.
    loading.catch(() => {});
    toolsByServer.set(serverId, loading);
  }
  const planned: PlannedStep[] = [];
  for (const [i, s] of steps.entries()) {
    if (s.server >= bundle.serverIds.length) {
      throw invalid(
        i,
        s.tool,
        `server index ${s.server} is out of range: the bundle has ${bundle.serverIds.length} server(s) (indices 0-${bundle.serverIds.length - 1})`,
      );
    }
    const serverId = bundle.serverIds[s.server]!;
    let tools: Tool[] | undefined;
    try {
      tools = await toolsByServer.get(serverId)!;
    } catch (err) {
      // The server is there but cannot list its tools (disabled, unreachable): same code, the step named.
      if (!isHubError(err)) throw err;
      if (err.code === 'SB_ERR_SERVER_DISABLED') {
        throw invalid(i, s.tool, `server ${serverId} (index ${s.server}) is disabled`, { serverId });
      }
      throw new HubError(
        err.code,
        `workflow step ${i} (${s.tool}), server ${serverId}`,
        { step: i, serverId, cause: err.toJSON() },
        { cause: err },
      );
    }
    if (!tools)
      throw invalid(i, s.tool, `server ${serverId} (index ${s.server}) no longer exists`, { serverId });
    const tool = tools.find((t) => t.name === s.tool);
    if (!tool) {
      throw invalid(i, s.tool, `server ${serverId} (index ${s.server}) has no tool "${s.tool}"`, {
        serverId,
        available: tools.map((t) => t.name),
      });
    }

    const deps = new Set<number>();
    for (const d of s.dependsOn ?? []) {
      const target = resolveRef(i, s.tool, d, 'dependsOn');
      // In order, a step cannot wait for one that runs after it.
      if (!parallel && target > i) {
        throw invalid(i, s.tool, `dependsOn names step ${target}, a later step (the bundle runs in order)`);
      }
      deps.add(target);
    }

    const compile = (value: unknown, what: string): Template => {
      let compiled: Template;
      try {
        compiled = compileTemplate(value);
      } catch (err) {
        if (err instanceof TemplateSyntaxError) throw invalid(i, s.tool, `${what}: ${err.message}`);
        throw err;
      }
      for (const ref of templateReferences(compiled)) {
        if (ref.kind === 'context') continue;
        let target: number;
        if (ref.kind === 'prev') {
          if (i === 0) throw invalid(i, s.tool, `${ref.raw}: the first step has no previous step`);
          target = i - 1;
        } else {
          target = resolveRef(i, s.tool, ref.step, ref.raw);
          if (target > i) throw invalid(i, s.tool, `${ref.raw} refers to step ${target}, a later step`);
        }
        deps.add(target);
      }
      return compiled;
    };
    // A condition is about results, so its references work with or without auto_chain.
    const condition = s.if === undefined ? undefined : compile(s.if, 'if');
    const template: Template = autoChain
      ? compile(s.args ?? {}, 'args')
      : { kind: 'literal', value: s.args ?? {} };

    let chainFrom: number | undefined;
    let missingRequired: string[] = [];
    if (autoChain) {
      const given = new Set(Object.keys(s.args ?? {}));
      missingRequired = requiredArgs(tool).filter((r) => !given.has(r));
      if (missingRequired.length > 0 && deps.size === 0) {
        if (i === 0) {
          throw invalid(
            i,
            s.tool,
            `required argument(s) ${missingRequired.join(', ')} missing, and the first step has no previous step to take them from`,
            { missing: missingRequired },
          );
        }
        chainFrom = i - 1;
        deps.add(chainFrom);
      } else if (deps.size > 0) {
        // A step with dependencies says where its inputs come from: only implicit chaining fills arguments.
        missingRequired = [];
      }
    }

    planned.push({
      index: i,
      id: s.id,
      server: s.server,
      serverId,
      tool: s.tool,
      args: template,
      condition,
      deps: [...deps].sort((a, b) => a - b),
      chainFrom,
      missingRequired,
      takesContext: shareContext && declaresArg(tool, 'context') && !Object.hasOwn(s.args ?? {}, 'context'),
      retry: s.retry ?? 0,
      timeoutMs: s.timeout_ms,
    });
  }

  if (parallel) {
    const cycle = findCycle(planned);
    if (cycle) {
      throw invalid(cycle[0]!, steps[cycle[0]!]!.tool, `dependency cycle: steps ${cycle.join(' → ')}`, {
        cycle,
      });
    }
  }
  return { steps: planned, parallel, autoChain, shareContext };
}

/** The first cycle found (as step indices, first repeated at the end), or undefined. */
export function findCycle(steps: readonly { deps: readonly number[] }[]): number[] | undefined {
  const state = new Array<0 | 1 | 2>(steps.length).fill(0);
  const stack: number[] = [];
  const visit = (i: number): number[] | undefined => {
    state[i] = 1;
    stack.push(i);
    for (const d of steps[i]!.deps) {
      if (state[d] === 1) return [...stack.slice(stack.indexOf(d)), d];
      if (state[d] === 0) {
        const found = visit(d);
        if (found) return found;
      }
    }
    stack.pop();
    state[i] = 2;
    return undefined;
  };
  for (let i = 0; i < steps.length; i++) {
    if (state[i] === 0) {
      const found = visit(i);
      if (found) return found;
    }
  }
  return undefined;
}

// --- running ------------------------------------------------------------------------------------

export type StepStatus = 'pending' | 'running' | 'succeeded' | 'failed' | 'skipped' | 'cancelled';
export type ExecutionStatus = 'running' | 'succeeded' | 'failed' | 'cancelled';

export interface StepError {
  code: string;
  message: string;
  details?: unknown;
}

/** One step as the API shows it. */
export interface StepState {
  step: number;
  id: string | null;
  server: number;
  serverId: number;
  tool: string;
  status: StepStatus;
  ok: boolean;
  /** The step's result as references see it: structuredContent, else the parsed JSON (or text) content. */
  result?: unknown;
  /** The MCP content blocks, when the result had no structuredContent (images, plain text). */
  content?: CallToolResult['content'];
  error?: StepError;
  /** The arguments sent (after references and chaining). */
  args?: Record<string, unknown>;
  attempts: number;
  durationMs: number | null;
  startedAt: string | null;
}

export interface ExecutionSummary {
  status: ExecutionStatus;
  steps: StepState[];
  context: Record<string, unknown>;
  durationMs: number;
  startedAt: string;
}

export interface RunOptions {
  caller: ToolCaller;
  context?: Record<string, unknown>;
  bundleId: string;
  clientId?: string;
  /** Called when a step starts and when it reaches a final status (including skipped and cancelled). */
  onStepStart?: (step: StepState) => void;
  onStepEnd?: (step: StepState, outcome: ToolCallResult['outcome'] | 'error' | null) => void;
  /** Progress notifications of a step's upstream call. */
  onStepProgress?: (step: StepState, progress: Progress) => void;
}

/** The value references see for a tool result. */
export function resultValue(result: CallToolResult): unknown {
  if (result.structuredContent !== undefined) return result.structuredContent;
  const texts = (result.content ?? []).flatMap((c) => (c.type === 'text' ? [c.text] : []));
  if (texts.length === 0) return null;
  const text = texts.join('\n');
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

function errorOf(err: unknown): StepError {
  if (isHubError(err)) {
    return err.details === undefined
      ? { code: err.code, message: err.message }
      : { code: err.code, message: err.message, details: err.details };
  }
  return { code: 'SB_ERR_INTERNAL', message: err instanceof Error ? err.message : String(err) };
}

function toolErrorText(result: CallToolResult): string {
  const text = (result.content ?? [])
    .flatMap((c) => (c.type === 'text' ? [c.text] : []))
    .join('\n')
    .trim();
  return text || 'the tool reported an error';
}

/** An `if` runs its step unless it is false, null, 0, "", "false" or "0". */
export function isTruthy(value: unknown): boolean {
  if (value === undefined || value === null || value === false || value === 0 || value === '') return false;
  return !(typeof value === 'string' && (value.trim() === 'false' || value.trim() === '0'));
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v);

/** One execution of a plan; cancel() aborts the steps in flight (and so their upstream calls). */
export class WorkflowRun {
  readonly steps: StepState[];
  readonly context: Record<string, unknown>;
  status: ExecutionStatus = 'running';
  readonly startedAt = new Date();
  readonly #plan: Plan;
  readonly #o: RunOptions;
  readonly #abort = new AbortController();
  readonly #values = new Map<number, unknown>();
  /** Steps skipped because their `if` was false (or they depend on such a step only). */
  readonly #notTaken = new Set<number>();
  #started = performance.now();
  #durationMs: number | undefined;

  constructor(plan: Plan, options: RunOptions) {
    this.#plan = plan;
    this.#o = options;
    this.context = structuredClone(options.context ?? {});
    this.steps = plan.steps.map((s) => ({
      step: s.index,
      id: s.id ?? null,
      server: s.server,
      serverId: s.serverId,
      tool: s.tool,
      status: 'pending',
      ok: false,
      attempts: 0,
      durationMs: null,
      startedAt: null,
    }));
  }

  get cancelled(): boolean {
    return this.#abort.signal.aborted;
  }

  cancel(reason = 'the execution was cancelled'): void {
    if (!this.#abort.signal.aborted) this.#abort.abort(new HubError('SB_ERR_CANCELLED', reason));
  }

  summary(): ExecutionSummary {
    return {
      status: this.status,
      steps: this.steps,
      context: this.context,
      durationMs: Math.round(this.#durationMs ?? performance.now() - this.#started),
      startedAt: this.startedAt.toISOString(),
    };
  }

  async run(): Promise<ExecutionSummary> {
    this.#started = performance.now();
    const plan = this.#plan.steps;
    const limit = this.#plan.parallel ? Number.POSITIVE_INFINITY : 1;
    const pending = new Set(plan.map((s) => s.index));
    const running = new Map<number, Promise<void>>();
    const done = (i: number) => {
      const st = this.steps[i]!.status;
      return st !== 'pending' && st !== 'running';
    };

    while (pending.size > 0 || running.size > 0) {
      // Settle what can no longer run, until nothing changes (a skip can skip the steps after it).
      for (let changed = true; changed; ) {
        changed = false;
        for (const i of pending) {
          if (this.cancelled) {
            this.#finish(i, 'cancelled', { error: errorOf(this.#abort.signal.reason) });
            pending.delete(i);
            changed = true;
            continue;
          }
          const blocked = plan[i]!.deps.filter((d) => done(d) && this.steps[d]!.status !== 'succeeded');
          if (blocked.length > 0) {
            // Skipped by conditions only: a branch not taken, not a failure.
            const byCondition = blocked.every((d) => this.#notTaken.has(d));
            const dep = blocked.find((d) => !this.#notTaken.has(d)) ?? blocked[0]!;
            const st = this.steps[dep]!;
            if (byCondition) this.#notTaken.add(i);
            this.#finish(i, 'skipped', {
              error: {
                code: 'SB_ERR_STEP_SKIPPED',
                message: `skipped: step ${dep} (${st.tool}) ${st.status === 'skipped' ? 'was skipped' : st.status}`,
                details: {
                  dependsOn: dep,
                  dependencyStatus: st.status,
                  condition: byCondition ? false : undefined,
                },
              },
            });
            pending.delete(i);
            changed = true;
          }
        }
      }
      for (const i of [...pending].sort((a, b) => a - b)) {
        if (running.size >= limit) break;
        if (!plan[i]!.deps.every((d) => this.steps[d]!.status === 'succeeded')) {
          if (this.#plan.parallel) continue;
          break;
        }
        pending.delete(i);
        const p = this.#runStep(plan[i]!).finally(() => running.delete(i));
        running.set(i, p);
      }
      if (running.size === 0) {
        // Unreachable for a validated plan (no cycles); kept so that a bug cannot spin forever.
        for (const i of pending) {
          this.#finish(i, 'skipped', {
            error: { code: 'SB_ERR_STEP_SKIPPED', message: 'skipped: its dependencies can never be met' },
          });
        }
        pending.clear();
        break;
      }
      await Promise.race(running.values());
    }

    this.#durationMs = performance.now() - this.#started;
    this.status = this.cancelled
      ? 'cancelled'
      : this.steps.every((s) => s.status === 'succeeded' || this.#notTaken.has(s.step))
        ? 'succeeded'
        : 'failed';
    return this.summary();
  }

  #finish(
    i: number,
    status: 'succeeded' | 'failed' | 'skipped' | 'cancelled',
    fields: Partial<StepState>,
    outcome: ToolCallResult['outcome'] | 'error' | null = null,
  ): void {
    const st = this.steps[i]!;
    Object.assign(st, fields);
    st.status = status;
    st.ok = status === 'succeeded';
    this.#o.onStepEnd?.(st, outcome);
  }

  #resolver(step: PlannedStep): (ref: Reference) => unknown {
    return (ref: Reference): unknown => {
      if (ref.kind === 'context') return getPath(this.context, ref.path, 'the context', ref.raw);
      const target = ref.kind === 'prev' ? step.index - 1 : this.#stepIndex(ref.step);
      return getPath(
        this.#values.get(target),
        ref.path,
        `the result of step ${target} (${this.steps[target]!.tool})`,
        ref.raw,
      );
    };
  }

  /** The arguments of a step: references rendered, missing required ones taken from the step before. */
  #buildArgs(step: PlannedStep): Record<string, unknown> {
    const rendered = renderTemplate(step.args, this.#resolver(step));
    const args: Record<string, unknown> = isPlainObject(rendered) ? { ...rendered } : {};
    if (step.chainFrom !== undefined) {
      const source = this.#values.get(step.chainFrom);
      const from = `step ${step.chainFrom} (${this.steps[step.chainFrom]!.tool})`;
      for (const name of step.missingRequired) {
        if (isPlainObject(source) && source[name] !== undefined) args[name] = source[name];
        else {
          throw new TemplateValueError(
            `required argument "${name}" of ${step.tool} is not given, and the result of ${from} has no "${name}" to fill it`,
          );
        }
      }
    }
    if (step.takesContext) args.context = structuredClone(this.context);
    return args;
  }

  #stepIndex(ref: number | string): number {
    return typeof ref === 'number' ? ref : this.#plan.steps.findIndex((s) => s.id === ref);
  }

  async #runStep(step: PlannedStep): Promise<void> {
    const st = this.steps[step.index]!;
    st.status = 'running';
    st.startedAt = new Date().toISOString();
    const started = performance.now();
    this.#o.onStepStart?.(st);
    const elapsed = () => Math.round(performance.now() - started);

    let args: Record<string, unknown>;
    try {
      if (step.condition) {
        const value = renderTemplate(step.condition, this.#resolver(step));
        if (!isTruthy(value)) {
          this.#notTaken.add(step.index);
          this.#finish(step.index, 'skipped', {
            durationMs: elapsed(),
            error: {
              code: 'SB_ERR_STEP_SKIPPED',
              message: `skipped: its condition is false (${JSON.stringify(value ?? null)})`,
              details: { condition: false, value: value ?? null },
            },
          });
          return;
        }
      }
      args = this.#buildArgs(step);
    } catch (err) {
      if (!(err instanceof TemplateValueError)) throw err;
      this.#finish(
        step.index,
        'failed',
        {
          durationMs: elapsed(),
          error: { code: 'SB_ERR_STEP_INPUT', message: `step ${step.index} (${step.tool}): ${err.message}` },
        },
        'error',
      );
      return;
    }
    st.args = args;

    let lastError: StepError = { code: 'SB_ERR_INTERNAL', message: 'no attempt was made' };
    let lastOutcome: ToolCallResult['outcome'] | 'error' = 'error';
    for (let attempt = 0; attempt <= step.retry; attempt++) {
      if (this.cancelled) break;
      st.attempts = attempt + 1;
      const timeout = step.timeoutMs === undefined ? undefined : new AbortController();
      const timer =
        timeout && setTimeout(() => timeout.abort(new Error('step timeout')), step.timeoutMs).unref();
      const signal = timeout ? AbortSignal.any([this.#abort.signal, timeout.signal]) : this.#abort.signal;
      try {
        const call = await this.#o.caller.callTool(step.serverId, step.tool, args, {
          signal,
          source: 'bundle',
          bundleId: this.#o.bundleId,
          ...(this.#o.onStepProgress ? { onProgress: (p: Progress) => this.#o.onStepProgress?.(st, p) } : {}),
          ...(this.#o.clientId ? { clientId: this.#o.clientId } : {}),
        });
        if (call.ok) {
          const value = resultValue(call.result);
          this.#values.set(step.index, value);
          if (this.#plan.shareContext && isPlainObject(value) && isPlainObject(value.context)) {
            Object.assign(this.context, value.context);
          }
          this.#finish(
            step.index,
            'succeeded',
            {
              durationMs: elapsed(),
              result: value,
              ...(call.result.structuredContent === undefined ? { content: call.result.content } : {}),
            },
            call.outcome,
          );
          return;
        }
        lastOutcome = call.outcome;
        lastError = { code: 'SB_ERR_TOOL_ERROR', message: toolErrorText(call.result) };
      } catch (err) {
        if (this.cancelled) break;
        lastOutcome = 'error';
        lastError =
          timeout?.signal.aborted === true
            ? {
                code: 'SB_ERR_UPSTREAM_TIMEOUT',
                message: `step ${step.index} (${step.tool}) exceeded its timeout_ms (${step.timeoutMs} ms)`,
              }
            : errorOf(err);
      } finally {
        if (timer) clearTimeout(timer);
      }
    }
    if (this.cancelled) {
      this.#finish(
        step.index,
        'cancelled',
        { durationMs: elapsed(), error: errorOf(this.#abort.signal.reason) },
        'error',
      );
      return;
    }
    this.#finish(step.index, 'failed', { durationMs: elapsed(), error: lastError }, lastOutcome);
  }
}
