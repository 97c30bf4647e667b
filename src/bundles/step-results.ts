import type { Db } from '../db/db.js';
import type { Logger } from '../logger.js';
import { insertStepResults, type WriteOptions } from './queries.js';
import type { StepState } from './workflow-engine.js';

/** How long a finished step's result may wait to be written with others, or with the end of its execution. */
export const STEP_RESULT_DELAY_MS = 250;

/**
 * Stores the step results of one execution in as few statements as it can. A result waits up to
 * STEP_RESULT_DELAY_MS for others, and those still waiting when the run ends are stored by the statement
 * that stores its end: a run of short steps writes once, at its end. Every statement takes time from the
 * steps in flight (the database shares the machine's cores with them), so writing while steps end would
 * delay the steps that end next. The results are in memory meanwhile (GET executions/:id reads them there).
 */
export class StepResultWriter {
  readonly #db: Db;
  readonly #executionId: string;
  readonly #log: Logger;
  readonly #queue: StepState[] = [];
  readonly #ready: Promise<boolean>;
  readonly #options: WriteOptions;
  #chain: Promise<unknown>;
  #timer: NodeJS.Timeout | undefined;
  #finishing = false;

  /** `ready` resolves to whether the execution's row, which the results refer to, was written. */
  constructor(db: Db, executionId: string, ready: Promise<boolean>, log: Logger, options: WriteOptions = {}) {
    this.#db = db;
    this.#options = options;
    this.#executionId = executionId;
    this.#log = log;
    this.#ready = ready;
    this.#chain = ready;
  }

  /** Queues a step that has reached its final status. */
  add(step: StepState): void {
    this.#queue.push(step);
    if (this.#timer || this.#finishing) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      const batch = this.#queue.splice(0);
      this.#chain = this.#chain.then(async () => {
        if (await this.#ready) await this.#write(batch);
      });
    }, STEP_RESULT_DELAY_MS);
  }

  /**
   * Stores the end of the execution with `end(steps)`, given the results still waiting, once the writes
   * under way are done. When that fails, the failure is logged and the end is stored alone: a result the
   * database refuses must not leave the execution running.
   */
  async finish<T>(end: (steps: StepState[]) => Promise<T>): Promise<T> {
    this.#finishing = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#chain;
    const batch = (await this.#ready) ? this.#queue.splice(0) : [];
    if (batch.length > 0) {
      try {
        return await end(batch);
      } catch (err) {
        this.#failed(err, batch);
      }
    }
    return end([]);
  }

  async #write(batch: StepState[]): Promise<void> {
    try {
      await insertStepResults(this.#db, this.#executionId, batch, this.#options);
    } catch (err) {
      this.#failed(err, batch);
    }
  }

  #failed(err: unknown, batch: StepState[]): void {
    const steps = batch.map((s) => s.step);
    this.#log.error({ err, executionId: this.#executionId, steps }, 'could not store step results');
  }
}
