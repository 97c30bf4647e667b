import type { Db } from '../db/db.js';
import { HubError, isHubError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { HubEvent, HubEventBus } from './hub-events.js';
import { sanitizeToJson } from './sanitizer.js';

/**
 * The event recorder: subscribes to the HubEventBus and writes every event to mcp_events in batches with
 * COPY, off the request path. Emitting costs the emitter one sanitize and one array push; the database
 * work runs later, one batch at a time.
 *
 * When a batch is written: as soon as the buffer holds `batchSize` events, every `flushIntervalMs`
 * otherwise, and on flush()/close(). What a crash (no close()) can lose is bounded: the events still in
 * the buffer plus the batch being written — at most `maxBuffer + batchSize` events. Under normal load the
 * buffer is emptied every interval, so with the defaults that is about the last 200 ms of events (or the
 * last 500–1,000 events at high rates); it only approaches maxBuffer while the database is slow or down.
 * Events are never dropped silently: a full buffer, a batch that keeps failing and an emit after close()
 * are counted in `switchboard_recorder_events_dropped_total` and logged (rate-limited).
 */
export const RECORDER_DEFAULTS = Object.freeze({
  batchSize: 500,
  flushIntervalMs: 200,
  maxBuffer: 50_000,
  /**
   * Also bounds the buffer's memory: rows are counted at their event_data JSON length plus a fixed
   * ROW_OVERHEAD. Without it, 50,000 events at the 16 KiB payload cap would hold ~800 MB.
   */
  maxBufferBytes: 64 * 1024 * 1024,
  /** Retries of a batch after a transient failure (connection lost, database restarting…). */
  maxRetries: 3,
  /** First retry delay; each retry waits 4× longer (100, 400, 1,600 ms). */
  retryDelayMs: 100,
  /** At most one "events dropped" warning per window; the rest are summed into the next one. */
  dropWarnIntervalMs: 5_000,
});

/** The mcp_events columns the recorder writes, in the order of eventToRow's values. */
export const EVENT_COLUMNS = [
  'event_type',
  'server_id',
  'bundle_id',
  'stream_id',
  'event_data',
  'timestamp',
  'duration',
  'tool_name',
  'outcome',
  'ok',
  'error_code',
  'source',
  'client_id',
  'config_version',
  'request_bytes',
  'response_bytes',
  'queue_ms',
  'concurrency',
] as const;

/** One mcp_events row, values in EVENT_COLUMNS order; event_data is already JSON text. */
export type EventRow = unknown[];

const col = Object.fromEntries(EVENT_COLUMNS.map((name, i) => [name, i])) as Record<
  (typeof EVENT_COLUMNS)[number],
  number
>;

/** Approximate memory of a buffered row besides its event_data (array, columns, Date). */
const ROW_OVERHEAD = 256;

const INT4_MAX = 2_147_483_647;
const INT4_MIN = -2_147_483_648;

// Every value is made to fit its column here: one value the database refuses fails the whole COPY.
function int4(v: unknown): number | null {
  if (typeof v !== 'number' || !Number.isFinite(v)) return null;
  const r = Math.round(v);
  return Math.min(INT4_MAX, Math.max(INT4_MIN, r));
}

function id4(v: unknown): number | null {
  return typeof v === 'number' && Number.isInteger(v) && v >= INT4_MIN && v <= INT4_MAX ? v : null;
}

/** varchar(max) counts code points; cutting UTF-16 units to max stays within it. PostgreSQL text has no NUL. */
function varchar(v: unknown, max: number): string | null {
  if (typeof v !== 'string') return null;
  const s = v.length > max ? v.slice(0, max) : v;
  return s.includes('\u0000') ? s.replaceAll('\u0000', '\ufffd') : s;
}

/** Maps an event to its row, sanitizing its data (pure apart from the clock when `at` is missing). */
export function eventToRow(event: HubEvent): EventRow {
  const at = event.at instanceof Date && !Number.isNaN(event.at.getTime()) ? event.at : new Date();
  return [
    varchar(event.type, 100) ?? 'unknown',
    id4(event.serverId),
    varchar(event.bundleId, 255),
    varchar(event.streamId, 255),
    sanitizeToJson(event.data),
    at,
    int4(event.durationMs),
    varchar(event.toolName, 255),
    varchar(event.outcome, 32),
    typeof event.ok === 'boolean' ? event.ok : null,
    varchar(event.errorCode, 64),
    varchar(event.source, 32),
    varchar(event.clientId, 255),
    int4(event.configVersion),
    int4(event.requestBytes),
    int4(event.responseBytes),
    int4(event.queueMs),
    int4(event.concurrency),
  ];
}

export interface EventRecorderOptions {
  db: Db;
  events: HubEventBus;
  metrics: Metrics;
  log: Logger;
  /** false: subscribe to nothing, write nothing (recording off). Default true. */
  enabled?: boolean;
  batchSize?: number;
  flushIntervalMs?: number;
  maxBuffer?: number;
  maxBufferBytes?: number;
  maxRetries?: number;
  retryDelayMs?: number;
  dropWarnIntervalMs?: number;
}

export interface RecorderStats {
  /** Events waiting in the buffer. */
  queued: number;
  /** Events of the batch being written. */
  inFlight: number;
  /** Events committed to mcp_events. */
  written: number;
  /** Events dropped (buffer full, emitted after close, or the database kept refusing them). */
  dropped: number;
}

interface FlushWaiter {
  target: number;
  resolve: () => void;
}

type DropReason = 'buffer_full' | 'not_started' | 'closed' | 'write_failed' | 'rejected';

type ErrorKind = 'foreign_key' | 'data' | 'fatal' | 'transient';

/** How to react to a failed COPY, from its SQLSTATE. */
function errorKind(err: unknown): ErrorKind {
  if (isHubError(err)) return err.code === 'SB_ERR_CLOSED' ? 'fatal' : 'transient';
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !/^[0-9A-Z]{5}$/.test(code)) return 'transient';
  if (code === '23503') return 'foreign_key';
  // Data exceptions and other constraint violations belong to some rows, not to the batch.
  if (code.startsWith('22') || code.startsWith('23') || code === '54000') return 'data';
  // Undefined table or column, permissions: no retry can help.
  if (code.startsWith('42')) return 'fatal';
  return 'transient';
}

