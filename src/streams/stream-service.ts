import { createHash, randomBytes } from 'node:crypto';
import type { z } from 'zod';
import type { Db } from '../db/db.js';
import { HubError, isHubError } from '../errors.js';
import type { HubEventBus } from '../events/hub-events.js';
import type { Logger } from '../logger.js';
import type { UpstreamPool } from '../mcp/upstream-pool.js';
import type {
  SequencedEvent,
  ServerResponse,
  StreamServerToClient,
  WireError,
} from '../realtime/stream-events.js';
import type { ServerRegistry } from '../servers/service.js';
import {
  cancelSchema,
  clientMessageSchema,
  DEFAULT_BUFFER_SIZE,
  MAX_BUFFER_SIZE,
  publishSchema,
  reservedArgs,
  type StreamConfigInput,
  topicSchema,
} from './payloads.js';
import {
  insertStreamSession,
  markStreamsInactive,
  type StreamCounters,
  selectActiveStreams,
  selectUnattendedStreams,
  updateStreamCounters,
} from './queries.js';
import {
  type Appended,
  type Audience,
  type Awaitable,
  MemoryStreamStore,
  type Replay,
  type StoredMessage,
  type StreamRecord,
  type StreamStore,
} from './stream-store.js';
import { TokenBucket } from './token-bucket.js';

/** One connected socket of a stream, as the service sees it (the socket layer implements it). */
export interface StreamPeer {
  readonly clientId: string;
  send<E extends keyof StreamServerToClient>(event: E, payload: Parameters<StreamServerToClient[E]>[0]): void;
  disconnect(reason: string): void;
}

export interface StreamLimits {
  /** Messages per second per socket (any client → hub event). */
  ratePerSecond: number;
  /** Largest client → hub message, as JSON. */
  maxMessageBytes: number;
  /** Requests one client id may have running at once (on one hub). */
  maxInFlight: number;
  /** Topics one client id may subscribe to; distinct topics per stream. */
  maxTopicsPerClient: number;
  maxTopicsPerStream: number;
  /** Bytes (as JSON) the replay buffer of one stream may hold, besides its buffer_size messages. */
  replayBufferBytes: number;
  /**
   * What one socket that does not read may have queued (encoded bytes, and packets) before it is cut off;
   * both leave room for a full replay, which a reconnecting client is sent at once.
   */
  slowConsumerBytes: number;
  slowConsumerPackets: number;
}

export interface StreamServiceOptions {
  db: Db;
  pool: UpstreamPool;
  registry: ServerRegistry;
  events: HubEventBus;
  log: Logger;
  /** Where the shared state of streams lives; in this process when absent. */
  store?: StreamStore;
  limits?: Partial<StreamLimits>;
  /** Lifetime of a handshake token. Default 15 min. */
  tokenTtlMs?: number;
  /** A stream nobody is connected to and nothing happened on for this long is stopped. Default 30 min. */
  idleTimeoutMs?: number;
  /** How often counters are written to mcp_stream_sessions. Default 2 s. */
  flushIntervalMs?: number;
  /** A stream this hub serves is vouched for in mcp_stream_sessions at least this often. Default 10 s. */
  heartbeatMs?: number;
  /**
   * An active stream row nobody vouched for in this long is swept (marked inactive; with a shared store only
   * once its shared state has expired too). Checked every minute. Default 60 s.
   */
  staleAfterMs?: number;
}

export const DEFAULT_IDLE_TIMEOUT_MS = 30 * 60_000;

/** How often each hub looks for active streams that no hub serves any more (see sweepUnattended). */
const SWEEP_INTERVAL_MS = 60_000;

export const defaultStreamLimits: StreamLimits = {
  ratePerSecond: 5000,
  maxMessageBytes: 1024 * 1024,
  maxInFlight: 256,
  maxTopicsPerClient: 32,
  maxTopicsPerStream: 256,
  replayBufferBytes: 64 * 1024 * 1024,
  slowConsumerBytes: 80 * 1024 * 1024,
  slowConsumerPackets: MAX_BUFFER_SIZE + 10_000,
};

/**
 * A socket attached on this hub. While its replay is read (from Redis) live messages wait in `queue`; after
 * it, those numbered up to `floor` were replayed already (or are gone) and are dropped.
 */
interface LocalPeer {
  peer: StreamPeer;
  clientId: string;
  queue: StoredMessage[] | undefined;
  floor: number;
}

/** What this hub holds of a stream it serves: its sockets, running requests and counters. */
interface Session {
  record: StreamRecord;
  id: string;
  serverId: number;
  routes: Record<string, string>;
  limits: StreamLimits;
  startedAt: Date;
  peers: Set<LocalPeer>;
  inFlight: Map<string, Map<string | number, AbortController>>;
  /**
   * Ids for client-messages sent without one: `<clientId>#<autoIdPrefix>.<n>`. The prefix is drawn when this hub
   * opens the session, so that hubs sharing a stream (and a hub that reopened it) never hand out the same id.
   */
  autoIdPrefix: string;
  autoId: number;
  received: number;
  sent: number;
  /** What of received/sent is already in mcp_stream_sessions (each hub adds its own deltas). */
  flushedReceived: number;
  flushedSent: number;
  /** When this hub last wrote the stream's row (performance.now()). */
  writtenAt: number;
  lastActivity: number;
  unsubscribe: () => void;
}

