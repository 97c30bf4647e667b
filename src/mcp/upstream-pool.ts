import type {
  CallToolResult,
  Client,
  Implementation,
  PriorDiscovery,
  Progress,
  RequestOptions,
  Tool,
} from '@modelcontextprotocol/client';
import { HubError, isHubError } from '../errors.js';
import type { CallOutcome, EventSource, HubEventBus } from '../events/hub-events.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { type EffectiveServerConfig, effectiveConfig, type ServerRecord } from '../servers/payloads.js';
import { version } from '../version.js';
import type { BackoffOptions } from './backoff.js';
import { classifyError, classifyResult } from './classify-outcome.js';
import { ConcurrencyGate } from './concurrency-gate.js';
import { ConnectionSet, ConnectionSetClosedError, raceAbort } from './connection-set.js';
import { deadline, deadlineOn } from './deadline.js';
import {
  defaultResultCacheLimits,
  ResultCache,
  type ResultCacheLimits,
  resultCacheKey,
} from './result-cache.js';
import type { UpstreamConnection, UpstreamNotification } from './upstream-connection.js';
import { resolveTransportSpec, type TransportSpec, transportFingerprint } from './upstream-transport.js';

export type { UpstreamNotification } from './upstream-connection.js';

export interface UpstreamPoolOptions {
  loadServer: (id: number) => Promise<ServerRecord | undefined>;
  events: HubEventBus;
  metrics: Metrics;
  log: Logger;
  /** Default cwd of stdio servers, and what a relative cwd is resolved against. */
  projectRoot: string;
  /** Commands stdio servers may run; empty allows any. */
  stdioAllow: readonly string[];
  clientInfo?: Implementation;
  /** What every stdio child gets besides its own env. Default: the hub's PATH, and nothing else. */
  childEnv?: Readonly<Record<string, string>>;
  onConnected?: (serverId: number, info: ConnectedInfo) => void;
  /** How long invalidate() lets calls running on the old connections finish. Default 5 s. */
  drainMs?: number;
  /** Bounds of each server's cache of read-only tool results (`cache_ttl_ms`). */
  resultCache?: Partial<ResultCacheLimits>;
  backoff?: BackoffOptions;
  /** How long a remembered protocol-era verdict is reused before probing again. Default 1 h. */
  verdictTtlMs?: number;
  /**
   * Limit of a connection's start (spawn and handshake), apart from the call timeouts: `timeout_ms` is
   * about calls, and starting a server (npx, uvx) can take longer. Default 30 s.
   */
  connectTimeoutMs?: number;
}

export interface ConnectedInfo {
  protocolVersion: string;
  protocolEra: 'legacy' | 'modern';
}

/** Per-call options; the ids are recorded with the call's event. */
export interface CallOptions {
  /** Aborting it cancels the call: the upstream request is cancelled (notifications/cancelled). */
  signal?: AbortSignal;
  /**
   * Instead of `signal`, for a caller with a controller that serves this call alone: aborting it cancels the
   * call, and the pool aborts it too when the call's total time (max_total_timeout_ms) runs out. The call then
   * needs one AbortSignal instead of two.
   */
  controller?: AbortController;
  /** Progress notifications of the upstream request. */
  onProgress?: (progress: Progress) => void;
  source?: EventSource;
  clientId?: string;
  streamId?: string;
  bundleId?: string;
}

export interface ToolCallResult {
  /** The MCP result as the server sent it (including a tool error's `isError: true`). */
  result: CallToolResult;
  outcome: 'success' | 'tool_error';
  ok: boolean;
  durationMs: number;
  /** `result` as JSON: made once for the event log's size and the cache, and sent as is by the REST route. */
  resultJson: string;
}

// A type alias, not an interface: it must stay assignable to Record<string, unknown> (the registry's view).
export type PoolStatus = {
  connected: boolean;
  connections: number;
  inFlight: number;
  queued: number;
  protocolVersion: string | null;
  protocolEra: string | null;
  lastError: string | null;
  /** Pids of the live stdio children. */
  pids: number[];
};

/** MCP requests other than tool calls, for streams and the gateway; params and results as in the SDK. */
interface RequestKinds {
  'list-resources': {
    params: Parameters<Client['listResources']>[0];
    result: Awaited<ReturnType<Client['listResources']>>;
  };
  'list-resource-templates': {
    params: Parameters<Client['listResourceTemplates']>[0];
    result: Awaited<ReturnType<Client['listResourceTemplates']>>;
  };
  'read-resource': {
    params: Parameters<Client['readResource']>[0];
    result: Awaited<ReturnType<Client['readResource']>>;
  };
  'list-prompts': {
    params: Parameters<Client['listPrompts']>[0];
    result: Awaited<ReturnType<Client['listPrompts']>>;
  };
  'get-prompt': {
    params: Parameters<Client['getPrompt']>[0];
    result: Awaited<ReturnType<Client['getPrompt']>>;
  };
  ping: { params: undefined; result: Awaited<ReturnType<Client['ping']>> };
}
export type RequestKind = keyof RequestKinds;
export type RequestParams<K extends RequestKind> = RequestKinds[K]['params'];
export type RequestResult<K extends RequestKind> = RequestKinds[K]['result'];

