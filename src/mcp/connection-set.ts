import type { Implementation, PriorDiscovery } from '@modelcontextprotocol/client';
import { HubError } from '../errors.js';
import type { Logger } from '../logger.js';
import { type BackoffOptions, backoffDelay, defaultBackoff } from './backoff.js';
import { describe } from './classify-outcome.js';
import { UpstreamConnection, type UpstreamNotification } from './upstream-connection.js';
import type { TransportSpec } from './upstream-transport.js';

export interface ConnectionSetOptions {
  /** For messages: "server 3". */
  name: string;
  spec: TransportSpec;
  /** Connections (processes, sessions) kept at most; setInstances() changes it. */
  instances: number;
  /** A connection without calls for this long is closed; 0 keeps it. setIdleTimeout() changes it. */
  idleTimeoutMs: number;
  /** Handshake timeout. */
  connectTimeoutMs: number;
  clientInfo: Implementation;
  log: Logger;
  backoff?: BackoffOptions;
  /** The protocol-era verdict shared by every connection to the same server (see UpstreamPool). */
  verdict: { get(): PriorDiscovery | undefined; set(verdict: PriorDiscovery | undefined): void };
  onNotification: (notification: UpstreamNotification) => void;
  onConnected: (connection: UpstreamConnection) => void;
  /** A connection is being opened to replace one that failed or died. */
  onReconnect: () => void;
  /** The number of live connections changed. */
  onCountChange: () => void;
}

/** Thrown by acquire() once the set is closed; the pool re-routes the call when the set was replaced. */
export class ConnectionSetClosedError extends HubError {
  constructor(name: string) {
    super('SB_ERR_CLOSED', `The pool of ${name}`);
  }
}

/**
 * The live connections of one server: opened lazily, up to `instances`, each call placed on the least
 * busy one. A new connection is opened only when every live one is busy. A failed connect or a crash
 * pushes the next attempt back (exponential backoff with jitter); callers waiting for a connection share
 * the one attempt in progress, so a server that cannot start sees one spawn per backoff step.
 */
export class ConnectionSet {
  readonly #o: ConnectionSetOptions;
  readonly #backoff: BackoffOptions;
  #instances: number;
  #idleTimeoutMs: number;
  #ready: UpstreamConnection[] = [];
  /** Taken out by setInstances(): no new calls; closed once their running calls end. */
  readonly #draining = new Set<UpstreamConnection>();
  readonly #connecting = new Set<Promise<UpstreamConnection>>();
  /** Connections in their handshake, closed by close() so that a server that never answers cannot hold it up. */
  readonly #handshaking = new Set<UpstreamConnection>();
  #rr = 0;
  #failures = 0;
  #nextAttemptAt = 0;
  #everConnected = false;
  #lastError: string | null = null;
  #closed = false;
  #closing: Promise<void> | undefined;
  readonly #sleeps = new Set<{ timer: NodeJS.Timeout; resolve: () => void }>();
  #drainWaiters: (() => void)[] = [];

  constructor(options: ConnectionSetOptions) {
    this.#o = options;
    this.#backoff = options.backoff ?? defaultBackoff;
    this.#instances = options.instances;
    this.#idleTimeoutMs = options.idleTimeoutMs;
  }

  get size(): number {
    return this.#ready.length;
  }

  get lastError(): string | null {
    return this.#lastError;
  }

  get pids(): number[] {
    return this.#ready.map((c) => c.pid).filter((p): p is number => p !== null);
  }

