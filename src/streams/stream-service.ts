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
import { insertStreamSession, type StreamCounters, updateStreamCounters } from './queries.js';
import { ReplayBuffer } from './replay-buffer.js';
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
  /** Requests one client id may have running at once. */
  maxInFlight: number;
  /** Topics one client id may subscribe to; distinct topics per stream. */
  maxTopicsPerClient: number;
  maxTopicsPerStream: number;
  /** Bytes (as JSON) the replay buffer of one stream may hold, besides its buffer_size messages. */
  replayBufferBytes: number;
}

export interface StreamServiceOptions {
  db: Db;
  pool: UpstreamPool;
  registry: ServerRegistry;
  events: HubEventBus;
  log: Logger;
  limits?: Partial<StreamLimits>;
  /** Lifetime of a handshake token. Default 15 min. */
  tokenTtlMs?: number;
  /** A stream nobody is connected to and nothing happened on for this long is stopped. Default 30 min. */
  idleTimeoutMs?: number;
  /** How often counters are written to mcp_stream_sessions. Default 2 s. */
  flushIntervalMs?: number;
}

export const defaultStreamLimits: StreamLimits = {
  ratePerSecond: 5000,
  maxMessageBytes: 1024 * 1024,
  maxInFlight: 256,
  maxTopicsPerClient: 32,
  maxTopicsPerStream: 256,
  replayBufferBytes: 64 * 1024 * 1024,
};

type Audience = { kind: 'all' } | { kind: 'client'; clientId: string } | { kind: 'topic'; topic: string };

interface Buffered {
  seq: number;
  event: SequencedEvent;
  payload: { seq: number };
  audience: Audience;
}

interface Session {
  id: string;
  serverId: number;
  clientId: string;
  config: StreamConfigInput;
  routes: Record<string, string>;
  limits: StreamLimits;
  startedAt: Date;
  seq: number;
  buffer: ReplayBuffer<Buffered>;
  peers: Set<StreamPeer>;
  /** Subscriptions belong to the client id, so they survive a reconnect. */
  subscriptions: Map<string, Set<string>>;
  inFlight: Map<string, Map<string | number, AbortController>>;
  clientIds: Set<string>;
  autoId: number;
  received: number;
  sent: number;
  dirty: boolean;
  lastActivity: number;
  unsubscribe: () => void;
}

interface TokenEntry {
  streamId: string;
  clientId: string;
  expiresAt: number;
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
const MAX_STOPPED_REMEMBERED = 1000;

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

/**
 * Stream sessions between clients and one upstream server: handshake tokens, routing of client messages to
 * MCP requests, per-stream sequence numbers and replay buffer, topics, limits, counters and idle expiry.
 * Transport-free: sockets reach it through StreamPeer.
 */
export class StreamService {
  readonly #sessions = new Map<string, Session>();
  readonly #stopped = new Map<string, string>();
  readonly #tokens = new Map<string, TokenEntry>();
  readonly #limits: StreamLimits;
  readonly #tokenTtlMs: number;
  readonly #idleTimeoutMs: number;
  readonly #flushIntervalMs: number;
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(private readonly o: StreamServiceOptions) {
    this.#limits = { ...defaultStreamLimits, ...o.limits };
    this.#tokenTtlMs = o.tokenTtlMs ?? 15 * 60_000;
    this.#idleTimeoutMs = o.idleTimeoutMs ?? 30 * 60_000;
    this.#flushIntervalMs = o.flushIntervalMs ?? 2_000;
  }

  get limits(): StreamLimits {
    return this.#limits;
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => this.#tick(), this.#flushIntervalMs);
    this.#timer.unref();
  }

