import { randomBytes } from 'node:crypto';
import type { Progress, Tool } from '@modelcontextprotocol/client';
import type { Config } from '../config.js';
import type { Db } from '../db/db.js';
import { HubError, notFound } from '../errors.js';
import type { HubEventBus } from '../events/hub-events.js';
import type { Logger } from '../logger.js';
import type { ServerRecord } from '../servers/payloads.js';
import type { CreateBundleInput, ExecuteBundleInput, UpdateBundleInput, Workflow } from './payloads.js';
import {
  type BundlePerformance,
  type BundleRecord,
  findBundle,
  findExecution,
  finishExecution,
  insertBundle,
  insertExecution,
  insertStepResult,
  listBundlesWithPerformance,
  listExecutions,
  type NewBundle,
  softDeleteBundle,
  updateBundle,
} from './queries.js';
import {
  type ExecutionStatus,
  type ExecutionSummary,
  planWorkflow,
  type StepState,
  type ToolCaller,
  WorkflowRun,
} from './workflow-engine.js';

/** What the bundle service needs of the registry and the pool, kept narrow for tests. */
export interface BundleDeps {
  db: Db;
  events: HubEventBus;
  log: Logger;
  servers: { record(id: number): Promise<ServerRecord | undefined> };
  pool: ToolCaller & { listTools(serverId: number, opts?: { signal?: AbortSignal }): Promise<Tool[]> };
  /** shutdownGraceMs: how long running executions may take to finish when the hub closes. */
  config: Pick<Config, 'shutdownGraceMs'>;
}

export type BundleView = ReturnType<typeof toView>;

function toView(b: BundleRecord, performance?: BundlePerformance) {
  return {
    id: b.id,
    bundleId: b.id,
    name: b.name,
    serverIds: b.serverIds,
    config: b.config,
    description: b.description,
    workflow: b.workflow,
    execution_count: b.executionCount,
    created_at: b.createdAt.toISOString(),
    updated_at: b.updatedAt.toISOString(),
    ...(performance ? { performance } : {}),
  };
}

/** The public result of an execution (also what a finished async execution reads as). */
export interface ExecutionResult {
  success: boolean;
  executionId: string;
  bundleId: string;
  status: ExecutionStatus;
  results: StepState[];
  context: Record<string, unknown>;
  durationMs: number;
  startedAt: string;
}

function toResult(executionId: string, bundleId: string, s: ExecutionSummary): ExecutionResult {
  return {
    success: s.status === 'succeeded',
    executionId,
    bundleId,
    status: s.status,
    results: s.steps,
    context: s.context,
    durationMs: s.durationMs,
    startedAt: s.startedAt,
  };
}

const randomSuffix = () => randomBytes(4).toString('hex');

/** What live views (the socket.io namespace to come, a UI) follow of executions; names defined once here. */
export const executionUpdateTypes = {
  started: 'execution-started',
  stepStarted: 'step-started',
  stepProgress: 'step-progress',
  stepFinished: 'step-finished',
  finished: 'execution-finished',
} as const;

export type ExecutionUpdate =
  | { type: 'execution-started'; executionId: string; bundleId: string; steps: StepState[] }
  | { type: 'step-started' | 'step-finished'; executionId: string; bundleId: string; step: StepState }
  | { type: 'step-progress'; executionId: string; bundleId: string; step: number; progress: Progress }
  | { type: 'execution-finished'; executionId: string; bundleId: string; result: ExecutionResult };

export type ExecutionListener = (update: ExecutionUpdate) => void;

interface LiveExecution {
  bundleId: string;
  run: WorkflowRun;
  done: Promise<ExecutionResult>;
}

/**
 * Bundles: the store (mcp_bundles), and their executions — validated and planned by the workflow engine,
 * run against the upstream pool, recorded step by step (mcp_bundle_step_results, one `bundle_step` event
 * each) and as a whole (mcp_bundle_executions, execution_count, one `bundle_execution` event, which is
 * what mcp_bundle_performance reads). Running executions live in memory; finished ones are read back
 * from the database.
 */
export class BundleService {
  readonly #d: BundleDeps;
  readonly #live = new Map<string, LiveExecution>();
  readonly #listeners = new Set<ExecutionListener>();
  #closed = false;

  constructor(deps: BundleDeps) {
    this.#d = deps;
  }

  /** Follows every execution as it runs (state changes, step results, progress); returns the unsubscribe. */
  subscribe(listener: ExecutionListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #publish(update: ExecutionUpdate): void {
    for (const listener of this.#listeners) {
      try {
        listener(update);
      } catch (err) {
        this.#d.log.warn({ err, type: update.type }, 'execution listener failed');
      }
    }
  }

