import type { Db } from '../db/db.js';
import { HubError, isHubError } from '../errors.js';
import type { Logger } from '../logger.js';

/**
 * The retention job: events older than `retentionDays` are deleted in small batches, each batch folded into
 * mcp_event_daily_rollup by the same statement, so that a deleted event is always counted in a rollup and
 * never twice. Batches are short single statements that lock only the rows they delete: the recorder's
 * inserts never wait on them, and on PGlite (one connection) other queries run between batches.
 */
export const RETENTION_DEFAULTS = Object.freeze({
  batchSize: 5_000,
  /** Pause between batches, so that a large backlog does not monopolize the database. */
  pauseMs: 20,
  intervalMs: 3_600_000,
  /** First run after start: not during the hub's own start-up. */
  firstRunMs: 60_000,
});

// One statement: delete a batch of the oldest expired events and merge their figures into the rollup.
// Counts, sums and max merge exactly, whatever way the days are cut into batches.
const purgeBatchSql = `WITH doomed AS (
    SELECT id FROM mcp_events WHERE timestamp < ($1::timestamptz AT TIME ZONE 'UTC') ORDER BY timestamp LIMIT $2
  ), gone AS (
    DELETE FROM mcp_events e USING doomed d WHERE e.id = d.id
    RETURNING e.timestamp, e.server_id, e.event_type, e.tool_name, e.ok, e.outcome, e.duration
  ), merged AS (
    INSERT INTO mcp_event_daily_rollup AS r
      (day, server_id, event_type, tool_name, events, ok_count, error_count, timeouts, duration_count,
       duration_sum, duration_max)
    SELECT timestamp::date, COALESCE(server_id, 0), event_type, COALESCE(tool_name, ''), count(*),
           count(*) FILTER (WHERE ok), count(*) FILTER (WHERE NOT ok), count(*) FILTER (WHERE outcome = 'timeout'),
           count(duration), COALESCE(sum(duration), 0), max(duration)
    FROM gone
    GROUP BY 1, 2, 3, 4
    ON CONFLICT (day, server_id, event_type, tool_name) DO UPDATE SET
      events = r.events + EXCLUDED.events,
      ok_count = r.ok_count + EXCLUDED.ok_count,
      error_count = r.error_count + EXCLUDED.error_count,
      timeouts = r.timeouts + EXCLUDED.timeouts,
      duration_count = r.duration_count + EXCLUDED.duration_count,
      duration_sum = r.duration_sum + EXCLUDED.duration_sum,
      duration_max = GREATEST(r.duration_max, EXCLUDED.duration_max)
  )
  SELECT count(*) AS n FROM gone`;

export interface EventRetentionOptions {
  db: Db;
  log: Logger;
  retentionDays: number;
  batchSize?: number;
  pauseMs?: number;
  intervalMs?: number;
  firstRunMs?: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class EventRetention {
  readonly #o: Required<EventRetentionOptions>;
  #state: 'new' | 'started' | 'closed' = 'new';
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<number> | undefined;

  constructor(options: EventRetentionOptions) {
    this.#o = { ...RETENTION_DEFAULTS, ...options };
  }

  /** Schedules the job (first run after firstRunMs, then every intervalMs). Idempotent. */
  start(): void {
    if (this.#state === 'closed') throw new HubError('SB_ERR_CLOSED', 'Event retention');
    if (this.#state === 'started') return;
    this.#state = 'started';
    const tick = (delay: number) => {
      this.#timer = setTimeout(() => {
        this.run()
          .catch((err: unknown) => {
            if (!(isHubError(err) && err.code === 'SB_ERR_CLOSED'))
              this.#o.log.error({ err }, 'event retention failed');
          })
          .finally(() => {
            if (this.#state === 'started') tick(this.#o.intervalMs);
          });
      }, delay);
      this.#timer.unref();
    };
    tick(this.#o.firstRunMs);
  }

  /**
   * Deletes (and rolls up) every event older than the retention window, batch by batch; resolves with the
   * number deleted. A run already in progress is joined rather than doubled.
   */
  run(now = new Date()): Promise<number> {
    if (this.#state === 'closed') return Promise.reject(new HubError('SB_ERR_CLOSED', 'Event retention'));
    this.#running ??= this.#purge(now).finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #purge(now: Date): Promise<number> {
    const cutoff = new Date(now.getTime() - this.#o.retentionDays * 86_400_000).toISOString();
    let total = 0;
    for (;;) {
      const { rows } = await this.#o.db.query<{ n: number }>(purgeBatchSql, [cutoff, this.#o.batchSize]);
      const n = rows[0]?.n ?? 0;
      total += n;
      if (n < this.#o.batchSize || this.#state === 'closed') break;
      await sleep(this.#o.pauseMs);
    }
    if (total > 0) this.#o.log.info({ deleted: total, cutoff }, 'expired events deleted and rolled up');
    return total;
  }

  /** Stops the schedule and waits for a batch in flight. Idempotent. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    clearTimeout(this.#timer);
    await this.#running?.catch(() => {});
  }
}