  /** Stops every stream (its clients are disconnected), writes the counters, stops the timer. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return this.#flushing;
    this.#closed = true;
    clearInterval(this.#timer);
    const sessions = [...this.#sessions.values()];
    for (const s of sessions) this.#stopSession(s, 'hub shutting down');
    const rows = sessions.map((s) => ({
      id: s.id,
      messagesReceived: s.received,
      messagesSent: s.sent,
      active: false,
    }));
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
    while (this.#sessions.has(id) || this.#stopped.has(id))
      id = `stream-${input.serverId}-${input.clientId}-${++epochMs}`;
    const limits: StreamLimits = {
      ...this.#limits,
      ratePerSecond: Math.min(
        this.#limits.ratePerSecond,
        config.rate_limit_per_second ?? Number.POSITIVE_INFINITY,
      ),
      maxInFlight: Math.min(this.#limits.maxInFlight, config.max_in_flight ?? Number.POSITIVE_INFINITY),
    };
    const startedAt = new Date(epochMs);
    const session: Session = {
      id,
      serverId: input.serverId,
      clientId: input.clientId,
      config,
      routes: config.routes ?? {},
      limits,
      startedAt,
      seq: 0,
      buffer: new ReplayBuffer(
        Math.min(config.buffer_size ?? DEFAULT_BUFFER_SIZE, MAX_BUFFER_SIZE),
        limits.replayBufferBytes,
      ),
      peers: new Set(),
      subscriptions: new Map(),
      inFlight: new Map(),
      clientIds: new Set([input.clientId]),
      autoId: 0,
      received: 0,
      sent: 0,
      dirty: false,
      lastActivity: performance.now(),
      unsubscribe: () => {},
    };
    await insertStreamSession(this.o.db, {
      id,
      serverId: input.serverId,
      clientId: input.clientId,
      config,
      startedAt,
    });
    this.#sessions.set(id, session);
    for (const topic of config.topics ?? []) this.#subscriptionsOf(session, input.clientId).add(topic);
    session.unsubscribe = this.o.pool.subscribe(input.serverId, (n) => {
      this.#send(session, { kind: 'all' }, 'server-notification', { method: n.method, params: n.params });
    });
    const { token, expiresAt } = this.issueToken(id, input.clientId);
    return { streamId: id, wsUrl: `/mcp-stream/${id}`, token, expiresAt };
  }

  /** A handshake token for one client id on one stream. */
  issueToken(
    streamId: string,
    clientId: string,
    opts: { ttlMs?: number } = {},
  ): { token: string; expiresAt: string } {
    this.#assertOpen();
    const session = this.#require(streamId);
    session.clientIds.add(clientId);
    const token = `sbst_${randomBytes(24).toString('base64url')}`;
    const expiresAt = Date.now() + (opts.ttlMs ?? this.#tokenTtlMs);
    this.#tokens.set(tokenDigest(token), { streamId, clientId, expiresAt });
    return { token, expiresAt: new Date(expiresAt).toISOString() };
  }

  /** Active, or stopped recently enough to be remembered (so a late handshake learns that it stopped). */
  isKnown(streamId: string): boolean {
    return this.#sessions.has(streamId) || this.#stopped.has(streamId);
  }

  #require(streamId: string): Session {
    const session = this.#sessions.get(streamId);
    if (session) return session;
    const stopped = this.#stopped.get(streamId);
    if (stopped !== undefined)
      throw new HubError('SB_ERR_STREAM_STOPPED', streamId, { streamId, reason: stopped });
    throw new HubError('SB_ERR_NOT_FOUND', `Stream ${streamId}`, { streamId });
  }

  /** Checks a handshake; throws a HubError whose message says what is wrong. */
  authenticate(streamId: string, token: string | undefined): StreamContext {
    if (this.#closed) throw new HubError('SB_ERR_CLOSED', 'the stream service');
    if (!token)
      throw new HubError('SB_ERR_UNAUTHORIZED', 'a stream token is required: io(wsUrl, { auth: { token } })');
    const entry = this.#tokens.get(tokenDigest(token));
    if (!entry) throw new HubError('SB_ERR_UNAUTHORIZED', 'the stream token is not valid');
    if (entry.streamId !== streamId)
      throw new HubError('SB_ERR_FORBIDDEN', 'the stream token was issued for another stream');
    if (entry.expiresAt <= Date.now())
      throw new HubError(
        'SB_ERR_UNAUTHORIZED',
        `the stream token has expired; POST /api/mcp/stream/${streamId}/token issues a new one`,
      );
    this.#require(streamId);
    return { streamId, clientId: entry.clientId };
  }

  /**
   * Registers a connected socket. With lastSeq, it first receives (in order) every buffered message after
   * lastSeq meant for its client id, preceded by a stream-gap when some of them are no longer buffered.
   * Returns the detach function.
   */
  attach(ctx: StreamContext, peer: StreamPeer, lastSeq?: number): () => void {
    const session = this.#require(ctx.streamId);
    if (lastSeq !== undefined && lastSeq < session.seq) {
      const first = session.buffer.oldest()?.seq ?? session.seq + 1;
      if (lastSeq + 1 < first)
        peer.send('stream-gap', { lastSeq, firstAvailableSeq: first, currentSeq: session.seq });
      for (const m of session.buffer) {
        if (m.seq > lastSeq && this.#reaches(session, m.audience, peer.clientId)) this.#deliver(peer, m);
      }
    }
    session.peers.add(peer);
    session.lastActivity = performance.now();
    return () => {
      session.peers.delete(peer);
      session.lastActivity = performance.now();
    };
  }

  /** The per-socket rate limiter for a stream (each socket gets its own). */
  rateLimiter(streamId: string): TokenBucket {
    const { ratePerSecond } = this.#require(streamId).limits;
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
    session.dirty = true;
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
  refuseMessage(ctx: StreamContext, raw: unknown, error: HubError): ServerResponse | undefined {
    const session = this.#sessions.get(ctx.streamId);
    if (!session) return undefined;
    const m = isPlainObject(raw) ? raw : {};
    const id =
      typeof m.id === 'string' || typeof m.id === 'number' ? m.id : `${ctx.clientId}#${++session.autoId}`;
    const type = typeof m.type === 'string' ? m.type.slice(0, 255) : '';
    return this.#send(session, { kind: 'client', clientId: ctx.clientId }, 'server-response', {
      id,
      type,
      ok: false,
      error: error.toJSON(),
      durationMs: 0,
    }) as ServerResponse;
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
    const id = givenId ?? `${ctx.clientId}#${++session.autoId}`;
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
      const outcome = await this.#route(session, ctx.clientId, id, type, args, controller.signal);
      body = { id, type, ok: outcome.ok, result: outcome.result, durationMs: performance.now() - started };
    } catch (err) {
      body = { id, type, ok: false, error: toWireError(err), durationMs: performance.now() - started };
    } finally {
      running.delete(id);
    }
    if (!this.#sessions.has(session.id)) return undefined;
    const response = this.#send(session, { kind: 'client', clientId: ctx.clientId }, 'server-response', body);
    if (topic !== undefined)
      this.#send(session, { kind: 'topic', topic }, 'topic-message', {
        topic,
        data: response,
        from: ctx.clientId,
      });
    return response as ServerResponse;
  }

