import type { Db, Queryable } from '../db/db.js';
import type { Logger } from '../logger.js';
import { insertStepResult } from './queries.js';
import type { StepState } from './workflow-engine.js';

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Stores the step results of one execution as the steps end, in as few commits as it can: results that end
 * while a write is under way (steps of equal latency end together) are written after it in one transaction,
 * and those still waiting when the run ends go in the transaction that stores its end (which does not wait
 * for a write under way, but the end is stored only when both are). On PostgreSQL each
 * commit waits for its WAL flush; on PGlite every statement holds the hub's own thread, so a write also
 * waits until the steps that the same end lets start have been sent.
 */
export class StepResultWriter {
  readonly #db: Db;
  readonly #executionId: string;
  readonly #log: Logger;
  readonly #queue: StepState[] = [];
  readonly #ready: Promise<boolean>;
  #chain: Promise<boolean>;
  #scheduled = false;
  #finishing = false;

  /** `ready` resolves to whether the execution's row, which the results refer to, was written. */
  constructor(db: Db, executionId: string, ready: Promise<boolean>, log: Logger) {
    this.#db = db;
    this.#executionId = executionId;
    this.#log = log;
    this.#ready = ready;
    this.#chain = ready;
  }

  /** Queues a step that has reached its final status. */
  add(step: StepState): void {
    this.#queue.push(step);
    if (this.#scheduled) return;
    this.#scheduled = true;
    this.#chain = this.#chain.then(async (ready) => {
      await nextTurn();
      this.#scheduled = false;
      if (ready && !this.#finishing) await this.#write(this.#queue.splice(0));
      return ready;
    });
  }

  /**
   * Runs `last` in one transaction with the results still queued, and resolves once it and the writes
   * under way are done. When those results cannot be stored, the failure is logged and `last` runs alone.
   */
  async finish<T>(last: (tx: Queryable) => Promise<T>): Promise<T> {
    this.#finishing = true;
    const [, result] = await Promise.all([this.#chain, this.#finish(last)]);
    return result;
  }

  async #finish<T>(last: (tx: Queryable) => Promise<T>): Promise<T> {
    const ready = await this.#ready;
    const batch = this.#queue.splice(0);
    if (ready && batch.length > 0) {
      let stepsWritten = false;
      try {
        return await this.#db.transaction(async (tx) => {
          for (const step of batch) await insertStepResult(tx, this.#executionId, step);
          stepsWritten = true;
          return last(tx);
        });
      } catch (err) {
        if (stepsWritten) throw err;
        this.#failed(err, batch);
      }
    }
    return this.#db.transaction(last);
  }

  async #write(batch: StepState[]): Promise<void> {
    try {
      if (batch.length === 1) await insertStepResult(this.#db, this.#executionId, batch[0]!);
      else {
        await this.#db.transaction(async (tx) => {
          for (const step of batch) await insertStepResult(tx, this.#executionId, step);
        });
      }
    } catch (err) {
      this.#failed(err, batch);
    }
  }

  #failed(err: unknown, batch: StepState[]): void {
    const steps = batch.map((s) => s.step);
    this.#log.error({ err, executionId: this.#executionId, steps }, 'could not store step results');
  }
}