type NotificationListener = (notification: UpstreamNotification) => void;

/** What one call learnt on its way through #run, for its event: the entry, and how it waited for a slot. */
interface RunHolder {
  entry?: ServerEntry;
  /** Time spent waiting for a max_concurrency slot (0 when one was free). */
  queueMs?: number;
  /** Calls of the server running once this one had its slot, itself included. */
  concurrency?: number;
  /** Answered from the result cache: no slot (so no queueMs or concurrency for the slot analysis), no request. */
  cached?: boolean;
  /** Answered with the outcome of an identical call under way (coalesced): no slot, no request either. */
  coalesced?: boolean;
  /** The total time ran out on the caller's own controller: its aborted signal is not a cancellation. */
  timedOut?: boolean;
}

/** The caller's signal aborted, and not by the pool's own time limit on the caller's controller. */
function cancelledByCaller(signal: AbortSignal | undefined, holder: RunHolder): boolean {
  return signal?.aborted === true && !holder.timedOut;
}

/** What identical calls waiting on a call are answered with: its result (as JSON: each gets a copy) or error. */
type SharedAnswer =
  | { json: string; outcome: ToolCallResult['outcome']; ok: boolean }
  | { error: HubError; outcome: CallOutcome };

/**
 * A call of a cacheable tool under way. Identical calls made meanwhile (tool and canonical arguments) wait for
 * its answer instead of asking the server again: `answer` settles with it, or with undefined when the caller
 * behind it cancelled, and then each of them calls for itself.
 */
interface SharedCall {
  generation: number;
  waiting: number;
  answer: Promise<SharedAnswer | undefined>;
}

/** The call that others wait for, and how it gives them its answer (once; later answers are ignored). */
interface Sharing {
  call: SharedCall;
  settle(answer: SharedAnswer | undefined): void;
}

/** One tool call as its event and metrics describe it. */
interface RecordedCall {
  serverId: number;
  holder: RunHolder;
  toolName: string;
  outcome: CallOutcome;
  ok: boolean;
  errorCode: string | null;
  durationMs: number;
  opts: CallOptions;
  args: Record<string, unknown> | undefined;
  result?: CallToolResult;
  /** The result's JSON, with the result (its size is recorded). */
  resultJson?: string;
  error?: HubError;
}

interface ServerEntry {
  id: number;
  record: ServerRecord;
  config: EffectiveServerConfig;
  name: string;
  log: Logger;
  gate: ConcurrencyGate;
  /** Undefined for a disabled server. */
  connections: ConnectionSet | undefined;
  /** transportFingerprint of what the connections talk to; undefined for a disabled server. */
  fingerprint: string | undefined;
  /** Results of read-only tools (cache_ttl_ms > 0). */
  cache: ResultCache;
  /** Bumped whenever the cache is dropped, so that a call which started before cannot store a stale result. */
  cacheGeneration: number;
  /** Cacheable calls under way, by cache key (see SharedCall). */
  sharedCalls: Map<string, SharedCall>;
  tools: Tool[] | undefined;
  toolsLoading: Promise<Tool[]> | undefined;
  /** Bumped by tools/list_changed so that a listing already under way does not overwrite the news. */
  toolsGeneration: number;
  /** Replaced by invalidate() or close() (not by an in-place reconfigure()): takes no new calls. */
  retired: boolean;
  protocolVersion: string | null;
  protocolEra: 'legacy' | 'modern' | null;
}

/** Sent between the layers of one call when its server entry was replaced under it: try the new one. */
class Reroute extends Error {}

const defaultVerdictTtlMs = 3_600_000;

/**
 * The upstream MCP servers, one entry per server shared by every caller (REST, streams, bundles,
 * gateway): lazily connected, `instances` connections behind one `max_concurrency` gate with a bounded
 * queue, call timeouts reset by progress up to a total, retries only where the request cannot have been
 * processed, cancellation passed upstream, and one `tool_call` event plus metrics per tool call.
 */
export class UpstreamPool {
  /** Called when a server's negotiated protocol differs from what its record holds (to persist it). */
  onConnected: ((serverId: number, info: ConnectedInfo) => void) | undefined;

  readonly #o: UpstreamPoolOptions;
  readonly #log: Logger;
  readonly #clientInfo: Implementation;
  readonly #childEnv: Readonly<Record<string, string>>;
  readonly #entries = new Map<number, ServerEntry>();
  readonly #loading = new Map<number, Promise<ServerEntry>>();
  /** Bumped by invalidate() and reconfigure(): a load or reconfigure that started before is stale. */
  readonly #epochs = new Map<number, number>();
  readonly #subscribers = new Map<number, Set<NotificationListener>>();
  readonly #verdicts = new Map<number, { fingerprint: string; verdict: PriorDiscovery; at: number }>();
  readonly #retiring = new Set<Promise<void>>();
  readonly #cacheLimits: ResultCacheLimits;
  #closing: Promise<void> | undefined;

