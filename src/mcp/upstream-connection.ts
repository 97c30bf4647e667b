import type { Readable } from 'node:stream';
import { Client, type Implementation, type PriorDiscovery } from '@modelcontextprotocol/client';
import type { Logger } from '../logger.js';
import { describe } from './classify-outcome.js';
import { keepProgressBeforeResponses } from './progress-order.js';
import { type OpenedTransport, openTransport, type TransportSpec } from './upstream-transport.js';

/** A server→client notification passed on to subscribers (logging, list changes, resource updates…). */
export interface UpstreamNotification {
  method: string;
  params?: unknown;
}

export interface UpstreamConnectionOptions {
  spec: TransportSpec;
  clientInfo: Implementation;
  log: Logger;
  onNotification: (notification: UpstreamNotification) => void;
  /** The connection ended after it was ready. `unexpected`: not through close() (a crash, a lost session). */
  onClose: (connection: UpstreamConnection, unexpected: boolean, reason: string) => void;
}

type State = 'new' | 'connecting' | 'ready' | 'closing' | 'closed';

/** stderr of a child is logged at debug level, a line at most this long… */
const STDERR_LINE_MAX = 2_000;
/** …and at most this many lines in a burst, refilled at STDERR_LINES_PER_SEC: a chatty child cannot flood the log. */
const STDERR_BURST = 200;
const STDERR_LINES_PER_SEC = 20;
/** How long close() waits for a killed child to be gone. */
const EXIT_WAIT_MS = 2_000;
/** How long close() gives an HTTP server to end the session (DELETE) before dropping it. */
const TERMINATE_WAIT_MS = 1_000;

/**
 * One SDK client on one transport: a child process (stdio) or an HTTP session. Connects once; never
 * reconnects (the pool replaces a dead connection). close() is idempotent; for stdio it is the SDK's
 * close (end stdin, wait, SIGTERM, wait, SIGKILL) followed by a wait until the child is really gone.
 */
export class UpstreamConnection {
  readonly client: Client;
  readonly #opened: OpenedTransport;
  readonly #options: UpstreamConnectionOptions;
  readonly #log: Logger;
  #state: State = 'new';
  #closing: Promise<void> | undefined;
  #pid: number | null = null;

  /** Calls running on this connection; the pool keeps it. */
  inFlight = 0;
  /** performance.now() of the last call's end, for idle closing. */
  lastUsed = performance.now();
  idleTimer: NodeJS.Timeout | undefined;

