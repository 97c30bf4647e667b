import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Progress, Tool } from '@modelcontextprotocol/client';
import type { Config } from '../config.js';
import { type Db, isUniqueViolation } from '../db/db.js';
import { HubError, isHubError, notFound } from '../errors.js';
import type { HubEventBus } from '../events/hub-events.js';
import type { Logger } from '../logger.js';
import type { ServerRecord } from '../servers/payloads.js';
import { BundleCache } from './bundle-cache.js';
import type { CreateBundleInput, ExecuteBundleInput, UpdateBundleInput, Workflow } from './payloads.js';
import {
  type BundlePerformance,
  type BundleRecord,
  closeStaleExecution,
  findBundle,
  findBundleOfSuggestion,
  findExecution,
  finishExecution,
  heartbeatExecutions,
  insertBundle,
  insertExecution,
  listBundlesWithPerformance,
  listExecutions,
  lockStaleExecutions,
  type NewBundle,
  type StaleExecution,
  softDeleteBundle,
  updateBundle,
} from './queries.js';
import { StepResultWriter } from './step-results.js';
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
  /** This hub process among those sharing the database; a fresh id by default. */
  instanceId?: string;
  /** Tests only: every hub sharing a database must use the same values (see EXECUTION_HEARTBEAT_MS). */
  liveness?: { heartbeatMs: number; staleAfterMs: number };
}

/**
 * A hub refreshes the heartbeat of its running executions this often. A running execution whose heartbeat
 * is older than EXECUTION_STALE_AFTER_MS (by the database's clock) belongs to a hub that stopped (crash,
 * kill, lost host): every hub looks for such executions at start and at each heartbeat, and closes them as
 * failed (SB_ERR_INTERRUPTED). Three missed heartbeats, so that a busy hub or a slow query is not taken for
 * a dead one.
 */
export const EXECUTION_HEARTBEAT_MS = 10_000;
export const EXECUTION_STALE_AFTER_MS = 3 * EXECUTION_HEARTBEAT_MS;

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
    suggestionId: b.suggestionId,
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
  /** Why the execution failed when no step says it (the hub running it stopped). */
  error?: { code: string; message: string; details?: unknown };
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

/**
 * An execution stays running until its end is stored (and published): a reader that sees it ended finds
 * every step result in the database, and execution-finished is the only way a follower learns the end.
 */
function liveResult(executionId: string, live: LiveExecution): ExecutionResult {
  return { ...toResult(executionId, live.bundleId, live.run.summary()), success: false, status: 'running' };
}

const randomSuffix = () => randomBytes(4).toString('hex');

