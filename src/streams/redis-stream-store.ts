import { createHash } from 'node:crypto';
import type { RedisClient } from '../realtime/redis.js';
import type { SequencedEvent } from '../realtime/stream-events.js';
import {
  type Appended,
  type Audience,
  type Replay,
  reaches,
  type StoredMessage,
  type StreamDescription,
  type StreamRecord,
  type StreamStore,
  type TokenEntry,
  type TopicLimits,
  topicLimitError,
} from './stream-store.js';

class Script {
  readonly sha: string;
  constructor(readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }
}

/*
 * Per stream, two keys: a hash (`record`, `seq`, `bytes` of the buffer, `topics` count, `connected` sockets on
 * every hub, `active` = last activity in epoch ms, `c:<clientId>` → its topics as a JSON array, `t:<topic>` →
 * its subscribers as a JSON array) and a list, the replay buffer, of `<seq>\n<JSON>` entries. Scripts keep them
 * consistent; each one does nothing when the hash is gone (the stream stopped or expired), so a late message
 * cannot bring a stopped stream back. The list always holds consecutive seqs, so a replay reads only its tail.
 */

const APPEND = new Script(`
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local entry = seq .. '\\n' .. ARGV[1]
local bytes = tonumber(redis.call('HGET', KEYS[1], 'bytes') or '0') + #entry
redis.call('RPUSH', KEYS[2], entry)
local len = redis.call('LLEN', KEYS[2])
local cap, max = tonumber(ARGV[2]), tonumber(ARGV[3])
while len > cap or (bytes > max and len > 1) do
  bytes = bytes - #redis.call('LPOP', KEYS[2])
  len = len - 1
end
redis.call('HSET', KEYS[1], 'bytes', bytes, 'active', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
if ARGV[6] ~= '' then return {seq, redis.call('HGET', KEYS[1], 't:' .. ARGV[6]) or '[]'} end
return {seq}
`);

const REPLAY = new Script(`
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
local topics = redis.call('HGET', KEYS[1], 'c:' .. ARGV[1]) or '[]'
local len = redis.call('LLEN', KEYS[2])
local first = seq - len + 1
local entries = {}
local after = tonumber(ARGV[2])
if after < seq and len > 0 then
  local start = after + 1 - first
  if start < 0 then start = 0 end
  entries = redis.call('LRANGE', KEYS[2], start, -1)
end
return {seq, first, topics, entries}
`);

const SUBSCRIBE = new Script(`
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local mine = cjson.decode(redis.call('HGET', KEYS[1], 'c:' .. ARGV[1]) or '[]')
for _, t in ipairs(mine) do if t == ARGV[2] then return 0 end end
if #mine >= tonumber(ARGV[3]) then return -2 end
local raw = redis.call('HGET', KEYS[1], 't:' .. ARGV[2])
local subscribers = {}
if raw then
  subscribers = cjson.decode(raw)
else
  if tonumber(redis.call('HGET', KEYS[1], 'topics') or '0') >= tonumber(ARGV[4]) then return -3 end
  redis.call('HINCRBY', KEYS[1], 'topics', 1)
end
table.insert(mine, ARGV[2])
table.insert(subscribers, ARGV[1])
redis.call('HSET', KEYS[1], 'c:' .. ARGV[1], cjson.encode(mine), 't:' .. ARGV[2], cjson.encode(subscribers))
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
`);

const UNSUBSCRIBE = new Script(`
local raw = redis.call('HGET', KEYS[1], 'c:' .. ARGV[1])
if not raw then return 0 end
local kept, found = {}, false
for _, t in ipairs(cjson.decode(raw)) do
  if t == ARGV[2] then found = true else table.insert(kept, t) end
end
if not found then return 0 end
redis.call('HSET', KEYS[1], 'c:' .. ARGV[1], #kept == 0 and '[]' or cjson.encode(kept))
local left = {}
for _, c in ipairs(cjson.decode(redis.call('HGET', KEYS[1], 't:' .. ARGV[2]) or '[]')) do
  if c ~= ARGV[1] then table.insert(left, c) end
end
if #left == 0 then
  redis.call('HDEL', KEYS[1], 't:' .. ARGV[2])
  redis.call('HINCRBY', KEYS[1], 'topics', -1)
else
  redis.call('HSET', KEYS[1], 't:' .. ARGV[2], cjson.encode(left))
end
return 1
`);