  async #route(
    session: Session,
    clientId: string,
    id: string | number,
    type: string,
    args: Record<string, unknown>,
    signal: AbortSignal,
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
        signal,
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

  /** Cancels a running request of this client (upstream gets notifications/cancelled). */
  cancel(ctx: StreamContext, raw: unknown): void {
    const parsed = cancelSchema.safeParse(raw);
    if (!parsed.success) throw new HubError('SB_ERR_VALIDATION', `cancel ${zodDetail(parsed.error)}`);
    const session = this.#require(ctx.streamId);
    const controller = session.inFlight.get(ctx.clientId)?.get(parsed.data.id);
    if (!controller) throw new HubError('SB_ERR_NOT_FOUND', `Running request ${parsed.data.id}`);
    controller.abort(new HubError('SB_ERR_CANCELLED', `request ${parsed.data.id} cancelled by the client`));
  }

  subscribe(ctx: StreamContext, raw: unknown): void {
    const topic = this.#topic(raw, 'subscribe-topic');
    const session = this.#require(ctx.streamId);
    const mine = this.#subscriptionsOf(session, ctx.clientId);
    if (mine.has(topic)) return;
    if (mine.size >= session.limits.maxTopicsPerClient)
      throw new HubError(
        'SB_ERR_VALIDATION',
        `at most ${session.limits.maxTopicsPerClient} topics per client`,
      );
    if (!this.#topics(session).has(topic) && this.#topics(session).size >= session.limits.maxTopicsPerStream)
      throw new HubError(
        'SB_ERR_VALIDATION',
        `at most ${session.limits.maxTopicsPerStream} topics per stream`,
      );
    mine.add(topic);
  }

  unsubscribe(ctx: StreamContext, raw: unknown): void {
    const topic = this.#topic(raw, 'unsubscribe-topic');
    this.#require(ctx.streamId).subscriptions.get(ctx.clientId)?.delete(topic);
  }

  /** Sends a topic-message to every subscriber of the topic; returns its seq. */
  publish(ctx: StreamContext, raw: unknown): number {
    const parsed = publishSchema.safeParse(raw);
    if (!parsed.success) throw new HubError('SB_ERR_VALIDATION', `publish ${zodDetail(parsed.error)}`);
    const session = this.#require(ctx.streamId);
    const { topic, data } = parsed.data;
    return this.#send(session, { kind: 'topic', topic }, 'topic-message', {
      topic,
      data: data ?? null,
      from: ctx.clientId,
    }).seq;
  }

  #topic(raw: unknown, event: string): string {
    const parsed = topicSchema.safeParse(raw);
    if (!parsed.success) throw new HubError('SB_ERR_VALIDATION', `${event} topic ${zodDetail(parsed.error)}`);
    return parsed.data;
  }

  #subscriptionsOf(session: Session, clientId: string): Set<string> {
    let set = session.subscriptions.get(clientId);
    if (!set) {
      set = new Set();
      session.subscriptions.set(clientId, set);
    }
    return set;
  }

  #topics(session: Session): Set<string> {
    const all = new Set<string>(session.config.topics ?? []);
    for (const set of session.subscriptions.values()) for (const t of set) all.add(t);
    return all;
  }

  #reaches(session: Session, audience: Audience, clientId: string): boolean {
    if (audience.kind === 'all') return true;
    if (audience.kind === 'client') return audience.clientId === clientId;
    return session.subscriptions.get(clientId)?.has(audience.topic) === true;
  }

  #deliver(peer: StreamPeer, m: Buffered): void {
    (peer.send as (event: string, payload: unknown) => void)(m.event, m.payload);
  }

  /** Numbers, buffers, delivers and records one hub → client message. */
  #send<E extends SequencedEvent>(
    session: Session,
    audience: Audience,
    event: E,
    body: Omit<Parameters<StreamServerToClient[E]>[0], 'seq'>,
  ): { seq: number } {
    const seq = ++session.seq;
    const payload = { ...body, seq };
    const m: Buffered = { seq, event, payload, audience };
    const bytes = JSON.stringify(payload)?.length ?? 0;
    session.buffer.push(m, bytes);
    session.sent++;
    session.dirty = true;
    session.lastActivity = performance.now();
    for (const peer of session.peers)
      if (this.#reaches(session, audience, peer.clientId)) this.#deliver(peer, m);
    this.o.events.emit({
      type: 'stream_message',
      streamId: session.id,
      serverId: session.serverId,
      clientId: audience.kind === 'client' ? audience.clientId : null,
      source: 'stream',
      responseBytes: bytes,
      data: {
        direction: 'out',
        event,
        payload,
        ...(audience.kind === 'topic' ? { topic: audience.topic } : {}),
      },
    });
    return payload;
  }

  status(): StreamStatus[] {
    const now = Date.now();
    return [...this.#sessions.values()].map((s) => ({
      streamId: s.id,
      serverId: s.serverId,
      clientId: s.clientId,
      clientIds: [...s.clientIds],
      connectedClients: s.peers.size,
      startedAt: s.startedAt.toISOString(),
      uptimeMs: now - s.startedAt.getTime(),
      messagesReceived: s.received,
      messagesSent: s.sent,
      topics: [...this.#topics(s)],
      lastSeq: s.seq,
      active: true,
    }));
  }

  /** Disconnects every client of the stream with the reason, cancels its requests, marks it inactive. */
  async stop(streamId: string, reason = 'stopped'): Promise<{ disconnected: number }> {
    const session = this.#require(streamId);
    const disconnected = session.peers.size;
    this.#stopSession(session, reason);
    await this.#write([
      { id: session.id, messagesReceived: session.received, messagesSent: session.sent, active: false },
    ]);
    return { disconnected };
  }

  #stopSession(session: Session, reason: string): void {
    this.#send(session, { kind: 'all' }, 'stream-stopped', { streamId: session.id, reason });
    this.#sessions.delete(session.id);
    this.#stopped.set(session.id, reason);
    if (this.#stopped.size > MAX_STOPPED_REMEMBERED) {
      const oldest = this.#stopped.keys().next().value;
      if (oldest !== undefined) this.#stopped.delete(oldest);
    }
    session.unsubscribe();
    for (const running of session.inFlight.values())
      for (const c of running.values())
        c.abort(new HubError('SB_ERR_CANCELLED', `stream ${session.id} stopped`));
    for (const peer of [...session.peers]) peer.disconnect(reason);
    session.peers.clear();
    session.dirty = true;
  }

  #tick(): void {
    const now = performance.now();
    for (const s of [...this.#sessions.values()]) {
      const running = [...s.inFlight.values()].some((m) => m.size > 0);
      if (s.peers.size === 0 && !running && now - s.lastActivity > this.#idleTimeoutMs) {
        this.o.log.info({ streamId: s.id }, 'stream expired after being idle');
        this.stop(s.id, 'idle').catch((err: unknown) =>
          this.o.log.warn({ err, streamId: s.id }, 'could not stop idle stream'),
        );
      }
    }
    const wall = Date.now();
    for (const [digest, t] of this.#tokens) if (t.expiresAt <= wall) this.#tokens.delete(digest);
    this.#flushing = this.#flushing.then(() => this.#flush(false));
  }

  async #flush(all: boolean): Promise<void> {
    const rows: StreamCounters[] = [];
    for (const s of this.#sessions.values()) {
      if (!s.dirty && !all) continue;
      s.dirty = false;
      rows.push({ id: s.id, messagesReceived: s.received, messagesSent: s.sent, active: true });
    }
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