/** A message sequenced on one hub, handed to the others (socket.io adapter) for their sockets. */
export interface RelayedMessage {
  streamId: string;
  message: StoredMessage;
  subscribers?: string[];
}

export interface StartedStream {
  streamId: string;
  wsUrl: string;
  token: string;
  expiresAt: string;
}

export interface StreamStatus {
  streamId: string;
  serverId: number;
  clientId: string;
  clientIds: string[];
  connectedClients: number;
  startedAt: string;
  uptimeMs: number;
  messagesReceived: number;
  messagesSent: number;
  topics: string[];
  lastSeq: number;
  active: boolean;
}

/** What the handshake established: the socket layer keeps it and passes it back with each event. */
export interface StreamContext {
  streamId: string;
  clientId: string;
}

const RESERVED_TYPES = new Set([
  'list-tools',
  'call-tool',
  'list-resources',
  'read-resource',
  'list-prompts',
  'get-prompt',
  'ping',
]);

const tokenDigest = (token: string) => createHash('sha256').update(token).digest('base64url');

export function toWireError(err: unknown): WireError {
  if (isHubError(err)) return err.toJSON();
  return new HubError('SB_ERR_INTERNAL', err instanceof Error ? err.message : String(err)).toJSON();
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function zodDetail(error: { issues: { path: PropertyKey[]; message: string }[] }): string {
  return error.issues.map((i) => `${i.path.map(String).join('.') || '(value)'}: ${i.message}`).join('; ');
}

function reachesLive(
  audience: Audience,
  clientId: string,
  subscribers: ReadonlySet<string> | undefined,
): boolean {
  if (audience.kind === 'all') return true;
  if (audience.kind === 'client') return audience.clientId === clientId;
  return subscribers?.has(clientId) === true;
}

/**
 * Stream sessions between clients and one upstream server: handshake tokens, routing of client messages to
 * MCP requests, per-stream sequence numbers and replay buffer, topics, limits, counters and idle expiry.
 * Transport-free: sockets reach it through StreamPeer. The state several hubs must share lives in the
 * StreamStore; with a shared store, messages and stops sequenced here are relayed to the other hubs.
 */
export class StreamService {
  readonly #sessions = new Map<string, Session>();
  readonly #loading = new Map<string, Promise<Session>>();
  /** Idle streams being stopped or let go of (over Redis that outlasts a tick). */
  readonly #expiring = new Set<Session>();
  readonly #store: StreamStore;
  readonly #limits: StreamLimits;
  readonly #tokenTtlMs: number;
  readonly #idleTimeoutMs: number;
  readonly #flushIntervalMs: number;
  readonly #heartbeatMs: number;
  readonly #staleAfterMs: number;
  #sweptAt = performance.now();
  #relay: ((m: RelayedMessage) => void) | undefined;
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(private readonly o: StreamServiceOptions) {
    this.#store = o.store ?? new MemoryStreamStore();
    this.#limits = { ...defaultStreamLimits, ...o.limits };
    this.#tokenTtlMs = o.tokenTtlMs ?? 15 * 60_000;
    this.#idleTimeoutMs = o.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    this.#flushIntervalMs = o.flushIntervalMs ?? 2_000;
    this.#heartbeatMs = o.heartbeatMs ?? 10_000;
    this.#staleAfterMs = o.staleAfterMs ?? 60_000;
  }

  get limits(): StreamLimits {
    return this.#limits;
  }

  get shared(): boolean {
    return this.#store.shared;
  }

  /** With a shared store: how messages sequenced here reach the other hubs (they call receive()). */
  useRelay(send: (m: RelayedMessage) => void): void {
    this.#relay = send;
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => this.#tick(), this.#flushIntervalMs);
    this.#timer.unref();
  }

  /**
   * Writes the counters and stops the timer. Idempotent. One hub: every stream stops (its clients get
   * stream-stopped). Shared store: the streams go on; this hub's clients are disconnected so that they
   * resume on another hub with lastSeq.
   */
  async close(): Promise<void> {
    if (this.#closed) return this.#flushing;
    this.#closed = true;
    clearInterval(this.#timer);
    const sessions = [...this.#sessions.values()];
    const reason = 'hub shutting down';
    if (this.#store.shared) for (const s of sessions) this.#endLocal(s, reason);
    else await Promise.all(sessions.map((s) => this.#stopSession(s, reason)));
    const rows = sessions.map((s) => this.#counters(s, this.#store.shared));
    this.#flushing = this.#flushing.then(() => this.#write(rows));
    await this.#flushing;
  }

  #assertOpen(): void {
    if (this.#closed) throw new HubError('SB_ERR_CLOSED', 'the stream service');
  }

  async startStream(input: {
    serverId: number;
    clientId: string;
    streamConfig?: StreamConfigInput;
  }): Promise<StartedStream> {
    this.#assertOpen();
    await this.o.registry.require(input.serverId);
    const config = input.streamConfig ?? {};
    let epochMs = Date.now();
    let id = `stream-${input.serverId}-${input.clientId}-${epochMs}`;
    while (await this.#taken(id)) id = `stream-${input.serverId}-${input.clientId}-${++epochMs}`;
    const record: StreamRecord = {
      id,
      serverId: input.serverId,
      clientId: input.clientId,
      config,
      startedAt: epochMs,
      bufferSize: Math.min(config.buffer_size ?? DEFAULT_BUFFER_SIZE, MAX_BUFFER_SIZE),
      bufferBytes: this.#limits.replayBufferBytes,
    };
    await insertStreamSession(this.o.db, {
      id,
      serverId: input.serverId,
      clientId: input.clientId,
      config,
      startedAt: new Date(epochMs),
    });
    await this.#store.create(record);
    const session = this.#open(record);
    for (const topic of config.topics ?? [])
      await this.#store.subscribe(id, input.clientId, topic, session.limits);
    const { token, expiresAt } = await this.issueToken(id, input.clientId);
    return { streamId: id, wsUrl: `/mcp-stream/${id}`, token, expiresAt };
  }

  async #taken(id: string): Promise<boolean> {
    if (this.#sessions.has(id)) return true;
    const [record, stopped] = await Promise.all([this.#store.load(id), this.#store.stoppedReason(id)]);
    return record !== undefined || stopped !== undefined;
  }

  /** The local session of a stream record: limits from its config, upstream notifications forwarded. */
  #open(record: StreamRecord): Session {
    const { config } = record;
    const limits: StreamLimits = {
      ...this.#limits,
      ratePerSecond: Math.min(
        this.#limits.ratePerSecond,
        config.rate_limit_per_second ?? Number.POSITIVE_INFINITY,
      ),
      maxInFlight: Math.min(this.#limits.maxInFlight, config.max_in_flight ?? Number.POSITIVE_INFINITY),
    };
    const session: Session = {
      record,
      id: record.id,
      serverId: record.serverId,
      routes: config.routes ?? {},
      limits,
      startedAt: new Date(record.startedAt),
      peers: new Set(),
      inFlight: new Map(),
      autoIdPrefix: randomBytes(3).toString('hex'),
      autoId: 0,
      received: 0,
      sent: 0,
      flushedReceived: 0,
      flushedSent: 0,
      writtenAt: performance.now(),
      lastActivity: performance.now(),
      unsubscribe: () => {},
    };
    this.#sessions.set(record.id, session);
    // Each hub forwards the notifications of its own connection to the server (its own pool).
    session.unsubscribe = this.o.pool.subscribe(record.serverId, (n) => {
      this.#send(session, { kind: 'all' }, 'server-notification', { method: n.method, params: n.params });
    });
    return session;
  }

  /** A handshake token for one client id on one stream. */
  async issueToken(
    streamId: string,
    clientId: string,
    opts: { ttlMs?: number } = {},
  ): Promise<{ token: string; expiresAt: string }> {
    this.#assertOpen();
    await this.#require(streamId);
    await this.#store.addClient(streamId, clientId);
    const token = `sbst_${randomBytes(24).toString('base64url')}`;
    const expiresAt = Date.now() + (opts.ttlMs ?? this.#tokenTtlMs);
    await this.#store.saveToken(tokenDigest(token), { streamId, clientId, expiresAt });
    return { token, expiresAt: new Date(expiresAt).toISOString() };
  }

  /** Active, or stopped recently enough to be remembered (so a late handshake learns that it stopped). */
  async isKnown(streamId: string): Promise<boolean> {
    return this.#sessions.has(streamId) || (await this.#taken(streamId));
  }

  /** The local session, loaded from the store when another hub started the stream. */
  async #require(streamId: string): Promise<Session> {
    const session = this.#sessions.get(streamId);
    if (session) return session;
    const stopped = await this.#store.stoppedReason(streamId);
    if (stopped !== undefined)
      throw new HubError('SB_ERR_STREAM_STOPPED', streamId, { streamId, reason: stopped });
    let loading = this.#loading.get(streamId);
    if (!loading) {
      loading = (async () => {
        const record = await this.#store.load(streamId);
        if (!record) throw new HubError('SB_ERR_NOT_FOUND', `Stream ${streamId}`, { streamId });
        this.#assertOpen();
        return this.#sessions.get(streamId) ?? this.#open(record);
      })().finally(() => this.#loading.delete(streamId));
      this.#loading.set(streamId, loading);
    }
    return loading;
  }

  /** Checks a handshake; throws a HubError whose message says what is wrong. */
  async authenticate(streamId: string, token: string | undefined): Promise<StreamContext> {
    if (this.#closed) throw new HubError('SB_ERR_CLOSED', 'the stream service');
    if (!token)
      throw new HubError('SB_ERR_UNAUTHORIZED', 'a stream token is required: io(wsUrl, { auth: { token } })');
    const entry = await this.#store.findToken(tokenDigest(token));
    if (!entry) throw new HubError('SB_ERR_UNAUTHORIZED', 'the stream token is not valid');
    if (entry.streamId !== streamId)
      throw new HubError('SB_ERR_FORBIDDEN', 'the stream token was issued for another stream');
    if (entry.expiresAt <= Date.now())
      throw new HubError(
        'SB_ERR_UNAUTHORIZED',
        `the stream token has expired; POST /api/mcp/stream/${streamId}/token issues a new one`,
      );
    await this.#require(streamId);
    return { streamId, clientId: entry.clientId };
  }

  /**
   * Registers a connected socket. With lastSeq, it first receives (in order) every buffered message after
   * lastSeq meant for its client id, preceded by a stream-gap when some of them are no longer buffered.
   * Returns the detach function.
   */
  attach(ctx: StreamContext, peer: StreamPeer, lastSeq?: number): () => void {
    const session = this.#sessions.get(ctx.streamId);
    if (!session) throw new HubError('SB_ERR_STREAM_STOPPED', ctx.streamId);
    const local: LocalPeer = { peer, clientId: peer.clientId, queue: undefined, floor: 0 };
    if (lastSeq !== undefined) {
      const replay = this.#store.replay(ctx.streamId, peer.clientId, lastSeq);
      if (replay instanceof Promise) {
        local.queue = [];
        replay.then(
          (r) => this.#replayed(local, lastSeq, r),
          (err: unknown) => {
            this.o.log.warn({ err, streamId: ctx.streamId }, 'could not read the replay buffer');
            this.#replayed(local, lastSeq, undefined);
          },
        );
      } else this.#replayed(local, lastSeq, replay);
    }
    session.peers.add(local);
    session.lastActivity = performance.now();
    this.#touch(session, 1);
    return () => {
      if (session.peers.delete(local)) this.#touch(session, -1);
      session.lastActivity = performance.now();
    };
  }

  #replayed(local: LocalPeer, lastSeq: number, r: Replay | undefined): void {
    if (r) {
      if (lastSeq < r.currentSeq && lastSeq + 1 < r.firstSeq)
        local.peer.send('stream-gap', { lastSeq, firstAvailableSeq: r.firstSeq, currentSeq: r.currentSeq });
      for (const m of r.messages) this.#deliver(local.peer, m);
      local.floor = r.currentSeq;
    }
    const queued = local.queue;
    local.queue = undefined;
    for (const m of queued ?? []) if (m.seq > local.floor) this.#deliver(local.peer, m);
  }

  #touch(session: Session, delta: number): void {
    const done = this.#store.touch(session.id, delta);
    if (done instanceof Promise)
      done.catch((err: unknown) =>
        this.o.log.warn({ err, streamId: session.id }, 'could not count the stream connection'),
      );
  }

  /** The per-socket rate limiter for a stream (each socket gets its own). */
  rateLimiter(streamId: string): TokenBucket {
    const { ratePerSecond } = this.#sessions.get(streamId)?.limits ?? this.#limits;
    return new TokenBucket(ratePerSecond, Math.max(1, ratePerSecond));
  }

  /**
   * Every client → hub event goes through here first: counted, recorded, size-checked.
   * Returns the error to answer with, if any.
   */
  admit(ctx: StreamContext, event: string, payload: unknown, bucket: TokenBucket): HubError | undefined {
    const session = this.#sessions.get(ctx.streamId);
    if (!session) return new HubError('SB_ERR_STREAM_STOPPED', ctx.streamId);
    session.received++;
    session.lastActivity = performance.now();
    let bytes: number;
    try {
      bytes = payload === undefined ? 0 : Buffer.byteLength(JSON.stringify(payload) ?? '');
    } catch {
      return new HubError('SB_ERR_VALIDATION', `${event}: the payload is not JSON`);
    }
    this.o.events.emit({
      type: 'stream_message',
      streamId: session.id,
      serverId: session.serverId,
      clientId: ctx.clientId,
      source: 'stream',
      requestBytes: bytes,
      data: {
        direction: 'in',
        event,
        payload: bytes > session.limits.maxMessageBytes ? '(too large)' : payload,
      },
    });
    if (!bucket.take()) {
      return new HubError(
        'SB_ERR_RATE_LIMITED',
        `more than ${session.limits.ratePerSecond} messages per second`,
        {
          retryAfterSeconds: Math.ceil(bucket.retryAfterSeconds()),
        },
      );
    }
    if (bytes > session.limits.maxMessageBytes)
      return new HubError(
        'SB_ERR_PAYLOAD_TOO_LARGE',
        `${bytes} bytes (limit ${session.limits.maxMessageBytes})`,
      );
    return undefined;
  }

  /** Reports a refused event to the client that sent it (client-messages get a server-response instead). */
  refuse(ctx: StreamContext, event: string, error: HubError): void {
    const session = this.#sessions.get(ctx.streamId);
    if (session)
      this.#send(session, { kind: 'client', clientId: ctx.clientId }, 'stream-error', {
        event,
        error: error.toJSON(),
      });
  }

  /** An error server-response to a client-message that was refused before routing. */
  refuseMessage(ctx: StreamContext, raw: unknown, error: HubError): Awaitable<ServerResponse | undefined> {
    const session = this.#sessions.get(ctx.streamId);
    if (!session) return undefined;
    const m = isPlainObject(raw) ? raw : {};
    const id = typeof m.id === 'string' || typeof m.id === 'number' ? m.id : autoId(session, ctx.clientId);
    const type = typeof m.type === 'string' ? m.type.slice(0, 255) : '';
    return this.#send(session, { kind: 'client', clientId: ctx.clientId }, 'server-response', {
      id,
      type,
      ok: false,
      error: error.toJSON(),
      durationMs: 0,
    }) as Awaitable<ServerResponse | undefined>;
  }

  /** Routes a client-message to the upstream server and sends the server-response (also returned). */
  async handleMessage(ctx: StreamContext, raw: unknown): Promise<ServerResponse | undefined> {
    const session = this.#sessions.get(ctx.streamId);
    if (!session) return undefined;
    const parsed = clientMessageSchema.safeParse(raw);
    if (!parsed.success)
      return this.refuseMessage(
        ctx,
        raw,
        new HubError('SB_ERR_VALIDATION', `client-message ${zodDetail(parsed.error)}`),
      );
    const { type, id: givenId, data, topic, ...rest } = parsed.data;
    const id = givenId ?? autoId(session, ctx.clientId);
    let running = session.inFlight.get(ctx.clientId);
    if (!running) {
      running = new Map();
      session.inFlight.set(ctx.clientId, running);
    }
    if (running.size >= session.limits.maxInFlight)
      return this.refuseMessage(
        ctx,
        { id, type },
        new HubError(
          'SB_ERR_QUEUE_FULL',
          `${running.size} requests of ${ctx.clientId} are running (limit ${session.limits.maxInFlight})`,
        ),
      );
    if (running.has(id))
      return this.refuseMessage(
        ctx,
        { id, type },
        new HubError('SB_ERR_CONFLICT', `request id ${id} is already running`),
      );
    const controller = new AbortController();
    running.set(id, controller);
    const started = performance.now();
    let body: Omit<ServerResponse, 'seq'>;
    try {
      let args: Record<string, unknown>;
      if (isPlainObject(data)) args = data;
      else if (data === undefined) args = rest;
      else throw new HubError('SB_ERR_VALIDATION', 'client-message data: must be an object');
      const outcome = await this.#route(session, ctx.clientId, id, type, args, controller);
      body = { id, type, ok: outcome.ok, result: outcome.result, durationMs: performance.now() - started };
    } catch (err) {
      body = { id, type, ok: false, error: toWireError(err), durationMs: performance.now() - started };
    } finally {
      running.delete(id);
    }
    if (!this.#sessions.has(session.id)) return undefined;
    const sent = this.#send(session, { kind: 'client', clientId: ctx.clientId }, 'server-response', body);
    const response = (sent instanceof Promise ? await sent : sent) as ServerResponse | undefined;
    if (response && topic !== undefined)
      this.#send(session, { kind: 'topic', topic }, 'topic-message', {
        topic,
        data: response,
        from: ctx.clientId,
      });
    return response;
  }

  async #route(
    session: Session,
    clientId: string,
    id: string | number,
    type: string,
    args: Record<string, unknown>,
    controller: AbortController,
  ): Promise<{ ok: boolean; result: unknown }> {
    const serverId = session.serverId;
    const onProgress = (p: { progress: number; total?: number; message?: string }) => {
      const payload: { id: string | number; progress: number; total?: number; message?: string } = {
        id,
        progress: p.progress,
      };
      if (p.total !== undefined) payload.total = p.total;
      if (p.message !== undefined) payload.message = p.message;
      this.#send(session, { kind: 'client', clientId }, 'server-progress', payload);
    };
    const callTool = async (name: string, toolArgs: Record<string, unknown> | undefined) => {
      const r = await this.o.pool.callTool(serverId, name, toolArgs, {
        controller,
        onProgress,
        source: 'stream',
        streamId: session.id,
        clientId,
      });
      return { ok: r.ok, result: r.result };
    };
    const routed = session.routes[type];
    if (routed !== undefined) return callTool(routed, args);
    if (!RESERVED_TYPES.has(type)) return callTool(type, args);
    const parse = <T>(
      kind: string,
      r: { success: true; data: T } | { success: false; error: z.ZodError },
    ): T => {
      if (!r.success) throw new HubError('SB_ERR_VALIDATION', `${kind} ${zodDetail(r.error)}`);
      return r.data;
    };
    // Read only here: a tool call (nearly every message) hands the pool the controller (CallOptions.controller).
    const { signal } = controller;
    const opts = { signal, onProgress };
    switch (type) {
      case 'list-tools':
        return { ok: true, result: { tools: await this.o.pool.listTools(serverId, { signal }) } };
      case 'call-tool': {
        const a = parse('call-tool', reservedArgs['call-tool'].safeParse(args));
        return callTool(a.name, a.arguments);
      }
      case 'list-resources': {
        const a = parse('list-resources', reservedArgs['list-resources'].safeParse(args));
        const result = await this.o.pool.request(
          serverId,
          'list-resources',
          a.cursor ? { cursor: a.cursor } : undefined,
          opts,
        );
        return { ok: true, result };
      }
      case 'read-resource': {
        const a = parse('read-resource', reservedArgs['read-resource'].safeParse(args));
        return {
          ok: true,
          result: await this.o.pool.request(serverId, 'read-resource', { uri: a.uri }, opts),
        };
      }
      case 'list-prompts':
        return { ok: true, result: await this.o.pool.request(serverId, 'list-prompts', undefined, opts) };
      case 'get-prompt': {
        const a = parse('get-prompt', reservedArgs['get-prompt'].safeParse(args));
        const params = a.arguments ? { name: a.name, arguments: a.arguments } : { name: a.name };
        return { ok: true, result: await this.o.pool.request(serverId, 'get-prompt', params, opts) };
      }
      default:
        return { ok: true, result: await this.#ping(serverId, signal) };
    }
  }

  /**
   * The 2026-07-28 revision has no ping; for a server of that era a fresh tools/list is the round trip that
   * shows it is alive, answered with the empty result a ping would have.
   */
  async #ping(serverId: number, signal: AbortSignal): Promise<unknown> {
    try {
      return await this.o.pool.request(serverId, 'ping', undefined, { signal });
    } catch (err) {
      const sdkCode = isHubError(err)
        ? (err.details as { sdkCode?: string } | undefined)?.sdkCode
        : undefined;
      if (sdkCode !== 'METHOD_NOT_SUPPORTED_BY_PROTOCOL_VERSION') throw err;
      await this.o.pool.listTools(serverId, { signal, refresh: true });
      return {};
    }
  }

  /** Cancels a running request of this client on this hub (upstream gets notifications/cancelled). */
  cancel(ctx: StreamContext, raw: unknown): void {
    const parsed = cancelSchema.safeParse(raw);
    if (!parsed.success) throw new HubError('SB_ERR_VALIDATION', `cancel ${zodDetail(parsed.error)}`);
    const session = this.#local(ctx.streamId);
    const controller = session.inFlight.get(ctx.clientId)?.get(parsed.data.id);
    if (!controller) throw new HubError('SB_ERR_NOT_FOUND', `Running request ${parsed.data.id}`);
    controller.abort(new HubError('SB_ERR_CANCELLED', `request ${parsed.data.id} cancelled by the client`));
  }

  /** The local session of a connected socket's stream (it was loaded at the handshake). */
  #local(streamId: string): Session {
    const session = this.#sessions.get(streamId);
    if (!session) throw new HubError('SB_ERR_STREAM_STOPPED', streamId);
    return session;
  }

  subscribe(ctx: StreamContext, raw: unknown): Awaitable<void> {
    const topic = this.#topic(raw, 'subscribe-topic');
    const session = this.#local(ctx.streamId);
    return this.#store.subscribe(ctx.streamId, ctx.clientId, topic, session.limits);
  }

  unsubscribe(ctx: StreamContext, raw: unknown): Awaitable<void> {
    const topic = this.#topic(raw, 'unsubscribe-topic');
    this.#local(ctx.streamId);
    return this.#store.unsubscribe(ctx.streamId, ctx.clientId, topic);
  }

  /** Sends a topic-message to every subscriber of the topic; returns its seq. */
  publish(ctx: StreamContext, raw: unknown): Awaitable<number | undefined> {
    const parsed = publishSchema.safeParse(raw);
    if (!parsed.success) throw new HubError('SB_ERR_VALIDATION', `publish ${zodDetail(parsed.error)}`);
    const session = this.#local(ctx.streamId);
    const { topic, data } = parsed.data;
    const sent = this.#send(session, { kind: 'topic', topic }, 'topic-message', {
      topic,
      data: data ?? null,
      from: ctx.clientId,
    });
    return sent instanceof Promise ? sent.then((m) => m?.seq) : sent?.seq;
  }

  #topic(raw: unknown, event: string): string {
    const parsed = topicSchema.safeParse(raw);
    if (!parsed.success) throw new HubError('SB_ERR_VALIDATION', `${event} topic ${zodDetail(parsed.error)}`);
    return parsed.data;
  }

  #deliver(peer: StreamPeer, m: StoredMessage): void {
    (peer.send as (event: string, payload: unknown) => void)(m.event, m.payload);
  }

  /** Numbers and buffers one hub → client message (in the store), then delivers, relays and records it. */
  #send<E extends SequencedEvent>(
    session: Session,
    audience: Audience,
    event: E,
    body: Omit<Parameters<StreamServerToClient[E]>[0], 'seq'>,
  ): Awaitable<StoredMessage['payload'] | undefined> {
    session.sent++;
    session.lastActivity = performance.now();
    const appended = this.#store.append(session.record, audience, event, body as Record<string, unknown>);
    if (!(appended instanceof Promise)) return this.#sent(session, appended);
    return appended.then(
      (a) => this.#sent(session, a),
      (err: unknown) => {
        this.o.log.warn({ err, streamId: session.id, event }, 'could not sequence a stream message; dropped');
        return undefined;
      },
    );
  }

  #sent(session: Session, appended: Appended | undefined): StoredMessage['payload'] | undefined {
    if (!appended) return undefined;
    const { message, subscribers, bytes } = appended;
    this.#deliverLocal(session, message, subscribers);
    if (this.#relay)
      this.#relay({
        streamId: session.id,
        message,
        ...(subscribers ? { subscribers: [...subscribers] } : {}),
      });
    const { audience } = message;
    this.o.events.emit({
      type: 'stream_message',
      streamId: session.id,
      serverId: session.serverId,
      clientId: audience.kind === 'client' ? audience.clientId : null,
      source: 'stream',
      responseBytes: bytes,
      data: {
        direction: 'out',
        event: message.event,
        payload: message.payload,
        ...(audience.kind === 'topic' ? { topic: audience.topic } : {}),
      },
    });
    return message.payload;
  }

  #deliverLocal(session: Session, m: StoredMessage, subscribers: ReadonlySet<string> | undefined): void {
    for (const p of session.peers) {
      if (!reachesLive(m.audience, p.clientId, subscribers)) continue;
      if (p.queue) p.queue.push(m);
      else if (m.seq > p.floor) this.#deliver(p.peer, m);
    }
  }

  /** A message sequenced on another hub: delivered to this hub's sockets of the stream. */
  receive(r: RelayedMessage): void {
    const session = this.#sessions.get(r.streamId);
    if (!session) return;
    this.#deliverLocal(session, r.message, r.subscribers ? new Set(r.subscribers) : undefined);
    if (r.message.event === 'stream-stopped') {
      this.#endLocal(session, String(r.message.payload.reason ?? 'stopped'));
      this.#flushing = this.#flushing.then(() => this.#write([this.#counters(session, false)]));
    }
  }

  async status(): Promise<StreamStatus[]> {
    const now = Date.now();
    const rows = this.#store.shared ? await selectActiveStreams(this.o.db) : [];
    const stored = new Map(rows.map((r) => [r.id, r]));
    const ids = new Set([...this.#sessions.keys(), ...stored.keys()]);
    const gone: string[] = [];
    const statuses = await Promise.all(
      [...ids].map(async (id): Promise<StreamStatus | undefined> => {
        const local = this.#sessions.get(id);
        const [record, d] = await Promise.all([
          local?.record ?? this.#store.load(id),
          this.#store.describe(id),
        ]);
        if (!record || !d) {
          if (!local) gone.push(id);
          return undefined;
        }
        const row = stored.get(id);
        const unflushed = local
          ? { received: local.received - local.flushedReceived, sent: local.sent - local.flushedSent }
          : { received: 0, sent: 0 };
        return {
          streamId: id,
          serverId: record.serverId,
          clientId: record.clientId,
          clientIds: d.clientIds,
          connectedClients: d.connected ?? local?.peers.size ?? 0,
          startedAt: new Date(record.startedAt).toISOString(),
          uptimeMs: now - record.startedAt,
          messagesReceived: row ? row.messagesReceived + unflushed.received : (local?.received ?? 0),
          messagesSent: row ? row.messagesSent + unflushed.sent : (local?.sent ?? 0),
          topics: d.topics,
          lastSeq: d.lastSeq,
          active: true,
        };
      }),
    );
    // Active in the database but gone from Redis (expired while no hub served it): no longer active.
    if (gone.length > 0) await markStreamsInactive(this.o.db, gone);
    return statuses.filter((s) => s !== undefined);
  }

  /** Disconnects every client of the stream (on every hub) with the reason, cancels its requests, marks it inactive. */
  async stop(streamId: string, reason = 'stopped'): Promise<{ disconnected: number }> {
    const session = await this.#require(streamId);
    const live = this.#store.shared ? await this.#store.liveness(streamId) : undefined;
    const disconnected = live?.connected ?? session.peers.size;
    await this.#stopSession(session, reason);
    await this.#write([this.#counters(session, false)]);
    return { disconnected };
  }

  /** stream-stopped is sequenced while the stream still exists, then it is marked stopped before anyone hears of it. */
  async #stopSession(session: Session, reason: string): Promise<void> {
    session.sent++;
    const appended = await this.#store.append(session.record, { kind: 'all' }, 'stream-stopped', {
      streamId: session.id,
      reason,
    });
    await this.#store.markStopped(session.id, reason);
    this.#sent(session, appended);
    this.#endLocal(session, reason);
  }

  /** This hub lets go of a stream: its requests are cancelled, its sockets disconnected. */
  #endLocal(session: Session, reason: string): void {
    if (this.#sessions.get(session.id) !== session) return;
    this.#sessions.delete(session.id);
    session.unsubscribe();
    for (const running of session.inFlight.values())
      for (const c of running.values())
        c.abort(new HubError('SB_ERR_CANCELLED', `stream ${session.id} stopped`));
    for (const p of [...session.peers]) p.peer.disconnect(reason);
  }

  #tick(): void {
    const now = performance.now();
    for (const s of [...this.#sessions.values()]) {
      // Shared keys expire after a while without activity; connected sockets keep them.
      if (this.#store.shared && s.peers.size > 0) this.#touch(s, 0);
      const running = [...s.inFlight.values()].some((m) => m.size > 0);
      if (
        s.peers.size === 0 &&
        !running &&
        now - s.lastActivity > this.#idleTimeoutMs &&
        !this.#expiring.has(s)
      ) {
        this.#expiring.add(s);
        this.#expire(s)
          .catch((err: unknown) => this.o.log.warn({ err, streamId: s.id }, 'could not stop idle stream'))
          .finally(() => this.#expiring.delete(s));
      }
    }
    this.#store.sweep(Date.now());
    this.#flushing = this.#flushing.then(() => this.#flush());
    if (now - this.#sweptAt >= SWEEP_INTERVAL_MS) {
      this.#sweptAt = now;
      this.sweepUnattended().catch((err: unknown) =>
        this.o.log.warn({ err }, 'could not sweep unattended streams'),
      );
    }
  }

  /**
   * Marks inactive the active streams that no hub has vouched for in `staleAfterMs` (their hub died): all of
   * them with streams in one process, and with a shared store those whose shared state has expired too
   * (until then a client may still resume one on any hub). Returns their ids.
   */
  async sweepUnattended(): Promise<string[]> {
    const candidates = await selectUnattendedStreams(this.o.db, this.#staleAfterMs, [
      ...this.#sessions.keys(),
    ]);
    const gone = this.#store.shared
      ? (
          await Promise.all(candidates.map(async (id) => ((await this.#store.load(id)) ? undefined : id)))
        ).filter((id) => id !== undefined)
      : candidates;
    if (gone.length === 0) return [];
    await markStreamsInactive(this.o.db, gone);
    this.o.log.info({ streams: gone }, 'streams no hub serves any more marked inactive');
    return gone;
  }

  /** Idle here: stopped if idle on every hub too, otherwise only let go of on this one. */
  async #expire(s: Session): Promise<void> {
    if (this.#store.shared) {
      const live = await this.#store.liveness(s.id);
      if (live && (live.connected > 0 || Date.now() - live.lastActivity <= this.#idleTimeoutMs)) {
        this.#endLocal(s, 'idle on this hub');
        await this.#write([this.#counters(s, true)]);
        return;
      }
    }
    this.o.log.info({ streamId: s.id }, 'stream expired after being idle');
    await this.stop(s.id, 'idle');
  }

  /** The counters this hub has not written yet; active false marks the stream inactive, true leaves it. */
  #counters(s: Session, active: boolean): StreamCounters {
    const row = {
      id: s.id,
      messagesReceived: s.received - s.flushedReceived,
      messagesSent: s.sent - s.flushedSent,
      active,
    };
    s.flushedReceived = s.received;
    s.flushedSent = s.sent;
    s.writtenAt = performance.now();
    return row;
  }

  /** Writes the counters that changed, and vouches for the streams whose row was not written for a while. */
  async #flush(): Promise<void> {
    const rows: StreamCounters[] = [];
    const due = performance.now() - this.#heartbeatMs;
    for (const s of this.#sessions.values())
      if (s.received !== s.flushedReceived || s.sent !== s.flushedSent || s.writtenAt <= due)
        rows.push(this.#counters(s, true));
    await this.#write(rows);
  }

  async #write(rows: StreamCounters[]): Promise<void> {
    try {
      await updateStreamCounters(this.o.db, rows);
    } catch (err) {
      this.o.log.warn({ err }, 'could not write stream counters');
    }
  }
}

function autoId(session: Session, clientId: string): string {
  return `${clientId}#${session.autoIdPrefix}.${++session.autoId}`;
}
