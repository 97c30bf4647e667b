import type { Queryable } from '../db/db.js';
import type { BundleConfig, Workflow } from './payloads.js';
import type { ExecutionStatus, StepState } from './workflow-engine.js';

// jsonb refuses the NUL character (\u0000) that tool output may hold; an escaped NUL (not an escaped
// backslash followed by "u0000") becomes U+FFFD.
const escapedNul = /(?<!\\)((?:\\\\)*)\\u0000/g;
const json = (v: unknown) => (v === undefined ? null : JSON.stringify(v).replace(escapedNul, '$1\\ufffd'));

export interface BundleRecord {
  id: string;
  name: string;
  serverIds: number[];
  config: BundleConfig;
  description: string;
  workflow: Workflow | null;
  /** The suggestion it was accepted from, if any. */
  suggestionId: string | null;
  executionCount: number;
  createdAt: Date;
  updatedAt: Date;
}

export interface BundlePerformance {
  executions: number;
  success_rate: number | null;
  avg_duration_ms: number | null;
  p95_duration_ms: number | null;
  last_run: string | null;
}

interface BundleRow {
  id: string;
  name: string;
  server_ids: number[];
  config: BundleConfig | null;
  description: string;
  workflow: Workflow | null;
  suggestion_id: string | null;
  execution_count: number | null;
  created_at: Date;
  updated_at: Date;
}

const columns =
  'id, name, server_ids, config, description, workflow, suggestion_id, execution_count, created_at, updated_at';