  async list(): Promise<BundleView[]> {
    return (await listBundlesWithPerformance(this.#d.db)).map((r) => toView(r.bundle, r.performance));
  }

  async get(id: string): Promise<BundleView> {
    return toView(await this.#require(id));
  }

  async create(input: CreateBundleInput): Promise<BundleView> {
    await this.#checkServers(input.serverIds);
    const next: NewBundle = {
      id: `bundle-${Date.now()}-${randomSuffix()}`,
      name: input.bundleName,
      serverIds: input.serverIds,
      config: input.bundleConfig ?? {},
      description: input.description ?? '',
      workflow: input.workflow ?? null,
    };
    if (next.workflow) await this.#plan(next, next.workflow);
    return toView(await insertBundle(this.#d.db, next));
  }

  async update(id: string, patch: UpdateBundleInput): Promise<BundleView> {
    const current = await this.#require(id);
    if (patch.serverIds) await this.#checkServers(patch.serverIds);
    const next: NewBundle = {
      id,
      name: patch.bundleName ?? current.name,
      serverIds: patch.serverIds ?? current.serverIds,
      config: patch.bundleConfig ?? current.config,
      description: patch.description ?? current.description,
      workflow: patch.workflow === undefined ? current.workflow : patch.workflow,
    };
    // A stored workflow must stay valid against the bundle it belongs to, whichever of the two changed.
    if (next.workflow && (patch.workflow || patch.serverIds || patch.bundleConfig)) {
      await this.#plan(next, next.workflow);
    }
    const updated = await updateBundle(this.#d.db, next);
    if (!updated) throw notFound(`Bundle ${id}`, { bundleId: id });
    return toView(updated);
  }

  async remove(id: string): Promise<void> {
    if (!(await softDeleteBundle(this.#d.db, id))) throw notFound(`Bundle ${id}`, { bundleId: id });
  }

  /**
   * Validates and starts an execution. Nothing is written before the workflow is valid. `done` settles
   * once the execution is stored; it never rejects.
   */
  async execute(input: ExecuteBundleInput): Promise<{ executionId: string; done: Promise<ExecutionResult> }> {
    if (this.#closed) throw new HubError('SB_ERR_CLOSED', 'The bundle service');
    const bundle = await this.#require(input.bundleId);
    const workflow = input.workflow ?? bundle.workflow;
    if (!workflow) {
      throw new HubError('SB_ERR_VALIDATION', `no workflow given, and bundle ${bundle.id} stores none`, {
        bundleId: bundle.id,
      });
    }
    const plan = await this.#plan(bundle, workflow);
    const executionId = `exec-${Date.now()}-${randomSuffix()}`;
    const { db, events, log } = this.#d;
    const writes: Promise<void>[] = [];
    const run = new WorkflowRun(plan, {
      caller: this.#d.pool,
      bundleId: bundle.id,
      ...(input.context ? { context: input.context } : {}),
      ...(input.clientId ? { clientId: input.clientId } : {}),
      onStepStart: (step) =>
        this.#publish({ type: 'step-started', executionId, bundleId: bundle.id, step: { ...step } }),
      onStepProgress: (step, progress) =>
        this.#publish({ type: 'step-progress', executionId, bundleId: bundle.id, step: step.step, progress }),
      onStepEnd: (step, outcome) => {
        this.#publish({ type: 'step-finished', executionId, bundleId: bundle.id, step: { ...step } });
        writes.push(
          insertStepResult(db, executionId, step).catch((err: unknown) => {
            log.error({ err, executionId, step: step.step }, 'could not store a step result');
          }),
        );
        events.emit({
          type: 'bundle_step',
          bundleId: bundle.id,
          serverId: step.serverId,
          toolName: step.tool,
          // Skipped and cancelled-before-start steps ran nothing: no verdict on the server.
          ok:
            step.status === 'skipped' || (step.status === 'cancelled' && step.attempts === 0)
              ? null
              : step.ok,
          outcome: outcome === 'success' || outcome === 'tool_error' ? outcome : null,
          errorCode: step.error?.code.slice(0, 64) ?? null,
          durationMs: step.durationMs,
          source: 'bundle',
          clientId: input.clientId ?? null,
          data: {
            executionId,
            step: step.step,
            id: step.id,
            status: step.status,
            attempts: step.attempts,
            ...(step.error ? { error: step.error } : {}),
          },
        });
      },
    });
    await insertExecution(db, {
      id: executionId,
      bundleId: bundle.id,
      config: bundle.config,
      workflow,
      context: input.context ?? {},
      clientId: input.clientId ?? null,
      startedAt: run.startedAt,
    });
    // Before run() starts: its first steps start synchronously.
    this.#publish({
      type: 'execution-started',
      executionId,
      bundleId: bundle.id,
      steps: run.steps.map((st) => ({ ...st })),
    });
    const done = (async (): Promise<ExecutionResult> => {
      let summary: ExecutionSummary;
      try {
        summary = await run.run();
      } catch (err) {
        // Only a bug gets here; the execution is stored as failed rather than left running.
        log.error({ err, executionId }, 'bundle execution failed unexpectedly');
        run.status = 'failed';
        summary = run.summary();
      }
      await Promise.all(writes);
      try {
        await db.transaction((tx) =>
          finishExecution(tx, {
            id: executionId,
            bundleId: bundle.id,
            status: summary.status,
            context: summary.context,
            durationMs: summary.durationMs,
          }),
        );
      } catch (err) {
        log.error({ err, executionId }, 'could not store the end of a bundle execution');
      }
      events.emit({
        type: 'bundle_execution',
        bundleId: bundle.id,
        ok: summary.status === 'succeeded',
        durationMs: summary.durationMs,
        source: 'bundle',
        clientId: input.clientId ?? null,
        data: {
          executionId,
          status: summary.status,
          steps: summary.steps.length,
          succeeded: summary.steps.filter((s) => s.status === 'succeeded').length,
          failed: summary.steps.filter((s) => s.status === 'failed').length,
          skipped: summary.steps.filter((s) => s.status === 'skipped').length,
        },
      });
      this.#live.delete(executionId);
      const result = toResult(executionId, bundle.id, summary);
      this.#publish({ type: 'execution-finished', executionId, bundleId: bundle.id, result });
      return result;
    })();
    this.#live.set(executionId, { bundleId: bundle.id, run, done });
    return { executionId, done };
  }

  /** A bundle's executions, newest first (also those of a deleted bundle, by id). */
  async executions(bundleId: string, limit: number) {
    const list = await listExecutions(this.#d.db, bundleId, limit);
    if (list.length === 0) await this.#require(bundleId);
    return list;
  }

  /** The state of an execution: live while it runs, from the database once it has ended. */
  async getExecution(executionId: string): Promise<ExecutionResult> {
    const live = this.#live.get(executionId);
    if (live) return toResult(executionId, live.bundleId, live.run.summary());
    const stored = await findExecution(this.#d.db, executionId);
    if (!stored) throw notFound(`Execution ${executionId}`, { executionId });
    // Steps not stored (an execution still running in another hub process) are shown as pending.
    const steps: StepState[] = stored.workflow.steps.map(
      (s, i) =>
        stored.steps.find((r) => r.step === i) ?? {
          step: i,
          id: s.id ?? null,
          server: s.server,
          serverId: 0,
          tool: s.tool,
          status: 'pending',
          ok: false,
          attempts: 0,
          durationMs: null,
          startedAt: null,
        },
    );
    return {
      success: stored.status === 'succeeded',
      executionId,
      bundleId: stored.bundleId,
      status: stored.status,
      results: steps,
      context: stored.finalContext ?? stored.context,
      durationMs: stored.durationMs ?? Date.now() - stored.startedAt.getTime(),
      startedAt: stored.startedAt.toISOString(),
    };
  }

  /** Cancels a running execution: its steps in flight are aborted, upstream calls cancelled. */
  async cancel(executionId: string): Promise<ExecutionResult> {
    const live = this.#live.get(executionId);
    if (!live) {
      const stored = await this.getExecution(executionId);
      throw new HubError('SB_ERR_CONFLICT', `execution ${executionId} has already ended (${stored.status})`, {
        executionId,
        status: stored.status,
      });
    }
    live.run.cancel();
    return live.done;
  }

  /**
   * Takes no new executions; running ones get `graceMs` to finish (like calls in the pool), then are
   * cancelled; resolves when each is stored. Runs before the pool and the database close. Idempotent.
   */
  async close(options: { graceMs?: number } = {}): Promise<void> {
    this.#closed = true;
    const live = [...this.#live.values()];
    const all = Promise.all(live.map((l) => l.done));
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, options.graceMs ?? 0);
    });
    await Promise.race([all, grace]);
    clearTimeout(timer);
    for (const l of live) l.run.cancel('the hub is shutting down');
    await all;
  }

  async #require(id: string): Promise<BundleRecord> {
    const b = await findBundle(this.#d.db, id);
    if (!b) throw notFound(`Bundle ${id}`, { bundleId: id });
    return b;
  }

  async #checkServers(ids: readonly number[]): Promise<void> {
    const missing: number[] = [];
    for (const id of new Set(ids)) if (!(await this.#d.servers.record(id))) missing.push(id);
    if (missing.length > 0) {
      throw new HubError(
        'SB_ERR_VALIDATION',
        `serverIds: no server with id ${missing.join(', ')} (GET /api/mcp/servers lists them)`,
        { missing },
      );
    }
  }

  #plan(bundle: Pick<BundleRecord, 'serverIds' | 'config'>, workflow: Workflow) {
    return planWorkflow(workflow, bundle, async (serverId) =>
      (await this.#d.servers.record(serverId)) ? this.#d.pool.listTools(serverId) : undefined,
    );
  }
}