  constructor(options: UpstreamPoolOptions) {
    this.#o = options;
    // The hub may hand over a logger already bound to this module; binding it twice repeats the key.
    this.#log =
      options.log.bindings().module === 'upstream' ? options.log : options.log.child({ module: 'upstream' });
    this.#clientInfo = options.clientInfo ?? {
      name: 'switchboard',
      version,
    };
    // The one place the pool looks at the hub's environment: PATH, so that `node`, `npx`, `uvx` resolve.
    this.#childEnv = options.childEnv ?? (process.env.PATH === undefined ? {} : { PATH: process.env.PATH });
    this.onConnected = options.onConnected;
    this.#cacheLimits = { ...defaultResultCacheLimits, ...options.resultCache };
  }

  /**
   * Calls a tool. A tool error (`isError`) is returned, not thrown; every other failure throws a HubError.
   * With `cache_ttl_ms` > 0, a success of a tool annotated `readOnlyHint: true` answers the same call (tool
   * and arguments, whatever their key order) for that long without asking the server again, and identical
   * calls made while one is under way wait for its outcome rather than each asking the server (coalesced;
   * they get no progress notifications of it).
   */
  async callTool(
    serverId: number,
    name: string,
    args: Record<string, unknown> | undefined,
    callOptions: CallOptions = {},
  ): Promise<ToolCallResult> {
    const started = performance.now();
    const { controller } = callOptions;
    const opts = controller ? { ...callOptions, signal: controller.signal } : callOptions;
    const holder: RunHolder = {};
    const what = `server ${serverId} tool ${name}`;
    let shared: Sharing | undefined;
    try {
      const entry = await this.#entry(serverId);
      holder.entry = entry;
      const tool = await this.#requireTool(serverId, name, opts.signal);
      const ttlMs = entry.config.cache_ttl_ms;
      const cacheKey =
        ttlMs > 0 && tool.annotations?.readOnlyHint === true ? resultCacheKey(name, args) : undefined;
      if (cacheKey !== undefined) {
        const labels = { server: String(serverId), tool: name };
        const answered = { serverId, holder, toolName: name, args, opts };
        const json = entry.cache.get(cacheKey);
        if (json !== undefined) {
          this.#o.metrics.upstreamCache.inc({ ...labels, result: 'hit' });
          holder.cached = true;
          return this.#answerWith(answered, started, { json, outcome: 'success', ok: true });
        }
        const joined = await this.#joinOrLead(entry, cacheKey, opts.signal, what);
        if ('settle' in joined) {
          this.#o.metrics.upstreamCache.inc({ ...labels, result: 'miss' });
          shared = joined;
        } else {
          this.#o.metrics.upstreamCache.inc({ ...labels, result: 'coalesced' });
          holder.coalesced = true;
          if ('error' in joined) throw joined.error;
          return this.#answerWith(answered, started, joined);
        }
      }
      const generation = entry.cacheGeneration;
      const result = await this.#run(serverId, what, opts, holder, (conn, ro) =>
        conn.client.callTool({ name, arguments: args ?? {} }, ro),
      );
      const { outcome, ok } = classifyResult(result);
      const resultJson = JSON.stringify(result);
      // holder.entry is the entry the call ran on: a reconfigure that replaced the entry, or dropped its
      // cache meanwhile, makes this result one nobody may be answered with later.
      if (
        cacheKey !== undefined &&
        outcome === 'success' &&
        holder.entry === entry &&
        !entry.retired &&
        generation === entry.cacheGeneration
      ) {
        entry.cache.set(cacheKey, resultJson, entry.config.cache_ttl_ms);
      }
      if (shared?.call.waiting) shared.settle({ json: resultJson, outcome, ok });
      const durationMs = performance.now() - started;
      this.#recordCall({
        serverId,
        holder,
        toolName: name,
        outcome,
        ok,
        errorCode: null,
        durationMs,
        opts,
        args,
        result,
        resultJson,
      });
      return { result, outcome, ok, durationMs, resultJson };
    } catch (err) {
      const c = classifyError(err, {
        what,
        cancelled: cancelledByCaller(opts.signal, holder),
        closing: this.#closing !== undefined,
      });
      // A cancellation is this caller's own: the calls waiting on it go and ask for themselves.
      shared?.settle(c.outcome === 'cancelled' ? undefined : { error: c.error, outcome: c.outcome });
      const durationMs = performance.now() - started;
      this.#recordCall({
        serverId,
        holder,
        toolName: name,
        outcome: c.outcome,
        ok: false,
        errorCode: c.error.code,
        durationMs,
        opts,
        args,
        error: c.error,
      });
      throw c.error;
    } finally {
      shared?.settle(undefined);
    }
  }

  /**
   * The answer of an identical call under way; or, when there is none, this call made the one that the next
   * identical calls wait for (in the same turn of the event loop, so that two cannot both take it on). When
   * the call waited for is cancelled by its caller, the first of those waiting to resume takes its place.
   */
  async #joinOrLead(
    entry: ServerEntry,
    key: string,
    signal: AbortSignal | undefined,
    what: string,
  ): Promise<SharedAnswer | Sharing> {
    for (;;) {
      const under = entry.sharedCalls.get(key);
      if (under?.generation !== entry.cacheGeneration) return this.#shareCall(entry, key);
      under.waiting++;
      const answer = await raceAbort(under.answer, signal, what);
      if (answer) return answer;
    }
  }

  /** Answers a call without asking the server: with a cached result, or one shared by an identical call. */
  #answerWith(
    call: Pick<RecordedCall, 'serverId' | 'holder' | 'toolName' | 'args' | 'opts'>,
    started: number,
    answer: Extract<SharedAnswer, { json: string }>,
  ): ToolCallResult {
    const result = JSON.parse(answer.json) as CallToolResult;
    const durationMs = performance.now() - started;
    const { outcome, ok } = answer;
    this.#recordCall({
      ...call,
      outcome,
      ok,
      errorCode: null,
      durationMs,
      result,
      resultJson: answer.json,
    });
    return { result, outcome, ok, durationMs, resultJson: answer.json };
  }

  /** Makes a call the one that identical cacheable calls wait for until it settles (see SharedCall). */
  #shareCall(entry: ServerEntry, key: string): Sharing {
    let resolve!: (answer: SharedAnswer | undefined) => void;
    const call: SharedCall = {
      generation: entry.cacheGeneration,
      waiting: 0,
      answer: new Promise((r) => {
        resolve = r;
      }),
    };
    entry.sharedCalls.set(key, call);
    return {
      call,
      settle(answer: SharedAnswer | undefined) {
        if (entry.sharedCalls.get(key) === call) entry.sharedCalls.delete(key);
        resolve(answer);
      },
    };
  }

  /**
   * Servers answer an unknown tool in different ways (a JSON-RPC error, or an isError result that would
   * pass for a tool failure); checking the cached list gives every caller the same 404. A miss refreshes
   * the list once, in case the server added the tool without saying so.
   */
  async #requireTool(serverId: number, name: string, signal: AbortSignal | undefined): Promise<Tool> {
    const find = (tools: Tool[]) => tools.find((t) => t.name === name);
    const listed = find(await this.listTools(serverId, { signal }));
    if (listed) return listed;
    const fresh = await this.listTools(serverId, { signal, refresh: true });
    const found = find(fresh);
    if (!found) {
      throw new HubError('SB_ERR_TOOL_NOT_FOUND', `"${name}" on server ${serverId}`, {
        serverId,
        tool: name,
        available: fresh.map((t) => t.name),
      });
    }
    return found;
  }

  /** The server's tools: cached per server, dropped on notifications/tools/list_changed and invalidate(). */
  async listTools(serverId: number, opts: { signal?: AbortSignal; refresh?: boolean } = {}): Promise<Tool[]> {
    const entry = await this.#entry(serverId);
    if (!opts.refresh && entry.tools) return entry.tools;
    if (!entry.toolsLoading) {
      const generation = entry.toolsGeneration;
      // Shared by every caller waiting for the list, so it does not take any one caller's signal.
      const loading = this.#request(serverId, 'tools/list', {}, (conn, ro) =>
        conn.client.listTools(undefined, { ...ro, cacheMode: 'bypass' }),
      ).then((r) => {
        if (generation === entry.toolsGeneration && !entry.retired) entry.tools = r.tools;
        return r.tools;
      });
      entry.toolsLoading = loading;
      loading.then(
        () => {
          if (entry.toolsLoading === loading) entry.toolsLoading = undefined;
        },
        () => {
          if (entry.toolsLoading === loading) entry.toolsLoading = undefined;
        },
      );
    }
    return raceAbort(entry.toolsLoading, opts.signal, `server ${serverId} tools/list`);
  }

  /** Any other MCP request (resources, prompts, ping), with the server's timeout, gate and retries. */
  request<K extends RequestKind>(
    serverId: number,
    kind: K,
    params: RequestParams<K>,
    opts: Pick<CallOptions, 'signal' | 'onProgress'> = {},
  ): Promise<RequestResult<K>> {
    const call = (conn: UpstreamConnection, ro: RequestOptions): Promise<unknown> => {
      const c = conn.client;
      switch (kind) {
        case 'list-resources':
          return c.listResources(params as RequestParams<'list-resources'>, { ...ro, cacheMode: 'bypass' });
        case 'list-resource-templates':
          return c.listResourceTemplates(params as RequestParams<'list-resource-templates'>, {
            ...ro,
            cacheMode: 'bypass',
          });
        case 'read-resource':
          return c.readResource(params as RequestParams<'read-resource'>, { ...ro, cacheMode: 'bypass' });
        case 'list-prompts':
          return c.listPrompts(params as RequestParams<'list-prompts'>, { ...ro, cacheMode: 'bypass' });
        case 'get-prompt':
          return c.getPrompt(params as RequestParams<'get-prompt'>, ro);
        case 'ping':
          return c.ping(ro);
        default:
          throw new HubError('SB_ERR_VALIDATION', `unknown request kind ${String(kind)}`);
      }
    };
    return this.#request(serverId, kind, opts, call) as Promise<RequestResult<K>>;
  }

  /** Server notifications (logging, list and resource changes) of one server; returns the unsubscribe. */
  subscribe(serverId: number, listener: NotificationListener): () => void {
    let set = this.#subscribers.get(serverId);
    if (!set) {
      set = new Set();
      this.#subscribers.set(serverId, set);
    }
    set.add(listener);
    return () => {
      const current = this.#subscribers.get(serverId);
      current?.delete(listener);
      if (current?.size === 0) this.#subscribers.delete(serverId);
    };
  }

  /**
   * Forgets a server's record, connections and cached results (after a transport change, disable or
   * delete): the next call loads the record again and connects with it. Calls already running get
   * `drainMs` to finish on the old connections; calls still waiting for a slot move over to the new entry.
   */
  async invalidate(serverId: number): Promise<void> {
    this.#bumpEpoch(serverId);
    this.#loading.delete(serverId);
    const entry = this.#entries.get(serverId);
    if (!entry) return;
    this.#entries.delete(serverId);
    await this.#retire(entry, this.#o.drainMs ?? 5_000);
  }

  /**
   * Applies a server's stored record after an update. While it stays enabled and its transport is the
   * same (transportFingerprint: command, args, env, cwd, url, headers), the live entry takes the new config
   * and its processes stay: see #applyConfig. Otherwise this is invalidate(). Free keys of `config` are
   * hub-side too: nothing hands them to a server (its env and args are the transport).
   */
  async reconfigure(serverId: number): Promise<void> {
    const entry = this.#entries.get(serverId);
    if (!entry?.connections || entry.retired) return this.invalidate(serverId);
    const epoch = this.#bumpEpoch(serverId);
    const record = await this.#o.loadServer(serverId);
    // A later reconfigure() or invalidate() read a newer record, or already replaced the entry.
    if (this.#closing || this.#epochs.get(serverId) !== epoch || this.#entries.get(serverId) !== entry)
      return;
    if (!record?.enabled || this.#fingerprintOf(record) !== entry.fingerprint)
      return this.invalidate(serverId);
    this.#applyConfig(entry, record);
  }

  status(serverId: number): PoolStatus {
    const entry = this.#entries.get(serverId);
    if (!entry) {
      return {
        connected: false,
        connections: 0,
        inFlight: 0,
        queued: 0,
        protocolVersion: null,
        protocolEra: null,
        lastError: null,
        pids: [],
      };
    }
    const conns = entry.connections;
    return {
      connected: (conns?.size ?? 0) > 0,
      connections: conns?.size ?? 0,
      inFlight: entry.gate.inFlight,
      queued: entry.gate.queued,
      protocolVersion: entry.protocolVersion,
      protocolEra: entry.protocolEra,
      lastError: conns?.lastError ?? null,
      pids: conns?.pids ?? [],
    };
  }

  /**
   * Closes every connection and child process. New calls (and calls waiting for a slot) fail with
   * SB_ERR_CLOSED at once; calls already running get `graceMs` (default 0) to finish. Idempotent.
   */
  close(options: { graceMs?: number } = {}): Promise<void> {
    if (!this.#closing) {
      const entries = [...this.#entries.values()];
      this.#entries.clear();
      this.#loading.clear();
      this.#closing = (async () => {
        const graceMs = options.graceMs ?? 0;
        await Promise.allSettled([...entries.map((e) => this.#retire(e, graceMs)), ...this.#retiring]);
        this.#log.info('upstream pool closed');
      })();
    }
    return this.#closing;
  }

  // --- internals -----------------------------------------------------------------------------------

  #bumpEpoch(serverId: number): number {
    const epoch = (this.#epochs.get(serverId) ?? 0) + 1;
    this.#epochs.set(serverId, epoch);
    return epoch;
  }

  /** What `record` connects to; throws when the allow-list or its fields refuse it. */
  #specOf(record: ServerRecord): TransportSpec {
    return resolveTransportSpec(record, {
      projectRoot: this.#o.projectRoot,
      stdioAllow: this.#o.stdioAllow,
      baseEnv: this.#childEnv,
    });
  }

  /** The fingerprint of what `record` connects to; undefined when it cannot connect (its next call says why). */
  #fingerprintOf(record: ServerRecord): string | undefined {
    try {
      return transportFingerprint(this.#specOf(record));
    } catch {
      return undefined;
    }
  }

  /**
   * The new config on the live entry. Calls that start from now on read it (#run, #attempts take
   * `entry.config` once per call, so a running call keeps its timeout and retries); the gate's new limit
   * admits waiting calls at once or lets running ones finish above it; the connection set grows lazily or
   * drains its extra connections.
   */
  #applyConfig(entry: ServerEntry, record: ServerRecord): void {
    const previous = entry.config;
    const config = effectiveConfig(record.config);
    entry.record = record;
    entry.config = config;
    entry.gate.setLimits(config.max_concurrency, config.max_queue);
    entry.connections?.setInstances(config.instances);
    entry.connections?.setIdleTimeout(config.idle_timeout_ms);
    if (config.cache_ttl_ms !== previous.cache_ttl_ms) this.#dropCache(entry);
    entry.log.info({ configVersion: record.configVersion }, 'upstream reconfigured in place');
  }

  #dropCache(entry: ServerEntry): void {
    entry.cache.clear();
    entry.cacheGeneration++;
  }

  #assertOpen(): void {
    if (this.#closing) throw new HubError('SB_ERR_CLOSED', 'The upstream pool');
  }

  /** A request that is not a tool call: metrics, no event (streams and the gateway record their own). */
  async #request<T>(
    serverId: number,
    method: string,
    opts: Pick<CallOptions, 'signal' | 'onProgress'>,
    fn: (conn: UpstreamConnection, ro: RequestOptions) => Promise<T>,
  ): Promise<T> {
    const started = performance.now();
    const what = `server ${serverId} ${method}`;
    const holder: RunHolder = {};
    try {
      const value = await this.#run(serverId, what, opts, holder, fn);
      this.#observe(holder.entry, method, 'success', performance.now() - started);
      return value;
    } catch (err) {
      const c = classifyError(err, {
        what,
        cancelled: cancelledByCaller(opts.signal, holder),
        closing: this.#closing !== undefined,
      });
      this.#observe(holder.entry, method, c.outcome, performance.now() - started);
      throw c.error;
    }
  }

  /** One call through the server's gate and connections, re-routed if the server is reconfigured meanwhile. */
  async #run<T>(
    serverId: number,
    what: string,
    opts: Pick<CallOptions, 'signal' | 'onProgress' | 'controller'>,
    holder: RunHolder,
    fn: (conn: UpstreamConnection, ro: RequestOptions) => Promise<T>,
  ): Promise<T> {
    for (let reroutes = 0; ; reroutes++) {
      this.#assertOpen();
      // A loaded entry (nearly every call) is taken as it is: racing it against the signal would cost a
      // listener and a turn per call for nothing.
      const entry =
        (opts.signal?.aborted ? undefined : this.#entries.get(serverId)) ??
        (await raceAbort(this.#entry(serverId), opts.signal, what));
      holder.entry = entry;
      if (!entry.connections)
        throw new HubError('SB_ERR_SERVER_DISABLED', `${entry.record.name} (${serverId})`);
      let release = entry.gate.tryAcquire();
      const waitStarted = release ? undefined : performance.now();
      try {
        release ??= await this.#waitForSlot(entry, opts.signal, entry.config.max_total_timeout_ms, what);
      } catch (err) {
        if (entry.retired && !this.#closing && !opts.signal?.aborted && reroutes < 3) continue;
        throw err;
      } finally {
        if (waitStarted !== undefined)
          holder.queueMs = (holder.queueMs ?? 0) + performance.now() - waitStarted;
      }
      holder.queueMs ??= 0;
      holder.concurrency = entry.gate.inFlight;
      try {
        return await this.#attempts(entry, entry.connections, what, opts, holder, fn);
      } catch (err) {
        if (err instanceof Reroute && reroutes < 3) continue;
        if (err instanceof Reroute)
          throw new HubError('SB_ERR_UPSTREAM_UNAVAILABLE', `${what}: server reconfigured`);
        throw err;
      } finally {
        release();
      }
    }
  }

  async #waitForSlot(entry: ServerEntry, signal: AbortSignal | undefined, maxWaitMs: number, what: string) {
    // A free slot needs no timer: the common case stays allocation-free.
    const free = signal?.aborted ? undefined : entry.gate.tryAcquire();
    if (free) return free;
    const wait = deadline(signal, maxWaitMs, `${what}: no free slot`);
    try {
      return await entry.gate.acquire(wait.signal);
    } catch (err) {
      if (wait.expired && !signal?.aborted) {
        throw new HubError('SB_ERR_UPSTREAM_TIMEOUT', `${what}: no free slot within ${maxWaitMs} ms`, {
          maxConcurrency: entry.gate.limit,
        });
      }
      throw err;
    } finally {
      wait.dispose();
    }
  }

  /**
   * Runs the call, retrying (up to `retries`) only when the connection failed before any answer. Each
   * request gets `timeout_ms`, reset by progress, up to `max_total_timeout_ms`. Opening a connection has
   * its own limit (connectTimeoutMs); a connection that will not be retried within `timeout_ms`
   * (backoff after failures) fails the call at once.
   */
  async #attempts<T>(
    entry: ServerEntry,
    connections: ConnectionSet,
    what: string,
    opts: Pick<CallOptions, 'signal' | 'onProgress' | 'controller'>,
    holder: RunHolder,
    fn: (conn: UpstreamConnection, ro: RequestOptions) => Promise<T>,
  ): Promise<T> {
    const cfg = entry.config;
    for (let attempt = 0; ; attempt++) {
      let conn: UpstreamConnection;
      try {
        conn = await connections.acquire(opts.signal, cfg.timeout_ms);
      } catch (err) {
        if (err instanceof ConnectionSetClosedError && entry.retired && !this.#closing) throw new Reroute();
        // A connect that failed sent nothing: as safe to retry as it gets.
        if (
          isHubError(err) &&
          err.code === 'SB_ERR_UPSTREAM_UNAVAILABLE' &&
          attempt < cfg.retries &&
          !opts.signal?.aborted
        ) {
          entry.log.debug({ attempt: attempt + 1, err: err.message }, 'retrying after failed connect');
          continue;
        }
        throw err;
      }
      let answered = false;
      // The SDK checks maxTotalTimeout only when progress arrives, and then fails the request without
      // telling the server. An abort does both right: the request is cancelled upstream, on time.
      const limit = `max_total_timeout_ms (${cfg.max_total_timeout_ms} ms) exceeded`;
      const total = opts.controller
        ? deadlineOn(opts.controller, cfg.max_total_timeout_ms, limit)
        : deadline(opts.signal, cfg.max_total_timeout_ms, limit);
      const ro: RequestOptions = {
        signal: total.signal,
        timeout: Math.min(cfg.timeout_ms, cfg.max_total_timeout_ms),
        resetTimeoutOnProgress: true,
        // Always asked for: the progress token is what lets a slow tool keep its call alive.
        onprogress: (progress) => {
          answered = true;
          opts.onProgress?.(progress);
        },
      };
      try {
        const value = await fn(conn, ro);
        connections.noteHealthy();
        return value;
      } catch (err) {
        if (total.expired) holder.timedOut = true;
        const c = classifyError(err, { what, cancelled: cancelledByCaller(opts.signal, holder) });
        if (c.connectionLost) {
          connections.discard(conn, c.error.message);
          if (!answered && !opts.signal?.aborted && !this.#closing) {
            if (entry.retired) throw new Reroute();
            if (attempt < cfg.retries) {
              entry.log.debug(
                { attempt: attempt + 1, err: c.error.message },
                'retrying after lost connection',
              );
              continue;
            }
          }
        } else if (c.outcome === 'protocol_error') {
          connections.noteHealthy();
        }
        throw err;
      } finally {
        total.dispose();
        connections.release(conn);
      }
    }
  }

  async #entry(serverId: number): Promise<ServerEntry> {
    const existing = this.#entries.get(serverId);
    if (existing) return existing;
    let loading = this.#loading.get(serverId);
    if (!loading) {
      loading = this.#load(serverId);
      this.#loading.set(serverId, loading);
      const clear = () => {
        if (this.#loading.get(serverId) === loading) this.#loading.delete(serverId);
      };
      loading.then(clear, clear);
    }
    return loading;
  }

  async #load(serverId: number): Promise<ServerEntry> {
    const epoch = this.#epochs.get(serverId) ?? 0;
    const record = await this.#o.loadServer(serverId);
    this.#assertOpen();
    if (!record) throw new HubError('SB_ERR_NOT_FOUND', `Server ${serverId}`);
    if ((this.#epochs.get(serverId) ?? 0) !== epoch) return this.#entry(serverId);
    const already = this.#entries.get(serverId);
    if (already) return already;
    const entry = this.#createEntry(record);
    this.#entries.set(serverId, entry);
    return entry;
  }

  #createEntry(record: ServerRecord): ServerEntry {
    const id = record.id;
    const config = effectiveConfig(record.config);
    const name = `server ${id}`;
    const log = this.#log.child({ serverId: id });
    const labels = { server: String(id) };
    const m = this.#o.metrics;
    const gInFlight = m.poolInFlight.labels(labels);
    const gQueued = m.poolQueued.labels(labels);
    const gConnections = m.poolConnections.labels(labels);
    const reconnects = m.poolReconnects.labels(labels);
    // The spec is resolved before anything is cached: a command outside the allow-list fails every call.
    const spec = record.enabled ? this.#specOf(record) : undefined;
    const fingerprint = spec && transportFingerprint(spec);
    const entry: ServerEntry = {
      id,
      record,
      config,
      name,
      log,
      gate: new ConcurrencyGate({
        name,
        limit: config.max_concurrency,
        maxQueue: config.max_queue,
        onChange: () => {
          if (entry.retired) return;
          gInFlight.set(entry.gate.inFlight);
          gQueued.set(entry.gate.queued);
        },
      }),
      connections: undefined,
      fingerprint,
      cache: new ResultCache(this.#cacheLimits),
      cacheGeneration: 0,
      sharedCalls: new Map(),
      tools: undefined,
      toolsLoading: undefined,
      toolsGeneration: 0,
      retired: false,
      protocolVersion: record.protocolVersion,
      protocolEra:
        record.protocolEra === 'legacy' || record.protocolEra === 'modern' ? record.protocolEra : null,
    };
    if (spec && fingerprint) {
      const ttl = this.#o.verdictTtlMs ?? defaultVerdictTtlMs;
      entry.connections = new ConnectionSet({
        name,
        spec,
        instances: config.instances,
        idleTimeoutMs: config.idle_timeout_ms,
        connectTimeoutMs: this.#o.connectTimeoutMs ?? 30_000,
        clientInfo: this.#clientInfo,
        log,
        ...(this.#o.backoff ? { backoff: this.#o.backoff } : {}),
        verdict: {
          get: () => {
            const v = this.#verdicts.get(id);
            return v && v.fingerprint === fingerprint && Date.now() - v.at < ttl ? v.verdict : undefined;
          },
          set: (verdict) => {
            if (verdict) this.#verdicts.set(id, { fingerprint, verdict, at: Date.now() });
            else this.#verdicts.delete(id);
          },
        },
        onNotification: (n) => this.#onNotification(entry, n),
        onConnected: (conn) => this.#onConnectionReady(entry, conn),
        onReconnect: () => reconnects.inc(),
        onCountChange: () => {
          if (!entry.retired) gConnections.set(entry.connections?.size ?? 0);
        },
      });
    }
    return entry;
  }

  #retire(entry: ServerEntry, graceMs: number): Promise<void> {
    entry.retired = true;
    const closing = this.#closing !== undefined;
    entry.gate.close(
      new HubError('SB_ERR_CLOSED', closing ? 'The upstream pool' : `${entry.name} (reconfigured)`),
    );
    const done = (entry.connections?.close(graceMs) ?? Promise.resolve()).then(() => {
      if (!this.#entries.has(entry.id)) {
        const labels = { server: String(entry.id) };
        this.#o.metrics.poolConnections.set(labels, 0);
        this.#o.metrics.poolInFlight.set(labels, 0);
        this.#o.metrics.poolQueued.set(labels, 0);
      }
    });
    this.#retiring.add(done);
    done.finally(() => this.#retiring.delete(done)).catch(() => {});
    return done;
  }

  #onConnectionReady(entry: ServerEntry, conn: UpstreamConnection): void {
    const protocolVersion = conn.protocolVersion;
    const protocolEra = conn.protocolEra;
    if (!protocolVersion || !protocolEra) return;
    if (protocolVersion === entry.protocolVersion && protocolEra === entry.protocolEra) return;
    entry.protocolVersion = protocolVersion;
    entry.protocolEra = protocolEra;
    try {
      this.onConnected?.(entry.id, { protocolVersion, protocolEra });
    } catch (err) {
      entry.log.warn({ err }, 'onConnected listener failed');
    }
  }

  #onNotification(entry: ServerEntry, notification: UpstreamNotification): void {
    const method = notification.method;
    if (method === 'notifications/tools/list_changed') {
      entry.toolsGeneration++;
      entry.tools = undefined;
    }
    // A changed tool or resource may answer differently now: nothing cached before can be trusted.
    if (
      method === 'notifications/tools/list_changed' ||
      method === 'notifications/resources/list_changed' ||
      method === 'notifications/resources/updated'
    ) {
      this.#dropCache(entry);
    }
    const listeners = this.#subscribers.get(entry.id);
    if (!listeners) return;
    for (const listener of listeners) {
      try {
        listener(notification);
      } catch (err) {
        entry.log.warn({ err, method: notification.method }, 'notification subscriber failed');
      }
    }
  }

  #observe(entry: ServerEntry | undefined, tool: string, outcome: CallOutcome, durationMs: number): void {
    if (!entry) return;
    const server = String(entry.id);
    this.#o.metrics.upstreamCalls.inc({ server, tool, outcome });
    this.#o.metrics.upstreamDuration.observe({ server }, durationMs / 1000);
  }

  #recordCall(call: RecordedCall): void {
    const { serverId, toolName, outcome, ok, errorCode, durationMs, opts, args, result, error } = call;
    const { entry, queueMs, concurrency, cached, coalesced } = call.holder;
    this.#observe(entry, toolName, outcome, durationMs);
    this.#o.events.emit({
      type: 'tool_call',
      // An unknown id is not a row of mcp_servers: recording it as server_id would break the insert.
      serverId: entry ? serverId : null,
      toolName,
      outcome,
      ok,
      errorCode,
      durationMs: Math.round(durationMs),
      queueMs: queueMs === undefined ? null : Math.round(queueMs),
      concurrency: concurrency ?? null,
      configVersion: entry?.record.configVersion ?? null,
      requestBytes: Buffer.byteLength(JSON.stringify(args ?? {})),
      responseBytes: call.resultJson === undefined ? null : Buffer.byteLength(call.resultJson),
      source: opts.source ?? null,
      clientId: opts.clientId ?? null,
      streamId: opts.streamId ?? null,
      bundleId: opts.bundleId ?? null,
      data: {
        ...(entry ? {} : { serverId }),
        ...(cached ? { cached: true } : {}),
        ...(coalesced ? { coalesced: true } : {}),
        arguments: args ?? {},
        ...(result ? { result: summarize(result) } : {}),
        ...(error ? { error: { code: error.code, message: error.message } } : {}),
      },
    });
  }
}

/** What the event log keeps of a result: enough to analyse, not the whole payload (images…). */
function summarize(result: CallToolResult): Record<string, unknown> {
  const content = Array.isArray(result.content) ? result.content : [];
  return {
    ...(result.isError ? { isError: true } : {}),
    content: content
      .slice(0, 5)
      .map((c) =>
        c.type === 'text'
          ? { type: 'text', text: c.text.length > 1000 ? `${c.text.slice(0, 1000)}…` : c.text }
          : { type: c.type },
      ),
    ...(content.length > 5 ? { moreContent: content.length - 5 } : {}),
    ...(result.structuredContent !== undefined ? { structuredContent: result.structuredContent } : {}),
  };
}