  get inFlight(): number {
    let n = 0;
    for (const c of this.#ready) n += c.inFlight;
    for (const c of this.#draining) n += c.inFlight;
    return n;
  }

  /**
   * Changes how many connections are kept. More: opened lazily, as busy calls need them. Fewer: the newest
   * connections beyond the count take no new calls and close once their running calls end.
   */
  setInstances(instances: number): void {
    this.#instances = instances;
    if (this.#ready.length <= instances) return;
    const surplus = this.#ready.slice(instances);
    this.#ready = this.#ready.slice(0, instances);
    for (const c of surplus) {
      if (c.idleTimer) clearTimeout(c.idleTimer);
      c.idleTimer = undefined;
      this.#draining.add(c);
      if (c.inFlight === 0) this.#closeDrained(c);
    }
    this.#o.onCountChange();
  }

  /** Changes the idle timeout; connections idle already are measured against the new value. */
  setIdleTimeout(ms: number): void {
    this.#idleTimeoutMs = ms;
    const now = performance.now();
    for (const c of this.#ready) {
      if (c.inFlight > 0 || !c.ready) continue;
      if (c.idleTimer) clearTimeout(c.idleTimer);
      c.idleTimer = undefined;
      if (ms > 0) this.#armIdle(c, ms - (now - c.lastUsed));
    }
  }

  /**
   * A connection for one call, counted as busy until release(). Waits for a connection being opened (or
   * opens one); fails at once when the next attempt is further away than `maxWaitMs`.
   */
  async acquire(signal: AbortSignal | undefined, maxWaitMs: number): Promise<UpstreamConnection> {
    for (;;) {
      if (this.#closed) throw new ConnectionSetClosedError(this.#o.name);
      const picked = this.#pick();
      if (picked) {
        if (picked.inFlight > 0 && this.#ready.length + this.#connecting.size < this.#instances) this.#grow();
        picked.inFlight++;
        return picked;
      }
      const wait = this.#nextAttemptAt - performance.now();
      if (wait > maxWaitMs) {
        throw new HubError(
          'SB_ERR_UPSTREAM_UNAVAILABLE',
          `${this.#o.name}: ${this.#lastError ?? 'not connected'}; next attempt in ${Math.ceil(wait)} ms`,
          { retryInMs: Math.ceil(wait) },
        );
      }
      if (this.#connecting.size === 0) this.#grow();
      // Wait for the first attempt to settle. Success: loop and pick. Failure: this caller gets it.
      await raceAbort(Promise.race(this.#connecting), signal, this.#o.name);
    }
  }

  /** Ends a call on `connection`. */
  release(connection: UpstreamConnection): void {
    connection.inFlight--;
    connection.lastUsed = performance.now();
    if (connection.inFlight > 0) return;
    if (this.#closed) {
      this.#maybeDrained();
      return;
    }
    if (this.#draining.has(connection)) {
      this.#closeDrained(connection);
      return;
    }
    if (this.#idleTimeoutMs > 0 && !connection.idleTimer && connection.ready) {
      this.#armIdle(connection, this.#idleTimeoutMs);
    }
  }

  /** The server answered: whatever failed before is over. */
  noteHealthy(): void {
    if (this.#failures === 0) return;
    this.#failures = 0;
    this.#nextAttemptAt = 0;
  }

  /** Drops a connection that failed under a call (an HTTP session whose server went away). */
  discard(connection: UpstreamConnection, reason: string): void {
    connection.fail(reason);
  }

  /**
   * Closes every connection. New calls fail at once (ConnectionSetClosedError); with `graceMs`, running
   * calls get that long to finish before their connections close under them.
   */
  close(graceMs = 0): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closed = true;
    for (const sleep of this.#sleeps) {
      clearTimeout(sleep.timer);
      sleep.resolve();
    }
    this.#sleeps.clear();
    for (const c of this.#handshaking) c.close().catch(() => {});
    this.#closing = (async () => {
      await Promise.allSettled([...this.#connecting]);
      if (graceMs > 0 && this.inFlight > 0) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          new Promise<void>((resolve) => this.#drainWaiters.push(resolve)),
          new Promise<void>((resolve) => {
            timer = setTimeout(resolve, graceMs);
          }),
        ]);
        clearTimeout(timer);
      }
      const connections = [...this.#ready, ...this.#draining];
      this.#ready = [];
      this.#o.onCountChange();
      await Promise.allSettled(connections.map((c) => c.close()));
    })();
    return this.#closing;
  }

  #pick(): UpstreamConnection | undefined {
    const n = this.#ready.length;
    if (n === 0) return undefined;
    if (n === 1) return this.#ready[0];
    let best: UpstreamConnection | undefined;
    const start = this.#rr++ % n;
    for (let i = 0; i < n; i++) {
      const c = this.#ready[(start + i) % n]!;
      if (!best || c.inFlight < best.inFlight) best = c;
      if (c.inFlight === 0) break;
    }
    return best;
  }

  #grow(): void {
    const attempt = this.#connectOne();
    this.#connecting.add(attempt);
    attempt.then(
      () => this.#connecting.delete(attempt),
      () => this.#connecting.delete(attempt),
    );
  }

  async #connectOne(): Promise<UpstreamConnection> {
    const wait = this.#nextAttemptAt - performance.now();
    if (wait > 0) await this.#sleep(wait);
    if (this.#closed) throw new ConnectionSetClosedError(this.#o.name);
    if (this.#everConnected || this.#failures > 0) this.#o.onReconnect();
    const connection = new UpstreamConnection({
      spec: this.#o.spec,
      clientInfo: this.#o.clientInfo,
      log: this.#o.log,
      onNotification: this.#o.onNotification,
      onClose: (c, unexpected, reason) => this.#onClosed(c, unexpected, reason),
    });
    const prior = this.#o.verdict.get();
    const started = performance.now();
    this.#handshaking.add(connection);
    try {
      await connection.connect({ prior, timeoutMs: this.#o.connectTimeoutMs });
    } catch (err) {
      if (this.#closed) throw new ConnectionSetClosedError(this.#o.name);
      // A remembered verdict may be stale (the server was upgraded): the next attempt probes again.
      if (prior) this.#o.verdict.set(undefined);
      this.#noteFailure(`cannot connect: ${describe(err)}`);
      throw new HubError(
        'SB_ERR_UPSTREAM_UNAVAILABLE',
        `${this.#o.name}: cannot connect: ${describe(err)}`,
        undefined,
        {
          cause: err,
        },
      );
    } finally {
      this.#handshaking.delete(connection);
    }
    if (this.#closed) {
      await connection.close();
      throw new ConnectionSetClosedError(this.#o.name);
    }
    if (!prior) this.#o.verdict.set(connection.verdict());
    this.#everConnected = true;
    // setInstances() lowered the count while this one was starting: waiting callers pick a kept one.
    if (this.#ready.length >= this.#instances) {
      await connection.close();
      return connection;
    }
    this.#ready.push(connection);
    this.#o.log.info(
      {
        childPid: connection.pid,
        protocolVersion: connection.protocolVersion,
        era: connection.protocolEra,
        // 'reused': the era verdict of an earlier connection skipped the probe (on stdio, a sibling process).
        negotiation: prior ? 'reused' : 'probed',
        ms: Math.round(performance.now() - started),
        connections: this.#ready.length,
      },
      'upstream connected',
    );
    this.#o.onCountChange();
    this.#o.onConnected(connection);
    return connection;
  }

  #onClosed(connection: UpstreamConnection, unexpected: boolean, reason: string): void {
    const i = this.#ready.indexOf(connection);
    if (i >= 0) {
      this.#ready.splice(i, 1);
      this.#o.onCountChange();
    }
    this.#draining.delete(connection);
    if (connection.idleTimer) clearTimeout(connection.idleTimer);
    connection.idleTimer = undefined;
    if (unexpected && !this.#closed) {
      this.#noteFailure(reason);
      this.#o.log.warn({ reason, inFlight: connection.inFlight }, 'upstream connection lost');
    }
  }

  #noteFailure(reason: string): void {
    this.#failures++;
    this.#lastError = reason;
    this.#nextAttemptAt = performance.now() + backoffDelay(this.#failures, this.#backoff);
  }

  #armIdle(connection: UpstreamConnection, ms: number): void {
    connection.idleTimer = setTimeout(
      () => {
        connection.idleTimer = undefined;
        if (this.#closed || !connection.ready || connection.inFlight > 0) return;
        const idleFor = performance.now() - connection.lastUsed;
        if (this.#idleTimeoutMs === 0) return;
        if (idleFor < this.#idleTimeoutMs) {
          this.#armIdle(connection, this.#idleTimeoutMs - idleFor);
          return;
        }
        const i = this.#ready.indexOf(connection);
        if (i >= 0) this.#ready.splice(i, 1);
        this.#o.onCountChange();
        this.#o.log.info(
          { pid: connection.pid, idleMs: Math.round(idleFor) },
          'closing idle upstream connection',
        );
        connection.close().catch(() => {});
      },
      Math.max(1, Math.ceil(ms)),
    );
    connection.idleTimer.unref();
  }

  /** Stays in #draining until gone, so that close() still waits for it. */
  #closeDrained(connection: UpstreamConnection): void {
    connection
      .close()
      .catch(() => {})
      .finally(() => this.#draining.delete(connection));
  }

  #maybeDrained(): void {
    if (this.inFlight > 0) return;
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const w of waiters) w();
  }

  #sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const entry = {
        timer: setTimeout(() => {
          this.#sleeps.delete(entry);
          resolve();
        }, ms),
        resolve,
      };
      entry.timer.unref();
      this.#sleeps.add(entry);
    });
  }
}

/** `promise`, or SB_ERR_CANCELLED as soon as `signal` fires (the promise itself keeps running). */
export function raceAbort<T>(promise: Promise<T>, signal: AbortSignal | undefined, what: string): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted)
    return Promise.reject(new HubError('SB_ERR_CANCELLED', what, undefined, { cause: signal.reason }));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new HubError('SB_ERR_CANCELLED', what, undefined, { cause: signal.reason }));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