const knownServersSql = 'SELECT id FROM mcp_servers WHERE id = ANY($1::int[])';
const knownBundlesSql = 'SELECT id FROM mcp_bundles WHERE id = ANY($1::varchar[])';

/** Adds `"key": value` at the front of a row's event_data JSON (an object, or null). */
function addToEventData(row: EventRow, key: string, value: unknown): void {
  const data = row[col.event_data] as string | null;
  const entry = `${JSON.stringify(key)}:${JSON.stringify(value)}`;
  if (data === null || data === '{}') row[col.event_data] = `{${entry}}`;
  else if (data.startsWith('{')) row[col.event_data] = `{${entry},${data.slice(1)}`;
  else row[col.event_data] = `{${entry},"data":${data}}`;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class EventRecorder {
  readonly #db: Db;
  readonly #events: HubEventBus;
  readonly #metrics: Metrics;
  readonly #log: Logger;
  readonly #enabled: boolean;
  readonly #batchSize: number;
  readonly #flushIntervalMs: number;
  readonly #maxBuffer: number;
  readonly #maxBufferBytes: number;
  readonly #maxRetries: number;
  readonly #retryDelayMs: number;
  readonly #dropWarnIntervalMs: number;

  #state: 'new' | 'started' | 'closing' | 'closed' = 'new';
  /** The buffer, as the batches it will be written in; only the last one can be partial. */
  #batches: EventRow[][] = [];
  #queued = 0;
  #queuedBytes = 0;
  #inFlight = 0;
  #written = 0;
  #dropped = 0;
  /** Events accepted so far, and how many of them are settled (written or dropped): flush() waits on it. */
  #accepted = 0;
  #settled = 0;
  #waiters: FlushWaiter[] = [];
  #writer: Promise<void> | null = null;
  #writeScheduled = false;
  /** Write the next batch even if it is partial (interval tick). */
  #forceOne = false;
  #timer: NodeJS.Timeout | undefined;
  #closing: Promise<void> | undefined;
  #dropWindow: {
    timer: NodeJS.Timeout | undefined;
    count: number;
    reasons: Partial<Record<DropReason, number>>;
  } = { timer: undefined, count: 0, reasons: {} };

  constructor(options: EventRecorderOptions) {
    this.#db = options.db;
    this.#events = options.events;
    this.#metrics = options.metrics;
    this.#log = options.log.child({ module: 'event-recorder' });
    this.#enabled = options.enabled ?? true;
    this.#batchSize = positive('batchSize', options.batchSize ?? RECORDER_DEFAULTS.batchSize);
    this.#flushIntervalMs = positive(
      'flushIntervalMs',
      options.flushIntervalMs ?? RECORDER_DEFAULTS.flushIntervalMs,
    );
    this.#maxBuffer = positive('maxBuffer', options.maxBuffer ?? RECORDER_DEFAULTS.maxBuffer);
    this.#maxBufferBytes = positive(
      'maxBufferBytes',
      options.maxBufferBytes ?? RECORDER_DEFAULTS.maxBufferBytes,
    );
    this.#maxRetries = Math.max(0, options.maxRetries ?? RECORDER_DEFAULTS.maxRetries);
    this.#retryDelayMs = Math.max(0, options.retryDelayMs ?? RECORDER_DEFAULTS.retryDelayMs);
    this.#dropWarnIntervalMs = Math.max(
      0,
      options.dropWarnIntervalMs ?? RECORDER_DEFAULTS.dropWarnIntervalMs,
    );
  }

  get enabled(): boolean {
    return this.#enabled;
  }

  get stats(): RecorderStats {
    return { queued: this.#queued, inFlight: this.#inFlight, written: this.#written, dropped: this.#dropped };
  }

  /** Subscribes to the bus and starts the flush timer. Idempotent; throws SB_ERR_CLOSED after close(). */
  start(): void {
    if (this.#state === 'closing' || this.#state === 'closed')
      throw new HubError('SB_ERR_CLOSED', 'Event recorder');
    if (this.#state === 'started') return;
    this.#state = 'started';
    if (!this.#enabled) return;
    // Stays subscribed after close(), so that a late event is counted as dropped rather than unseen.
    this.#events.subscribe((event) => this.record(event));
    this.#timer = setInterval(() => {
      this.#metrics.recorderQueue.set(this.#queued);
      if (this.#queued > 0) this.#kick(true);
    }, this.#flushIntervalMs);
    this.#timer.unref();
  }

  /**
   * Takes one event (the bus listener; also callable directly). Returns false when the event was dropped.
   * Never throws and never waits: the write happens later.
   */
  record(event: HubEvent): boolean {
    if (!this.#enabled) return false;
    if (this.#state !== 'started') {
      this.#drop(1, this.#state === 'new' ? 'not_started' : 'closed');
      return false;
    }
    if (this.#queued >= this.#maxBuffer) {
      this.#drop(1, 'buffer_full');
      return false;
    }
    // Sanitized now rather than at write time: the row is a snapshot (callers may mutate data later) and
    // its size is capped, so the buffer's memory is bounded.
    let row: EventRow;
    try {
      row = eventToRow(event);
    } catch (err) {
      this.#log.error({ err: String(err) }, 'event could not be converted to a row');
      this.#drop(1, 'rejected');
      return false;
    }
    const bytes = rowBytes(row);
    if (this.#queuedBytes + bytes > this.#maxBufferBytes) {
      this.#drop(1, 'buffer_full');
      return false;
    }
    let last = this.#batches[this.#batches.length - 1];
    if (last === undefined || last.length >= this.#batchSize) {
      last = [];
      this.#batches.push(last);
    }
    last.push(row);
    this.#queued++;
    this.#queuedBytes += bytes;
    this.#accepted++;
    if (last.length === this.#batchSize) {
      // The gauge is set per batch and per tick, not per event: it lags by less than one batch.
      this.#metrics.recorderQueue.set(this.#queued);
      this.#kick(false);
    }
    return true;
  }

  /**
   * Resolves when every event accepted before the call is settled: written, or dropped after the
   * retries. After close() it resolves when close() has finished.
   */
  flush(): Promise<void> {
    if (this.#closing) return this.#closing;
    return this.#flushAll();
  }

  /**
   * Stops accepting events (later ones are counted as dropped), writes everything buffered and stops the
   * timer. Idempotent: every call returns the same promise. Does not close the database.
   */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    const wasStarted = this.#state === 'started';
    this.#state = 'closing';
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#closing = (wasStarted ? this.#flushAll() : Promise.resolve()).then(() => {
      this.#state = 'closed';
      this.#metrics.recorderQueue.set(0);
      this.#reportDrops();
    });
    return this.#closing;
  }

  #flushAll(): Promise<void> {
    const target = this.#accepted;
    if (this.#settled >= target) return Promise.resolve();
    return new Promise((resolve) => {
      this.#waiters.push({ target, resolve });
      this.#kick(true);
    });
  }

  /**
   * Starts the writer unless it runs. Deferred with setImmediate: the emitter may be a request handler,
   * and encoding a batch must not run inside its call stack.
   */
  #kick(force: boolean): void {
    if (force) this.#forceOne = true;
    if (this.#writer || this.#writeScheduled) return;
    this.#writeScheduled = true;
    setImmediate(() => {
      this.#writeScheduled = false;
      if (this.#writer) return;
      this.#writer = this.#drain().finally(() => {
        this.#writer = null;
        if (this.#shouldWrite()) this.#kick(false);
      });
    });
  }

  #shouldWrite(): boolean {
    const first = this.#batches[0];
    if (first === undefined) return false;
    return (
      this.#forceOne ||
      first.length >= this.#batchSize ||
      this.#waiters.length > 0 ||
      this.#state === 'closing'
    );
  }

  /** One batch at a time until nothing needs writing now. Never rejects. */
  async #drain(): Promise<void> {
    while (this.#shouldWrite()) {
      this.#forceOne = false;
      const batch = this.#batches.shift() as EventRow[];
      this.#queued -= batch.length;
      for (const row of batch) this.#queuedBytes -= rowBytes(row);
      this.#inFlight = batch.length;
      this.#metrics.recorderQueue.set(this.#queued);
      const gaveUp = await this.#writeBatch(batch);
      this.#inFlight = 0;
      this.#settled += batch.length;
      if (gaveUp && this.#state === 'closing') this.#dropBuffered();
      this.#resolveWaiters();
    }
    this.#resolveWaiters();
  }

  /** Shutting down with a database that keeps failing: waiting out every batch's retries helps nobody. */
  #dropBuffered(): void {
    if (this.#queued === 0) return;
    const n = this.#queued;
    this.#batches = [];
    this.#queued = 0;
    this.#queuedBytes = 0;
    this.#settled += n;
    this.#metrics.recorderQueue.set(0);
    this.#drop(n, 'write_failed');
  }

  #resolveWaiters(): void {
    if (this.#waiters.length === 0) return;
    const still: FlushWaiter[] = [];
    for (const w of this.#waiters) {
      if (this.#settled >= w.target) w.resolve();
      else still.push(w);
    }
    this.#waiters = still;
  }

  /**
   * Writes one batch; every row ends up written or dropped (counted). Returns true when it gave up on
   * transient failures. A foreign-key violation (an event naming a server or bundle that does not exist)
   * moves the unknown ids into event_data and retries; another data error splits the batch in halves
   * until the offending rows are isolated and dropped, so that one bad event never costs the others.
   */
  async #writeBatch(batch: EventRow[]): Promise<boolean> {
    const started = performance.now();
    try {
      return await this.#writeRows(batch);
    } finally {
      this.#metrics.recorderFlushDuration.observe((performance.now() - started) / 1000);
    }
  }

  async #writeRows(batch: EventRow[]): Promise<boolean> {
    // Sub-batches still to write, last one first; a batch is split in place when rows of it are refused.
    const pending: EventRow[][] = [batch];
    let failures = 0;
    let fkFixes = 0;
    while (pending.length > 0) {
      const rows = pending[pending.length - 1] as EventRow[];
      try {
        await this.#db.copyRows('mcp_events', EVENT_COLUMNS, rows);
        pending.pop();
        this.#written += rows.length;
        this.#metrics.recorderWritten.inc(rows.length);
        failures = 0;
      } catch (err) {
        const kind = errorKind(err);
        if (kind === 'foreign_key' && fkFixes < 3) {
          fkFixes++;
          try {
            if (await this.#detachUnknownReferences(rows)) continue;
          } catch (lookupErr) {
            if (errorKind(lookupErr) === 'fatal') return this.#giveUp(pending, lookupErr);
          }
        }
        if (kind === 'foreign_key' || kind === 'data') {
          this.#isolate(pending, err);
          continue;
        }
        if (kind === 'fatal' || failures >= this.#maxRetries) return this.#giveUp(pending, err);
        failures++;
        this.#log.warn(
          { err: errorSummary(err), attempt: failures, rows: rows.length },
          'event batch write failed, retrying',
        );
        await sleep(this.#retryDelayMs * 4 ** (failures - 1));
      }
    }
    return false;
  }

  /**
   * The last pending sub-batch was refused for its content: split it in halves, and once down to one row,
   * store that event without its data (the likeliest culprit), and drop it only if that is refused too.
   */
  #isolate(pending: EventRow[][], err: unknown): void {
    const rows = pending.pop() as EventRow[];
    if (rows.length > 1) {
      const half = Math.ceil(rows.length / 2);
      pending.push(rows.slice(half), rows.slice(0, half));
      return;
    }
    const row = rows[0] as EventRow;
    const { code } = errorSummary(err);
    const fallback = JSON.stringify({ unstorable: true, error_code: typeof code === 'string' ? code : null });
    if (row[col.event_data] !== fallback) {
      row[col.event_data] = fallback;
      pending.push(rows);
      return;
    }
    this.#log.error(
      { err: errorSummary(err), eventType: row[col.event_type] },
      'event rejected by the database, dropped',
    );
    this.#drop(1, 'rejected');
  }

  /** Drops every row not yet written; returns true (the batch was given up). */
  #giveUp(pending: EventRow[][], err: unknown): boolean {
    const n = pending.reduce((sum, rows) => sum + rows.length, 0);
    this.#log.error({ err: errorSummary(err), rows: n }, 'event batch could not be written, dropped');
    this.#drop(n, 'write_failed');
    return true;
  }

  /**
   * Sets server_id/bundle_id to NULL in the rows whose id does not exist (keeping the id in event_data as
   * unknown_server_id/unknown_bundle_id). Returns false when every id exists (the violation was something
   * else, or a concurrent delete: then the batch is split instead).
   */
  async #detachUnknownReferences(rows: EventRow[]): Promise<boolean> {
    let changed = false;
    const refs = [
      { index: col.server_id, sql: knownServersSql, key: 'unknown_server_id' },
      { index: col.bundle_id, sql: knownBundlesSql, key: 'unknown_bundle_id' },
    ];
    for (const ref of refs) {
      const ids = [...new Set(rows.map((r) => r[ref.index]).filter((v) => v !== null))];
      if (ids.length === 0) continue;
      const { rows: found } = await this.#db.query<{ id: unknown }>(ref.sql, [ids]);
      const known = new Set(found.map((r) => r.id));
      for (const row of rows) {
        const id = row[ref.index];
        if (id === null || known.has(id)) continue;
        addToEventData(row, ref.key, id);
        row[ref.index] = null;
        changed = true;
      }
    }
    if (changed)
      this.#log.warn(
        { rows: rows.length },
        'events named unknown servers or bundles; stored without the reference',
      );
    return changed;
  }

  #drop(n: number, reason: DropReason): void {
    this.#dropped += n;
    this.#metrics.recorderDropped.inc(n);
    const w = this.#dropWindow;
    w.count += n;
    w.reasons[reason] = (w.reasons[reason] ?? 0) + n;
    // The first drop is logged at once; while drops go on, one line per window sums them up.
    if (w.timer === undefined) {
      this.#reportDrops();
      this.#openDropWindow();
    }
  }

  #openDropWindow(): void {
    const w = this.#dropWindow;
    w.timer = setTimeout(() => {
      w.timer = undefined;
      if (w.count > 0) {
        this.#reportDrops();
        this.#openDropWindow();
      }
    }, this.#dropWarnIntervalMs);
    w.timer.unref();
  }

  #reportDrops(): void {
    const w = this.#dropWindow;
    if (w.count === 0) return;
    this.#log.warn(
      { dropped: w.count, reasons: w.reasons, totalDropped: this.#dropped, queued: this.#queued },
      'events dropped, not recorded',
    );
    w.count = 0;
    w.reasons = {};
  }
}

function rowBytes(row: EventRow): number {
  const data = row[col.event_data] as string | null;
  return ROW_OVERHEAD + (data === null ? 0 : data.length);
}

function positive(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1)
    throw new TypeError(`${name} must be a positive integer, got ${value}`);
  return value;
}

/** What is logged of a database error: never the rows, which hold event data. */
function errorSummary(err: unknown): { code?: unknown; message: string } {
  const e = err as { code?: unknown; message?: unknown } | null;
  return { code: e?.code, message: String(e?.message ?? err) };
}