/** What live views (the /mcp-bundles namespace, a UI) follow of executions; names defined once here. */
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
  /** Settles once the execution is stored. */
  done: Promise<ExecutionResult>;
  /** The run has ended and its waiting caller has the result; its end is being stored. */
  ended: boolean;
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
  readonly #liveness: { heartbeatMs: number; staleAfterMs: number };
  /**
   * The bundles executions start from, on the embedded database only: it is opened by this process alone, so
   * every edit goes through this service. Hubs sharing a PostgreSQL server cannot know of each other's edits
   * in time (a message between hubs may arrive after the client's next request), so there each execution
   * reads its bundle: one round trip that does not hold the hub's thread.
   */
  readonly #bundles: BundleCache<BundleRecord> | undefined;
  /** Names this process in mcp_bundle_executions.owner_instance. */
  readonly instanceId: string;
  #timer: NodeJS.Timeout | undefined;
  #tick: Promise<void> | undefined;
  #closed = false;

  constructor(deps: BundleDeps) {
    this.#d = deps;
    this.#bundles = deps.db.driver === 'pglite' ? new BundleCache() : undefined;
    this.instanceId = deps.instanceId ?? `${hostname()}:${process.pid}:${randomBytes(6).toString('hex')}`;
    this.#liveness = deps.liveness ?? {
      heartbeatMs: EXECUTION_HEARTBEAT_MS,
      staleAfterMs: EXECUTION_STALE_AFTER_MS,
    };
  }

  /**
   * Closes the executions orphaned by stopped hubs, then keeps this hub's running executions alive and
   * keeps looking for orphans, every heartbeat. A failing pass is logged and tried again at the next one.
   */
  async start(): Promise<void> {
    if (this.#closed) throw new HubError('SB_ERR_CLOSED', 'The bundle service');
    if (this.#timer) return;
    await this.#closeOrphans();
    this.#timer = setInterval(() => {
      // A pass slower than the interval is not stacked on.
      this.#tick ??= this.#beat().finally(() => {
        this.#tick = undefined;
      });
    }, this.#liveness.heartbeatMs);
    this.#timer.unref();
  }

  async #beat(): Promise<void> {
    try {
      if (this.#live.size > 0) await heartbeatExecutions(this.#d.db, this.instanceId);
      await this.#closeOrphans();
    } catch (err) {
      this.#d.log.warn({ err }, 'bundle execution heartbeat failed');
    }
  }

  /** Closes stale running executions as failed (counted, recorded and published like any ended one). */
  async #closeOrphans(): Promise<void> {
    const closed = await this.#d.db.transaction(async (tx) => {
      const done: (StaleExecution & { durationMs: number })[] = [];
      for (const e of await lockStaleExecutions(tx, this.#liveness.staleAfterMs)) {
        // Ours are alive whatever their heartbeat says (a heartbeat may have failed); they end normally.
        if (this.#live.has(e.id)) continue;
        const error = new HubError(
          'SB_ERR_INTERRUPTED',
          `the hub running execution ${e.id} stopped (no heartbeat since ${e.lastSeen.toISOString()})`,
          { executionId: e.id, ownerInstance: e.ownerInstance, lastHeartbeat: e.lastSeen.toISOString() },
        );
        // What is known of its run: from its start to its last sign of life.
        const durationMs = Math.max(0, e.lastSeen.getTime() - e.startedAt.getTime());
        if (await closeStaleExecution(tx, { id: e.id, bundleId: e.bundleId, error, durationMs })) {
          done.push({ ...e, durationMs });
        }
      }
      return done;
    });
    for (const e of closed) {
      this.#d.log.warn(
        { executionId: e.id, bundleId: e.bundleId, ownerInstance: e.ownerInstance },
        'closed a bundle execution whose hub stopped',
      );
      this.#d.events.emit({
        type: 'bundle_execution',
        bundleId: e.bundleId,
        ok: false,
        durationMs: e.durationMs,
        source: 'bundle',
        clientId: e.clientId,
        data: { executionId: e.id, status: 'failed', interrupted: true, ownerInstance: e.ownerInstance },
      });
      const result = await this.getExecution(e.id);
      this.#publish({ type: 'execution-finished', executionId: e.id, bundleId: e.bundleId, result });
    }
  }

  /** The bundle store's database, for what is built on it (suggestions.ts). */
  get db(): Db {
    return this.#d.db;
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
    await this.#endsStored();
    return (await listBundlesWithPerformance(this.#d.db)).map((r) => toView(r.bundle, r.performance));
  }

  async get(id: string): Promise<BundleView> {
    await this.#endsStored();
    return toView(await this.#require(id));
  }

  /** `suggestionId`: the suggestion it is accepted from (one live bundle each: a second is SB_ERR_CONFLICT). */
  async create(input: CreateBundleInput, suggestionId?: string): Promise<BundleView> {
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
    try {
      return toView(await insertBundle(this.#d.db, next, suggestionId ?? null));
    } catch (err) {
      if (suggestionId !== undefined && isUniqueViolation(err))
        throw await this.#acceptedAlready(suggestionId);
      throw err;
    }
  }

  /** The error for a suggestion that has a live bundle already, naming it. */
  async #acceptedAlready(suggestionId: string): Promise<HubError> {
    const bundleId = await findBundleOfSuggestion(this.#d.db, suggestionId);
    return new HubError(
      'SB_ERR_CONFLICT',
      `suggestion ${suggestionId} was accepted already${bundleId ? ` as bundle ${bundleId}` : ''}`,
      { suggestionId, ...(bundleId ? { bundleId } : {}) },
    );
  }

  /** Refuses a suggestion that has a live bundle already (before the work of accepting it again). */
  async assertNotAccepted(suggestionId: string): Promise<void> {
    if (await findBundleOfSuggestion(this.#d.db, suggestionId))
      throw await this.#acceptedAlready(suggestionId);
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
    let updated: BundleRecord | undefined;
    try {
      updated = await updateBundle(this.#d.db, next);
    } finally {
      this.#bundles?.invalidate(id);
    }
    if (!updated) throw notFound(`Bundle ${id}`, { bundleId: id });
    return toView(updated);
  }

  async remove(id: string): Promise<void> {
    let deleted = false;
    try {
      deleted = await softDeleteBundle(this.#d.db, id);
    } finally {
      this.#bundles?.invalidate(id);
    }
    if (!deleted) throw notFound(`Bundle ${id}`, { bundleId: id });
  }

  /**
   * Validates and starts an execution. Nothing is written before the workflow is valid. `done` settles
   * once the execution is stored, `ended` with the result for a caller waiting for it; neither rejects.
   *
   * On the embedded database `ended` settles as soon as the run has ended, so storing the end (a statement
   * of 1–3 ms there) does not delay the answer: the hub is the database's only process, and its reads of an
   * execution whose end is being stored wait for it (getExecution, the bundle and execution lists), so no
   * reader can see it running after the answer. Hubs sharing a PostgreSQL server read each other's
   * executions, so there `ended` waits for the commit (which does not wait for the WAL flush: WriteOptions).
   * Either way live followers are told of the end once it is stored.
   */
  async execute(
    input: ExecuteBundleInput,
  ): Promise<{ executionId: string; ended: Promise<ExecutionResult>; done: Promise<ExecutionResult> }> {
    if (this.#closed) throw new HubError('SB_ERR_CLOSED', 'The bundle service');
    const bundle = await this.#require(input.bundleId, this.#bundles);
    const workflow = input.workflow ?? bundle.workflow;
    if (!workflow) {
      throw new HubError('SB_ERR_VALIDATION', `no workflow given, and bundle ${bundle.id} stores none`, {
        bundleId: bundle.id,
      });
    }
    const plan = await this.#plan(bundle, workflow);
    const executionId = `exec-${Date.now()}-${randomSuffix()}`;
    const { db, events, log } = this.#d;
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
        results.add(step);
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
    // Written while the first steps run rather than before them (the steps' upstream calls are what the
    // execution waits for), from the next turn of the event loop, once the first steps' requests are sent.
    // Step results follow it, since they refer to it. If it cannot be written, the execution is cancelled and
    // execute() fails: nothing of it is stored.
    const stored = nextTurn().then(() =>
      insertExecution(db, {
        id: executionId,
        bundleId: bundle.id,
        config: bundle.config,
        workflow,
        context: input.context ?? {},
        clientId: input.clientId ?? null,
        startedAt: run.startedAt,
        ownerInstance: this.instanceId,
      }),
    );
    const rowWritten = stored.then(
      () => true,
      () => false,
    );
    // See WriteOptions: on PostgreSQL the end does not wait for the WAL flush.
    const writes = { asyncCommit: db.driver === 'postgres' };
    const answerBeforeStored = db.driver === 'pglite';
    const results = new StepResultWriter(db, executionId, rowWritten, log, writes);
    // Before run() starts: its first steps start synchronously.
    this.#publish({
      type: 'execution-started',
      executionId,
      bundleId: bundle.id,
      steps: run.steps.map((st) => ({ ...st })),
    });
    let markEnded!: (result: ExecutionResult) => void;
    const ended = new Promise<ExecutionResult>((resolve) => {
      markEnded = resolve;
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
      const result = toResult(executionId, bundle.id, summary);
      if (!(await rowWritten)) {
        this.#live.delete(executionId);
        markEnded(result);
        this.#publish({ type: 'execution-finished', executionId, bundleId: bundle.id, result });
        return result;
      }
      const live = this.#live.get(executionId);
      if (answerBeforeStored && live) {
        live.ended = true;
        markEnded(result);
        // From the next turn: the waiting caller's answer is written first.
        await nextTurn();
      }
      let counted = true;
      try {
        counted = await results.finish((steps) =>
          finishExecution(
            db,
            {
              id: executionId,
              bundleId: bundle.id,
              status: summary.status,
              context: summary.context,
              durationMs: summary.durationMs,
            },
            steps,
            writes,
          ),
        );
      } catch (err) {
        log.error({ err, executionId }, 'could not store the end of a bundle execution');
      }
      // Another hub took this hub (stalled past the staleness) for a stopped one and recorded the execution
      // as failed; the log keeps one verdict per execution, the table now has the real outcome.
      if (!counted)
        log.warn({ executionId }, 'a bundle execution ended after another hub had closed it as stale');
      else
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
      markEnded(result);
      this.#publish({ type: 'execution-finished', executionId, bundleId: bundle.id, result });
      return result;
    })();
    this.#live.set(executionId, { bundleId: bundle.id, run, done, ended: false });
    try {
      await stored;
    } catch (err) {
      run.cancel('the execution could not be stored');
      await done;
      throw err;
    }
    return { executionId, ended, done };
  }

  /** Waits until the runs of this hub that have ended are stored (see execute). */
  async #endsStored(): Promise<void> {
    const storing = [...this.#live.values()].filter((l) => l.ended).map((l) => l.done);
    if (storing.length > 0) await Promise.all(storing);
  }

  /** A bundle's executions, newest first (also those of a deleted bundle, by id). */
  async executions(bundleId: string, limit: number) {
    await this.#endsStored();
    const list = await listExecutions(this.#d.db, bundleId, limit);
    if (list.length === 0) await this.#require(bundleId);
    return list;
  }

  /**
   * The state, now, of an execution running in this hub (undefined otherwise). Synchronous on purpose: a
   * live view that takes it and subscribes in the same turn of the event loop misses no update and sees none
   * twice.
   */
  liveExecution(executionId: string): ExecutionResult | undefined {
    const live = this.#live.get(executionId);
    return live && liveResult(executionId, live);
  }

  /** The state, now, of each execution of a bundle running in this hub (see liveExecution). */
  liveExecutionsOf(bundleId: string): ExecutionResult[] {
    const states: ExecutionResult[] = [];
    for (const [executionId, live] of this.#live) {
      if (live.bundleId === bundleId) states.push(liveResult(executionId, live));
    }
    return states;
  }

  /** The state of an execution: live while it runs, from the database once it has ended and is stored. */
  async getExecution(executionId: string): Promise<ExecutionResult> {
    const live = this.#live.get(executionId);
    if (live && !live.ended) return liveResult(executionId, live);
    if (live) await live.done;
    const stored = await findExecution(this.#d.db, executionId);
    if (!stored) throw notFound(`Execution ${executionId}`, { executionId });
    // Steps not stored are pending while the execution runs in another hub process; those of an execution
    // closed because its hub stopped never ended, and carry the execution's error.
    const steps: StepState[] = stored.workflow.steps.map(
      (s, i) =>
        stored.steps.find((r) => r.step === i) ?? {
          step: i,
          id: s.id ?? null,
          server: s.server,
          serverId: 0,
          tool: s.tool,
          ...(stored.status !== 'running' && stored.error
            ? { status: 'cancelled' as const, error: stored.error }
            : { status: 'pending' as const }),
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
      ...(stored.error ? { error: stored.error } : {}),
    };
  }

  /** Cancels a running execution: its steps in flight are aborted, upstream calls cancelled. */
  async cancel(executionId: string): Promise<ExecutionResult> {
    const live = this.#live.get(executionId);
    // A run that has ended (its end being stored) can no more be cancelled than a stored one.
    if (!live || live.ended) {
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
    // Heartbeats go on until then: a long grace must not make this hub's executions look orphaned.
    clearInterval(this.#timer);
    await this.#tick;
  }

  /** The live bundle, from `cache` when given (its execution_count is not kept current there). */
  async #require(id: string, cache?: BundleCache<BundleRecord>): Promise<BundleRecord> {
    const load = (bundleId: string) => findBundle(this.#d.db, bundleId);
    const b = await (cache ? cache.get(id, load) : load(id));
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
      // The pool's entry stands for the registry's record (dropped when the server is changed or deleted):
      // no database read per server and execution.
      this.#d.pool.listTools(serverId).catch((err: unknown) => {
        if (isHubError(err) && err.code === 'SB_ERR_NOT_FOUND') return undefined;
        throw err;
      }),
    );
  }
}
