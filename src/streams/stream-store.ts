import { HubError } from '../errors.js';
import type { SequencedEvent } from '../realtime/stream-events.js';
import type { StreamConfigInput } from './payloads.js';
import { ReplayBuffer } from './replay-buffer.js';

/** A value, or a promise of it: the in-memory store answers at once, the Redis one over the network. */
export type Awaitable<T> = T | Promise<T>;

export type Audience =
  | { kind: 'all' }
  | { kind: 'client'; clientId: string }
  | { kind: 'topic'; topic: string };

/** One hub → client message as it is buffered for replay (and relayed to the other hubs). */
export interface StoredMessage {
  seq: number;
  event: SequencedEvent;
  payload: { seq: number } & Record<string, unknown>;
  audience: Audience;
}

/** What a stream is, as every hub needs to know it. */
export interface StreamRecord {
  id: string;
  serverId: number;
  clientId: string;
  config: StreamConfigInput;
  startedAt: number;
  /** Replay buffer bounds: messages and bytes (as JSON). */
  bufferSize: number;
  bufferBytes: number;
}

export interface TokenEntry {
  streamId: string;
  clientId: string;
  expiresAt: number;
}

export interface Appended {
  message: StoredMessage;
  /** Size of the payload as JSON. */
  bytes: number;
  /** Client ids subscribed to the topic when the message was sequenced (topic messages only). */
  subscribers?: ReadonlySet<string>;
}

export interface Replay {
  /** Oldest seq still buffered (currentSeq + 1 when nothing is). */
  firstSeq: number;
  /** The stream's seq when the buffer was read: every message up to it was either replayed or is gone. */
  currentSeq: number;
  /** The buffered messages after the given seq that reach the client, oldest first. */
  messages: StoredMessage[];
}

export interface StreamDescription {
  clientIds: string[];
  topics: string[];
  lastSeq: number;
  /** Sockets connected on every hub (shared stores only; a hub counts its own otherwise). */
  connected?: number;
}

export interface TopicLimits {
  maxTopicsPerClient: number;
  maxTopicsPerStream: number;
}

/**
 * The state of streams that must be the same on every hub serving them: handshake tokens (by digest, never the
 * token), the stream's record, its seq and replay buffer, its client ids and their topic subscriptions, and
 * whether it was stopped. MemoryStreamStore keeps it in this process (one hub); RedisStreamStore in Redis, so
 * that any hub can take over a client. Connections, in-flight requests and counters stay with each hub.
 */
export interface StreamStore {
  /** True when several hubs share the store: they then relay messages and stops to each other. */
  readonly shared: boolean;
  create(record: StreamRecord): Awaitable<void>;
  /** The record of a live stream, or undefined if it does not exist (any more). */
  load(streamId: string): Awaitable<StreamRecord | undefined>;
  /** The reason a stream was stopped, while that is remembered. */
  stoppedReason(streamId: string): Awaitable<string | undefined>;
  /** Marks it stopped (later handshakes anywhere are refused) and drops its buffer and subscriptions. */
  markStopped(streamId: string, reason: string): Awaitable<void>;
  saveToken(digest: string, entry: TokenEntry): Awaitable<void>;
  findToken(digest: string): Awaitable<TokenEntry | undefined>;
  addClient(streamId: string, clientId: string): Awaitable<void>;
  /** Throws SB_ERR_VALIDATION past the limits; subscribing twice is a no-op. */
  subscribe(streamId: string, clientId: string, topic: string, limits: TopicLimits): Awaitable<void>;
  unsubscribe(streamId: string, clientId: string, topic: string): Awaitable<void>;
  /**
   * Numbers one message (the next seq of the stream) and buffers it: the one hot path, synchronous in memory.
   * Undefined when the stream is gone (stopped on another hub).
   */
  append(
    record: StreamRecord,
    audience: Audience,
    event: SequencedEvent,
    body: Record<string, unknown>,
  ): Awaitable<Appended | undefined>;
  /** Buffered messages after `afterSeq` meant for the client: its replies, stream-wide ones, its topics. */
  replay(streamId: string, clientId: string, afterSeq: number): Awaitable<Replay>;
  describe(streamId: string): Awaitable<StreamDescription | undefined>;
  /** A socket of the stream connected (+1) or left (-1) on this hub; shared stores count them across hubs. */
  touch(streamId: string, connectedDelta: number): Awaitable<void>;
  /** Shared stores: sockets connected on every hub and the last activity (epoch ms) anywhere. */
  liveness(streamId: string): Awaitable<{ connected: number; lastActivity: number } | undefined>;
  /** Forgets what has expired (tokens); the Redis store lets keys expire instead. */
  sweep(now: number): void;
}

export function topicLimitError(kind: 'client' | 'stream', limits: TopicLimits): HubError {
  return kind === 'client'
    ? new HubError('SB_ERR_VALIDATION', `at most ${limits.maxTopicsPerClient} topics per client`)
    : new HubError('SB_ERR_VALIDATION', `at most ${limits.maxTopicsPerStream} topics per stream`);
}