  constructor(options: UpstreamConnectionOptions) {
    this.#options = options;
    this.#log = options.log;
    this.#opened = openTransport(options.spec);
    const forward = (method: string) => () => options.onNotification({ method });
    // listChanged (rather than plain notification handlers) because on a 2026-07-28 connection the SDK
    // only receives list changes through the subscriptions/listen stream it opens for this option.
    this.client = new Client(options.clientInfo, {
      versionNegotiation: { mode: 'auto' },
      listChanged: {
        tools: { autoRefresh: false, debounceMs: 0, onChanged: forward('notifications/tools/list_changed') },
        prompts: {
          autoRefresh: false,
          debounceMs: 0,
          onChanged: forward('notifications/prompts/list_changed'),
        },
        resources: {
          autoRefresh: false,
          debounceMs: 0,
          onChanged: forward('notifications/resources/list_changed'),
        },
      },
    });
    this.client.fallbackNotificationHandler = async (notification) => {
      options.onNotification({ method: notification.method, params: notification.params });
    };
    this.client.onclose = () => this.#onTransportClosed();
    this.client.onerror = (err) => this.#onError(err);
    if (this.#opened.stderr) drainStderr(this.#opened.stderr, this.#log);
  }

  get ready(): boolean {
    return this.#state === 'ready';
  }

  /** The child's pid (stdio), null for HTTP or before start. */
  get pid(): number | null {
    return this.#pid ?? this.#opened.pid();
  }

  get protocolVersion(): string | undefined {
    return this.client.getNegotiatedProtocolVersion();
  }

  get protocolEra(): 'legacy' | 'modern' | undefined {
    return this.client.getProtocolEra();
  }

  /** What connect() learned about the server's protocol era, for later connections to skip the probe. */
  verdict(): PriorDiscovery | undefined {
    const era = this.client.getProtocolEra();
    if (era === 'legacy') return { kind: 'legacy' };
    const discover = this.client.getDiscoverResult();
    return era === 'modern' && discover ? { kind: 'modern', discover } : undefined;
  }

  /**
   * Starts the transport and negotiates the protocol era. With a `prior` verdict the SDK skips its probe
   * (on stdio: a throwaway sibling process per connect). Rejects (and cleans up) when it fails.
   */
  async connect(options: { prior?: PriorDiscovery | undefined; timeoutMs: number }): Promise<void> {
    if (this.#state !== 'new') throw new Error(`connect() on a ${this.#state} connection`);
    this.#state = 'connecting';
    try {
      await this.client.connect(
        this.#opened.transport,
        options.prior ? { prior: options.prior, timeout: options.timeoutMs } : { timeout: options.timeoutMs },
      );
    } catch (err) {
      await this.close();
      throw err;
    }
    if (this.#state !== 'connecting') throw new Error('connection closed while connecting');
    keepProgressBeforeResponses(this.#opened.transport);
    this.#pid = this.#opened.pid();
    this.#state = 'ready';
  }

  /** Ends the connection as planned (idle, reconfigured, shutdown). Safe to call any number of times. */
  close(): Promise<void> {
    if (!this.#closing) {
      const wasConnecting = this.#state === 'connecting';
      this.#state = 'closing';
      this.#closing = this.#shutdown(wasConnecting);
    }
    return this.#closing;
  }

  /** Ends a connection that is no longer usable (e.g. an HTTP session whose server went away). */
  fail(reason: string): void {
    if (this.#state !== 'ready') return;
    this.#state = 'closing';
    this.#options.onClose(this, true, reason);
    this.#closing = this.#shutdown(false);
  }

  async #shutdown(handshaking: boolean): Promise<void> {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    const pid = this.pid;
    try {
      await withTimeout(this.#opened.terminate(), TERMINATE_WAIT_MS);
    } catch {
      // The session may already be gone with its server; closing locally is all that is left.
    }
    try {
      // During the era probe the client has not taken the transport over yet, so client.close() would
      // not reach it; closing the transport itself is what aborts the probe (and reaps its sibling).
      if (handshaking) await this.#opened.transport.close();
      await this.client.close();
    } catch (err) {
      this.#log.debug({ err: describe(err) }, 'error while closing upstream connection');
    }
    if (pid !== null) await waitForExit(pid, EXIT_WAIT_MS);
    this.#state = 'closed';
  }

  #onTransportClosed(): void {
    if (this.#state === 'ready') {
      this.#state = 'closed';
      const reason = this.#pid === null ? 'session closed' : `process ${this.#pid} exited`;
      this.#options.onClose(this, true, reason);
    } else if (this.#state === 'connecting') {
      // connect() rejects on its own; nothing to report.
    }
  }

  #onError(err: Error): void {
    const message = describe(err);
    this.#log.debug({ err: message }, 'upstream transport error');
    // A Streamable HTTP session does not close when its server dies: the SDK retries the SSE stream and the
    // calls waiting on it would sit until their timeout. A refused or reset connection ends the session
    // at once so that those calls fail now and the next call opens a new session.
    if (this.#opened.pid() === null && this.#state === 'ready' && isNetworkFailure(err)) this.fail(message);
  }
}

function isNetworkFailure(err: Error): boolean {
  const code = (err as { code?: unknown }).code ?? (err.cause as { code?: unknown } | undefined)?.code;
  if (
    typeof code === 'string' &&
    /^(ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ENETUNREACH|EPIPE|UND_ERR_SOCKET)$/.test(code)
  ) {
    return true;
  }
  return /Maximum reconnection attempts|fetch failed/.test(err.message);
}

function drainStderr(stream: Readable, log: Logger): void {
  let tokens = STDERR_BURST;
  let refilledAt = Date.now();
  let dropped = 0;
  let partial = '';
  stream.setEncoding('utf8');
  stream.on('error', () => {});
  // Always read, even when debug is off: a child blocks once its stderr pipe is full.
  stream.on('data', (chunk: string) => {
    if (!log.isLevelEnabled('debug')) return;
    const lines = (partial + chunk).split('\n');
    partial = (lines.pop() ?? '').slice(0, STDERR_LINE_MAX);
    const now = Date.now();
    tokens = Math.min(STDERR_BURST, tokens + ((now - refilledAt) / 1000) * STDERR_LINES_PER_SEC);
    refilledAt = now;
    for (const line of lines) {
      if (line.length === 0) continue;
      if (tokens < 1) {
        dropped++;
        continue;
      }
      tokens--;
      if (dropped > 0) {
        log.debug({ dropped }, 'upstream stderr lines dropped');
        dropped = 0;
      }
      log.debug({ stderr: line.slice(0, STDERR_LINE_MAX) }, 'upstream stderr');
    }
  });
}

async function withTimeout(promise: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([promise, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** The SDK's close() returns right after SIGKILL; wait until the pid is really gone (bounded). */
async function waitForExit(pid: number, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