const toRecord = (r: BundleRow): BundleRecord => ({
  id: r.id,
  name: r.name,
  serverIds: r.server_ids,
  config: r.config ?? {},
  description: r.description,
  workflow: r.workflow,
  suggestionId: r.suggestion_id,
  executionCount: r.execution_count ?? 0,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export type NewBundle = Omit<BundleRecord, 'executionCount' | 'createdAt' | 'updatedAt' | 'suggestionId'>;

/** $1 … $6 of insert and update, in column order: id, name, server_ids, config, description, workflow. */
function bundleValues(b: NewBundle): unknown[] {
  return [
    b.id,
    b.name,
    json(b.serverIds),
    json(b.config),
    b.description,
    b.workflow === null ? null : json(b.workflow),
  ];
}

/** Inserts a bundle; one accepted from a suggestion records it (a second live one fails with 23505). */
export async function insertBundle(
  db: Queryable,
  b: NewBundle,
  suggestionId: string | null = null,
): Promise<BundleRecord> {
  const { rows } = await db.query<BundleRow>(
    `INSERT INTO mcp_bundles (id, name, server_ids, config, description, workflow, suggestion_id)
     VALUES ($1, $2, $3::jsonb, $4::jsonb, $5, $6::jsonb, $7)
     RETURNING ${columns}`,
    [...bundleValues(b), suggestionId],
  );
  return toRecord(rows[0]!);
}

/** The live bundle accepted from a suggestion, if there is one. */
export async function findBundleOfSuggestion(
  db: Queryable,
  suggestionId: string,
): Promise<string | undefined> {
  const { rows } = await db.query<{ id: string }>(
    'SELECT id FROM mcp_bundles WHERE suggestion_id = $1 AND deleted_at IS NULL',
    [suggestionId],
  );
  return rows[0]?.id;
}

export async function findBundle(db: Queryable, id: string): Promise<BundleRecord | undefined> {
  const { rows } = await db.query<BundleRow>(
    `SELECT ${columns} FROM mcp_bundles WHERE id = $1 AND deleted_at IS NULL`,
    [id],
  );
  return rows[0] && toRecord(rows[0]);
}

export async function updateBundle(db: Queryable, b: NewBundle): Promise<BundleRecord | undefined> {
  const { rows } = await db.query<BundleRow>(
    `UPDATE mcp_bundles SET name = $2, server_ids = $3::jsonb, config = $4::jsonb, description = $5,
       workflow = $6::jsonb, updated_at = LOCALTIMESTAMP
     WHERE id = $1 AND deleted_at IS NULL
     RETURNING ${columns}`,
    bundleValues(b),
  );
  return rows[0] && toRecord(rows[0]);
}

/** Soft delete: mcp_events.bundle_id refers to the row, and the bundle's history stays readable. */
export async function softDeleteBundle(db: Queryable, id: string): Promise<boolean> {
  const res = await db.query(
    'UPDATE mcp_bundles SET deleted_at = LOCALTIMESTAMP WHERE id = $1 AND deleted_at IS NULL',
    [id],
  );
  return res.rowCount > 0;
}

interface PerformanceRow extends BundleRow {
  executions_recorded: number | null;
  success_rate: number | null;
  avg_duration_ms: number | null;
  p95_duration_ms: number | null;
  last_run: Date | null;
}

/** Live bundles, oldest first, with their figures from the mcp_bundle_performance view. */
export async function listBundlesWithPerformance(
  db: Queryable,
): Promise<{ bundle: BundleRecord; performance: BundlePerformance }[]> {
  const { rows } = await db.query<PerformanceRow>(
    `SELECT b.id, b.name, b.server_ids, b.config, b.description, b.workflow, b.suggestion_id, b.execution_count,
            b.created_at, b.updated_at, p.executions_recorded, p.success_rate, p.avg_duration_ms, p.p95_duration_ms, p.last_run
     FROM mcp_bundles b
     LEFT JOIN mcp_bundle_performance p ON p.bundle_id = b.id
     WHERE b.deleted_at IS NULL
     ORDER BY b.created_at, b.id`,
  );
  return rows.map((r) => ({
    bundle: toRecord(r),
    performance: {
      executions: Number(r.executions_recorded ?? 0),
      success_rate: r.success_rate === null ? null : Number(r.success_rate),
      avg_duration_ms: r.avg_duration_ms === null ? null : Number(r.avg_duration_ms),
      p95_duration_ms: r.p95_duration_ms === null ? null : Number(r.p95_duration_ms),
      last_run: r.last_run ? r.last_run.toISOString() : null,
    },
  }));
}

// --- executions ----------------------------------------------------------------------------------

export interface NewExecution {
  id: string;
  bundleId: string;
  config: BundleConfig;
  workflow: Workflow;
  context: Record<string, unknown>;
  clientId: string | null;
  startedAt: Date;
  /** The hub instance running it, which keeps its heartbeat fresh. */
  ownerInstance: string;
}

export async function insertExecution(db: Queryable, e: NewExecution): Promise<void> {
  await db.query(
    `INSERT INTO mcp_bundle_executions (id, bundle_id, status, config, workflow, context, client_id, started_at,
       owner_instance, heartbeat_at)
     VALUES ($1, $2, 'running', $3::jsonb, $4::jsonb, $5::jsonb, $6, $7, $8, LOCALTIMESTAMP)`,
    [
      e.id,
      e.bundleId,
      json(e.config),
      json(e.workflow),
      json(e.context),
      e.clientId,
      e.startedAt,
      e.ownerInstance,
    ],
  );
}

/** One statement for all of a hub instance's running executions: they are still alive. */
export async function heartbeatExecutions(db: Queryable, ownerInstance: string): Promise<number> {
  const res = await db.query(
    `UPDATE mcp_bundle_executions SET heartbeat_at = LOCALTIMESTAMP
     WHERE owner_instance = $1 AND status = 'running'`,
    [ownerInstance],
  );
  return res.rowCount;
}

export interface StaleExecution {
  id: string;
  bundleId: string;
  clientId: string | null;
  ownerInstance: string | null;
  /** The last sign of life: the heartbeat, or the start for rows written before heartbeats existed. */
  lastSeen: Date;
  startedAt: Date;
}

/**
 * Running executions without a heartbeat for `staleAfterMs` by the database's clock (so the clocks of the
 * hubs do not matter), locked for closing; rows another hub is closing at the same moment are skipped.
 */
export async function lockStaleExecutions(tx: Queryable, staleAfterMs: number): Promise<StaleExecution[]> {
  const { rows } = await tx.query<{
    id: string;
    bundle_id: string;
    client_id: string | null;
    owner_instance: string | null;
    last_seen: Date;
    started_at: Date;
  }>(
    `SELECT id, bundle_id, client_id, owner_instance, COALESCE(heartbeat_at, started_at) AS last_seen, started_at
     FROM mcp_bundle_executions
     WHERE status = 'running'
       AND COALESCE(heartbeat_at, started_at) < LOCALTIMESTAMP - make_interval(secs => $1)
     ORDER BY started_at, id
     FOR UPDATE SKIP LOCKED`,
    [staleAfterMs / 1000],
  );
  return rows.map((r) => ({
    id: r.id,
    bundleId: r.bundle_id,
    clientId: r.client_id,
    ownerInstance: r.owner_instance,
    lastSeen: r.last_seen,
    startedAt: r.started_at,
  }));
}

/** Closes a stale execution as failed with its reason, and counts it on its bundle like any ended one. */
export async function closeStaleExecution(
  tx: Queryable,
  e: { id: string; bundleId: string; error: unknown; durationMs: number },
): Promise<boolean> {
  const res = await tx.query(
    `UPDATE mcp_bundle_executions
     SET status = 'failed', error = $2::jsonb, duration_ms = $3, finished_at = LOCALTIMESTAMP
     WHERE id = $1 AND status = 'running'`,
    [e.id, json(e.error), e.durationMs],
  );
  if (res.rowCount === 0) return false;
  await tx.query('UPDATE mcp_bundles SET execution_count = COALESCE(execution_count, 0) + 1 WHERE id = $1', [
    e.bundleId,
  ]);
  return true;
}

const STEP_COLUMNS = `execution_id, step, step_id, server_index, server_id, tool_name, status, ok, args, result,
  content, error, attempts, started_at, duration_ms`;

/**
 * The steps as one json parameter holding a record per step, keyed by column name, rather than fifteen
 * parameters per step: the statement's text and plan stay the same whatever the number of steps, which costs
 * PGlite a third less for 20 steps, and no statement comes near PostgreSQL's limit of 65,535 parameters. A field left out (undefined) or null is NULL.
 */
function stepRecords(executionId: string, steps: readonly StepState[]): string | null {
  return json(
    steps.map((s) => ({
      execution_id: executionId,
      step: s.step,
      step_id: s.id,
      server_index: s.server,
      server_id: s.serverId,
      tool_name: s.tool,
      status: s.status,
      ok: s.ok,
      args: s.args,
      result: s.result,
      content: s.content,
      error: s.error,
      attempts: s.attempts,
      // An ISO string in UTC: `timestamp` ignores its zone, and the hub's timestamps are all in UTC.
      started_at: s.startedAt,
      duration_ms: s.durationMs,
    })),
  );
}

/** Inserts the records of parameter `$param` (see stepRecords); a step stored already is left as it is. */
const insertStepRecords = (param: number) =>
  `INSERT INTO mcp_bundle_step_results (${STEP_COLUMNS})
   SELECT ${STEP_COLUMNS} FROM json_populate_recordset(NULL::mcp_bundle_step_results, $${param}::json)
   ON CONFLICT (execution_id, step) DO NOTHING`;

/**
 * The end of an execution and its step results are committed without waiting for the WAL flush on a
 * PostgreSQL server: `synchronous_commit` off for the statement's own transaction (set_config's third argument
 * makes it local to it), in the statement itself since a `SET LOCAL` would cost two more round trips. The
 * commit is visible to every reader at once, other hubs included, and a crash of the hub loses nothing; a crash
 * of the PostgreSQL server (or its host) may lose the ends committed in the moments before it (up to three
 * times wal_writer_delay, 0.6 s by default). The WAL is replayed in order, so what is lost is the latest
 * commits, whole: such an execution is found running with a stale heartbeat, and the orphan sweep closes it as
 * interrupted (SB_ERR_INTERRUPTED), consistent and never half-written. The execution's row itself is committed
 * durably (a 202 promises an execution that can be polled). Not on PGlite, which runs with fsync off: its commit
 * waits for no flush, and the hub is its only process, so there is no writer to defer the WAL to.
 */
export interface WriteOptions {
  asyncCommit?: boolean;
}

const asyncCommit = "set_config('synchronous_commit', 'off', true)";

/** Stores step results in one statement; a step stored already is left as it is. */
export async function insertStepResults(
  db: Queryable,
  executionId: string,
  steps: readonly StepState[],
  options: WriteOptions = {},
): Promise<void> {
  const insert = insertStepRecords(1);
  await db.query(options.asyncCommit ? `WITH stored AS (${insert}) SELECT ${asyncCommit}` : insert, [
    stepRecords(executionId, steps),
  ]);
}

/**
 * Ends an execution, counts it on its bundle and stores the step results still to store, in one statement.
 * Returns false when another hub had closed it as stale meanwhile (this hub stalled past the staleness): the
 * stored outcome becomes the real one, but the execution was counted then, so it is not counted again.
 */
export async function finishExecution(
  db: Queryable,
  e: {
    id: string;
    bundleId: string;
    status: ExecutionStatus;
    context: Record<string, unknown>;
    durationMs: number;
  },
  steps: readonly StepState[] = [],
  options: WriteOptions = {},
): Promise<boolean> {
  // The first CTE locks the row, so `previous` is the latest committed status, not the statement's snapshot.
  // Every data-modifying CTE runs, referenced or not.
  const { rows } = await db.query<{ previous: string }>(
    `WITH prev AS (SELECT status FROM mcp_bundle_executions WHERE id = $1 FOR UPDATE),
     ended AS (
       UPDATE mcp_bundle_executions e
       SET status = $2, final_context = $3::jsonb, duration_ms = $4, finished_at = LOCALTIMESTAMP, error = NULL
       FROM prev WHERE e.id = $1
       RETURNING prev.status AS previous
     ),
     counted AS (
       UPDATE mcp_bundles SET execution_count = COALESCE(execution_count, 0) + 1
       WHERE id = $5 AND (SELECT previous FROM ended) = 'running'
     )${steps.length > 0 ? `, stored AS (${insertStepRecords(6)})` : ''}
     SELECT previous${options.asyncCommit ? `, ${asyncCommit}` : ''} FROM ended`,
    [
      e.id,
      e.status,
      json(e.context),
      e.durationMs,
      e.bundleId,
      ...(steps.length > 0 ? [stepRecords(e.id, steps)] : []),
    ],
  );
  return rows[0]?.previous === 'running';
}

export interface ExecutionRecord {
  id: string;
  bundleId: string;
  status: ExecutionStatus;
  workflow: Workflow;
  context: Record<string, unknown>;
  finalContext: Record<string, unknown> | null;
  startedAt: Date;
  durationMs: number | null;
  error: { code: string; message: string; details?: unknown } | null;
  steps: StepState[];
}

interface ExecutionRow {
  id: string;
  bundle_id: string;
  status: ExecutionStatus;
  workflow: Workflow;
  context: Record<string, unknown>;
  final_context: Record<string, unknown> | null;
  started_at: Date;
  duration_ms: number | null;
  error: ExecutionRecord['error'];
}

interface StepRow {
  step: number;
  step_id: string | null;
  server_index: number;
  server_id: number | null;
  tool_name: string;
  status: StepState['status'];
  ok: boolean;
  args: Record<string, unknown> | null;
  result: unknown;
  content: StepState['content'] | null;
  error: StepState['error'] | null;
  attempts: number;
  started_at: Date | null;
  duration_ms: number | null;
}

export async function findExecution(db: Queryable, id: string): Promise<ExecutionRecord | undefined> {
  const { rows } = await db.query<ExecutionRow>(
    `SELECT id, bundle_id, status, workflow, context, final_context, started_at, duration_ms, error
     FROM mcp_bundle_executions WHERE id = $1`,
    [id],
  );
  const e = rows[0];
  if (!e) return undefined;
  const steps = await db.query<StepRow>(
    `SELECT step, step_id, server_index, server_id, tool_name, status, ok, args, result, content, error,
            attempts, started_at, duration_ms
     FROM mcp_bundle_step_results WHERE execution_id = $1 ORDER BY step`,
    [id],
  );
  return {
    id: e.id,
    bundleId: e.bundle_id,
    status: e.status,
    workflow: e.workflow,
    context: e.context,
    finalContext: e.final_context,
    startedAt: e.started_at,
    durationMs: e.duration_ms,
    error: e.error,
    steps: steps.rows.map((r) => ({
      step: r.step,
      id: r.step_id,
      server: r.server_index,
      serverId: r.server_id ?? 0,
      tool: r.tool_name,
      status: r.status,
      ok: r.ok,
      ...(r.result === null ? {} : { result: r.result }),
      ...(r.content === null ? {} : { content: r.content }),
      ...(r.error === null ? {} : { error: r.error }),
      ...(r.args === null ? {} : { args: r.args }),
      attempts: r.attempts,
      durationMs: r.duration_ms,
      startedAt: r.started_at ? r.started_at.toISOString() : null,
    })),
  };
}

export interface ExecutionListItem {
  executionId: string;
  status: ExecutionStatus;
  clientId: string | null;
  startedAt: string;
  finishedAt: string | null;
  durationMs: number | null;
}

/** A bundle's executions, newest first. */
export async function listExecutions(
  db: Queryable,
  bundleId: string,
  limit: number,
): Promise<ExecutionListItem[]> {
  const { rows } = await db.query<{
    id: string;
    status: ExecutionStatus;
    client_id: string | null;
    started_at: Date;
    finished_at: Date | null;
    duration_ms: number | null;
  }>(
    `SELECT id, status, client_id, started_at, finished_at, duration_ms
     FROM mcp_bundle_executions WHERE bundle_id = $1
     ORDER BY started_at DESC, id DESC LIMIT $2`,
    [bundleId, limit],
  );
  return rows.map((r) => ({
    executionId: r.id,
    status: r.status,
    clientId: r.client_id,
    startedAt: r.started_at.toISOString(),
    finishedAt: r.finished_at ? r.finished_at.toISOString() : null,
    durationMs: r.duration_ms,
  }));
}
