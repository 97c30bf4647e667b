import { HubError } from '../errors.js';

/** Gives a slot back. Calling it again is a no-op, so `finally` blocks cannot double-release. */
export type Release = () => void;

interface Waiter {
  resolve: (release: Release) => void;
  reject: (err: unknown) => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  settled: boolean;
}

export interface ConcurrencyGateOptions {
  /** What the gate guards, for error messages ("server 3"). */
  name: string;
  /** Calls allowed to run at once. */
  limit: number;
  /** Calls allowed to wait for a slot; past this, acquire() fails at once with SB_ERR_QUEUE_FULL. */
  maxQueue: number;
  /** Called whenever inFlight or queued changes (metrics). */
  onChange?: () => void;
}

/**
 * `limit` slots and a bounded FIFO queue. Waits are abortable; an aborted waiter leaves the queue at once.
 * Slots are handed over directly on release, so a newcomer can never overtake a waiter.
 */
export class ConcurrencyGate {
  readonly #name: string;
  readonly #onChange: (() => void) | undefined;
  #limit: number;
  #maxQueue: number;
  #active = 0;
  /** FIFO with a moving head: shift() on a long array is O(n). Settled (aborted) waiters are skipped. */
  #queue: Waiter[] = [];
  #head = 0;
  #waiting = 0;
  #closed: HubError | undefined;

  constructor(options: ConcurrencyGateOptions) {
    this.#name = options.name;
    this.#limit = Math.max(1, options.limit);
    this.#maxQueue = Math.max(0, options.maxQueue);
    this.#onChange = options.onChange;
  }

  get inFlight(): number {
    return this.#active;
  }

  get queued(): number {
    return this.#waiting;
  }

  get limit(): number {
    return this.#limit;
  }

  /** A slot now, or undefined when all are taken (or others already wait: FIFO holds). */
  tryAcquire(): Release | undefined {
    if (this.#closed) throw this.#closed;
    if (this.#active >= this.#limit || this.#waiting > 0) return undefined;
    this.#active++;
    this.#onChange?.();
    return this.#makeRelease();
  }

  /** Waits for a slot. Rejects with SB_ERR_QUEUE_FULL, SB_ERR_CANCELLED (signal) or the close error. */
  acquire(signal?: AbortSignal): Promise<Release> {
    try {
      const release = this.tryAcquire();
      if (release) return Promise.resolve(release);
    } catch (err) {
      return Promise.reject(err);
    }
    if (signal?.aborted) return Promise.reject(cancelled(this.#name, signal));
    if (this.#waiting >= this.#maxQueue) {
      return Promise.reject(
        new HubError('SB_ERR_QUEUE_FULL', `${this.#name} has ${this.#waiting} calls waiting`, {
          maxQueue: this.#maxQueue,
          maxConcurrency: this.#limit,
        }),
      );
    }
    return new Promise<Release>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, signal, onAbort: undefined, settled: false };
      if (signal) {
        waiter.onAbort = () => {
          if (waiter.settled) return;
          waiter.settled = true;
          this.#waiting--;
          this.#compact();
          this.#onChange?.();
          reject(cancelled(this.#name, signal));
        };
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      this.#queue.push(waiter);
      this.#waiting++;
      this.#onChange?.();
    });
  }

  /** Applies a new configuration; a higher limit lets waiters in at once. */
  setLimits(limit: number, maxQueue: number): void {
    this.#limit = Math.max(1, limit);
    this.#maxQueue = Math.max(0, maxQueue);
    this.#dispatch();
    this.#onChange?.();
  }

  /** Rejects every waiter with `error`; later acquire() calls fail with it too. Running calls keep their slots. */
  close(error: HubError): void {
    if (this.#closed) return;
    this.#closed = error;
    for (let i = this.#head; i < this.#queue.length; i++) {
      const w = this.#queue[i]!;
      if (w.settled) continue;
      w.settled = true;
      this.#detach(w);
      w.reject(error);
    }
    this.#queue = [];
    this.#head = 0;
    this.#waiting = 0;
    this.#onChange?.();
  }

  #makeRelease(): Release {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#active--;
      this.#dispatch();
      this.#onChange?.();
    };
  }

  #dispatch(): void {
    while (this.#active < this.#limit && this.#waiting > 0) {
      const w = this.#queue[this.#head++]!;
      if (w.settled) continue;
      w.settled = true;
      this.#waiting--;
      this.#detach(w);
      this.#active++;
      w.resolve(this.#makeRelease());
    }
    this.#compact();
  }

  #detach(w: Waiter): void {
    if (w.onAbort) w.signal?.removeEventListener('abort', w.onAbort);
  }

  /** Drops the consumed head (and, when nobody waits, aborted leftovers) so the array does not grow forever. */
  #compact(): void {
    if (this.#waiting === 0) {
      this.#queue = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
  }
}

function cancelled(name: string, signal: AbortSignal): HubError {
  return new HubError('SB_ERR_CANCELLED', `while waiting for a slot on ${name}`, undefined, {
    cause: signal.reason,
  });
}