interface MemoryStream {
  record: StreamRecord;
  seq: number;
  buffer: ReplayBuffer<StoredMessage>;
  clientIds: Set<string>;
  /** client id → topics, and topic → client ids (the index a topic message is delivered by). */
  topicsOf: Map<string, Set<string>>;
  subscribersOf: Map<string, Set<string>>;
}

const MAX_STOPPED_REMEMBERED = 1000;

/** One hub: everything in this process, answered synchronously. */
export class MemoryStreamStore implements StreamStore {
  readonly shared = false;
  readonly #streams = new Map<string, MemoryStream>();
  readonly #stopped = new Map<string, string>();
  readonly #tokens = new Map<string, TokenEntry>();

  create(record: StreamRecord): void {
    this.#streams.set(record.id, {
      record,
      seq: 0,
      buffer: new ReplayBuffer(record.bufferSize, record.bufferBytes),
      clientIds: new Set([record.clientId]),
      topicsOf: new Map(),
      subscribersOf: new Map(),
    });
  }

  load(streamId: string): StreamRecord | undefined {
    return this.#streams.get(streamId)?.record;
  }

  stoppedReason(streamId: string): string | undefined {
    return this.#stopped.get(streamId);
  }

  markStopped(streamId: string, reason: string): void {
    this.#streams.delete(streamId);
    this.#stopped.set(streamId, reason);
    if (this.#stopped.size > MAX_STOPPED_REMEMBERED) {
      const oldest = this.#stopped.keys().next().value;
      if (oldest !== undefined) this.#stopped.delete(oldest);
    }
  }

  saveToken(digest: string, entry: TokenEntry): void {
    this.#tokens.set(digest, entry);
  }

  findToken(digest: string): TokenEntry | undefined {
    return this.#tokens.get(digest);
  }

  addClient(streamId: string, clientId: string): void {
    this.#streams.get(streamId)?.clientIds.add(clientId);
  }

  subscribe(streamId: string, clientId: string, topic: string, limits: TopicLimits): void {
    const s = this.#streams.get(streamId);
    if (!s) return;
    let mine = s.topicsOf.get(clientId);
    if (mine?.has(topic)) return;
    if ((mine?.size ?? 0) >= limits.maxTopicsPerClient) throw topicLimitError('client', limits);
    if (!s.subscribersOf.has(topic) && this.#topics(s).size >= limits.maxTopicsPerStream)
      throw topicLimitError('stream', limits);
    if (!mine) {
      mine = new Set();
      s.topicsOf.set(clientId, mine);
    }
    mine.add(topic);
    let subscribers = s.subscribersOf.get(topic);
    if (!subscribers) {
      subscribers = new Set();
      s.subscribersOf.set(topic, subscribers);
    }
    subscribers.add(clientId);
  }

  unsubscribe(streamId: string, clientId: string, topic: string): void {
    const s = this.#streams.get(streamId);
    if (!s?.topicsOf.get(clientId)?.delete(topic)) return;
    const subscribers = s.subscribersOf.get(topic);
    subscribers?.delete(clientId);
    if (subscribers?.size === 0) s.subscribersOf.delete(topic);
  }

  #topics(s: MemoryStream): Set<string> {
    return new Set([...(s.record.config.topics ?? []), ...s.subscribersOf.keys()]);
  }

  append(
    record: StreamRecord,
    audience: Audience,
    event: SequencedEvent,
    body: Record<string, unknown>,
  ): Appended | undefined {
    const s = this.#streams.get(record.id);
    if (!s) return undefined;
    const seq = ++s.seq;
    const message: StoredMessage = { seq, event, payload: { ...body, seq }, audience };
    const bytes = JSON.stringify(message.payload)?.length ?? 0;
    s.buffer.push(message, bytes);
    return audience.kind === 'topic'
      ? { message, bytes, subscribers: s.subscribersOf.get(audience.topic) ?? new Set() }
      : { message, bytes };
  }

  replay(streamId: string, clientId: string, afterSeq: number): Replay {
    const s = this.#streams.get(streamId);
    if (!s) return { firstSeq: 1, currentSeq: 0, messages: [] };
    const messages: StoredMessage[] = [];
    if (afterSeq < s.seq) {
      const mine = s.topicsOf.get(clientId);
      for (const m of s.buffer) if (m.seq > afterSeq && reaches(m.audience, clientId, mine)) messages.push(m);
    }
    return { firstSeq: s.buffer.oldest()?.seq ?? s.seq + 1, currentSeq: s.seq, messages };
  }

  describe(streamId: string): StreamDescription | undefined {
    const s = this.#streams.get(streamId);
    if (!s) return undefined;
    return { clientIds: [...s.clientIds], topics: [...this.#topics(s)], lastSeq: s.seq };
  }

  touch(): void {}

  liveness(): undefined {
    return undefined;
  }

  sweep(now: number): void {
    for (const [digest, t] of this.#tokens) if (t.expiresAt <= now) this.#tokens.delete(digest);
  }
}

/** Whether a buffered message is meant for a client subscribed to `topics`. */
export function reaches(
  audience: Audience,
  clientId: string,
  topics: ReadonlySet<string> | undefined,
): boolean {
  if (audience.kind === 'all') return true;
  if (audience.kind === 'client') return audience.clientId === clientId;
  return topics?.has(audience.topic) === true;
}