/** ARGV: client id ('' for none), connected delta, now, ttl. */
const TOUCH = new Script(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] ~= '' then redis.call('HSETNX', KEYS[1], 'c:' .. ARGV[1], '[]') end
if ARGV[2] ~= '0' then redis.call('HINCRBY', KEYS[1], 'connected', ARGV[2]) end
redis.call('HSET', KEYS[1], 'active', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return 1
`);

export interface RedisStreamStoreOptions {
  /** Key prefix, e.g. `switchboard:`. */
  prefix: string;
  /** A stream's keys live this long after its last activity (refreshed while sockets are connected). */
  keyTtlMs: number;
  /** How long a stopped stream is remembered (handshakes are refused with a clear reason meanwhile). */
  stoppedTtlMs?: number;
  /** How long an expired token is kept, so that a late handshake hears that it expired. */
  expiredTokenGraceMs?: number;
}

/** A JSON array that cjson may have written as `{}` when it was empty. */
function stringArray(raw: unknown): string[] {
  if (typeof raw !== 'string') return [];
  const parsed: unknown = JSON.parse(raw);
  return Array.isArray(parsed) ? (parsed as string[]) : [];
}

/** Several hubs: the shared state of streams in Redis (see the key layout above). */
export class RedisStreamStore implements StreamStore {
  readonly shared = true;
  readonly #stoppedTtlMs: number;
  readonly #graceMs: number;

  constructor(
    private readonly redis: RedisClient,
    private readonly o: RedisStreamStoreOptions,
  ) {
    this.#stoppedTtlMs = o.stoppedTtlMs ?? 24 * 3_600_000;
    this.#graceMs = o.expiredTokenGraceMs ?? 10 * 60_000;
  }

  #hash(streamId: string): string {
    return `${this.o.prefix}stream:${streamId}`;
  }

  #keys(streamId: string): [string, string] {
    const hash = this.#hash(streamId);
    return [hash, `${hash}:log`];
  }

  /** EVALSHA, and EVAL when Redis does not have the script (first use, or after a restart). */
  async #run(script: Script, keys: string[], args: (string | number)[]): Promise<unknown> {
    const options = { keys, arguments: args.map(String) };
    try {
      return await this.redis.evalSha(script.sha, options);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return this.redis.eval(script.source, options);
    }
  }

  async create(record: StreamRecord): Promise<void> {
    const [hash, log] = this.#keys(record.id);
    await this.redis
      .multi()
      .del([hash, log])
      .hSet(hash, {
        record: JSON.stringify(record),
        seq: 0,
        bytes: 0,
        topics: 0,
        connected: 0,
        active: Date.now(),
        [`c:${record.clientId}`]: '[]',
      })
      .pExpire(hash, this.o.keyTtlMs)
      .exec();
  }

  async load(streamId: string): Promise<StreamRecord | undefined> {
    const raw = await this.redis.hGet(this.#hash(streamId), 'record');
    return raw ? (JSON.parse(raw) as StreamRecord) : undefined;
  }

  async stoppedReason(streamId: string): Promise<string | undefined> {
    return (await this.redis.get(`${this.o.prefix}stopped:${streamId}`)) ?? undefined;
  }

  async markStopped(streamId: string, reason: string): Promise<void> {
    await this.redis
      .multi()
      .set(`${this.o.prefix}stopped:${streamId}`, reason, { PX: this.#stoppedTtlMs })
      .del(this.#keys(streamId))
      .exec();
  }

  async saveToken(digest: string, entry: TokenEntry): Promise<void> {
    const ttl = Math.max(1, entry.expiresAt - Date.now()) + this.#graceMs;
    await this.redis.set(`${this.o.prefix}token:${digest}`, JSON.stringify(entry), { PX: ttl });
  }

  async findToken(digest: string): Promise<TokenEntry | undefined> {
    const raw = await this.redis.get(`${this.o.prefix}token:${digest}`);
    return raw ? (JSON.parse(raw) as TokenEntry) : undefined;
  }

  async addClient(streamId: string, clientId: string): Promise<void> {
    await this.#run(TOUCH, this.#keys(streamId), [clientId, 0, Date.now(), this.o.keyTtlMs]);
  }

  async subscribe(streamId: string, clientId: string, topic: string, limits: TopicLimits): Promise<void> {
    const r = await this.#run(
      SUBSCRIBE,
      [this.#hash(streamId)],
      [clientId, topic, limits.maxTopicsPerClient, limits.maxTopicsPerStream, this.o.keyTtlMs],
    );
    if (r === -2) throw topicLimitError('client', limits);
    if (r === -3) throw topicLimitError('stream', limits);
  }

  async unsubscribe(streamId: string, clientId: string, topic: string): Promise<void> {
    await this.#run(UNSUBSCRIBE, [this.#hash(streamId)], [clientId, topic]);
  }

  async append(
    record: StreamRecord,
    audience: Audience,
    event: SequencedEvent,
    body: Record<string, unknown>,
  ): Promise<Appended | undefined> {
    const json = JSON.stringify({ event, audience, body });
    const r = (await this.#run(APPEND, this.#keys(record.id), [
      json,
      record.bufferSize,
      record.bufferBytes,
      this.o.keyTtlMs,
      Date.now(),
      audience.kind === 'topic' ? audience.topic : '',
    ])) as [number, string?] | null;
    if (!r) return undefined;
    const seq = Number(r[0]);
    const message: StoredMessage = { seq, event, payload: { ...body, seq }, audience };
    const appended: Appended = { message, bytes: json.length };
    if (r[1] !== undefined) appended.subscribers = new Set(stringArray(r[1]));
    return appended;
  }

  async replay(streamId: string, clientId: string, afterSeq: number): Promise<Replay> {
    const [seq, first, topics, entries] = (await this.#run(REPLAY, this.#keys(streamId), [
      clientId,
      afterSeq,
    ])) as [number, number, string, string[]];
    const mine = new Set(stringArray(topics));
    const messages: StoredMessage[] = [];
    for (const entry of entries) {
      const cut = entry.indexOf('\n');
      const at = Number(entry.slice(0, cut));
      if (at <= afterSeq) continue;
      const { event, audience, body } = JSON.parse(entry.slice(cut + 1)) as {
        event: SequencedEvent;
        audience: Audience;
        body: Record<string, unknown>;
      };
      if (reaches(audience, clientId, mine))
        messages.push({ seq: at, event, payload: { ...body, seq: at }, audience });
    }
    return { firstSeq: Number(first), currentSeq: Number(seq), messages };
  }

  async describe(streamId: string): Promise<StreamDescription | undefined> {
    const h = await this.redis.hGetAll(this.#hash(streamId));
    if (!h.record) return undefined;
    const clientIds: string[] = [];
    const topics: string[] = [];
    for (const field of Object.keys(h)) {
      if (field.startsWith('c:')) clientIds.push(field.slice(2));
      else if (field.startsWith('t:')) topics.push(field.slice(2));
    }
    return {
      clientIds,
      topics,
      lastSeq: Number(h.seq ?? 0),
      connected: Math.max(0, Number(h.connected ?? 0)),
    };
  }

  async touch(streamId: string, connectedDelta: number): Promise<void> {
    await this.#run(TOUCH, this.#keys(streamId), ['', connectedDelta, Date.now(), this.o.keyTtlMs]);
  }

  async liveness(streamId: string): Promise<{ connected: number; lastActivity: number } | undefined> {
    const [connected, active] = await this.redis.hmGet(this.#hash(streamId), ['connected', 'active']);
    if (connected == null) return undefined;
    return { connected: Math.max(0, Number(connected)), lastActivity: Number(active ?? 0) };
  }

  /** Keys expire by themselves. */
  sweep(): void {}
}
