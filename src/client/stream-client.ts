/**
 * A typed client for Switchboard streams: start a session over REST, connect with socket.io, and send
 * requests whose responses are matched by id (so many may be in flight and finish in any order).
 * Tracks the last seq it received, so reconnect() resumes where it left off.
 */
import { io, type Socket } from 'socket.io-client';
import type {
  Ack,
  ServerProgress,
  ServerResponse,
  StreamAuth,
  StreamClientToServer,
  StreamServerToClient,
} from '../realtime/stream-events.js';
import type { StreamConfigInput } from '../streams/payloads.js';

export type StreamSocket = Socket<StreamServerToClient, StreamClientToServer>;

export interface StreamClientOptions {
  /** Hub address, e.g. http://127.0.0.1:3000 */
  baseUrl: string;
  /** The REST bearer token. */
  apiToken: string;
  /** Extra socket.io options (headers, transports). */
  socketOptions?: Parameters<typeof io>[1];
}

export interface StartOptions extends StreamClientOptions {
  serverId: number;
  clientId: string;
  streamConfig?: StreamConfigInput;
}

export interface JoinOptions extends StreamClientOptions {
  streamId: string;
  clientId: string;
}

export interface RequestOptions {
  id?: string | number;
  /** Publish the response to this topic too. */
  topic?: string;
  onProgress?: (progress: ServerProgress) => void;
  /** Rejects (without cancelling upstream) after this long. Default 60 s. */
  timeoutMs?: number;
}

export class StreamRequestError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = 'StreamRequestError';
  }
}

async function api<T>(opts: StreamClientOptions, method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(new URL(path, opts.baseUrl), {
    method,
    headers: {
      authorization: `Bearer ${opts.apiToken}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = (await res.json()) as T & { success?: boolean; error?: { code: string; message: string } };
  if (!res.ok || json.success === false)
    throw new StreamRequestError(json.error?.message ?? `HTTP ${res.status}`, json.error?.code ?? 'HTTP');
  return json;
}

interface Pending {
  resolve: (r: ServerResponse) => void;
  reject: (e: Error) => void;
  onProgress?: (p: ServerProgress) => void;
  timer: NodeJS.Timeout;
}

export class StreamClient {
  /** The last seq received; sent as lastSeq on reconnect. */
  lastSeq = 0;
  #socket: StreamSocket | undefined;
  #nextId = 0;
  readonly #pending = new Map<string | number, Pending>();
  readonly #listeners: [keyof StreamServerToClient, (payload: never) => void][] = [];

  private constructor(
    readonly options: StreamClientOptions,
    readonly streamId: string,
    readonly clientId: string,
    public token: string,
    readonly wsUrl: string,
  ) {}

  /** POST /api/mcp/stream/start, then a client for it (not yet connected). */
  static async start(opts: StartOptions): Promise<StreamClient> {
    const r = await api<{ streamId: string; wsUrl: string; token: string }>(
      opts,
      'POST',
      '/api/mcp/stream/start',
      {
        serverId: opts.serverId,
        clientId: opts.clientId,
        ...(opts.streamConfig ? { streamConfig: opts.streamConfig } : {}),
      },
    );
    return new StreamClient(opts, r.streamId, opts.clientId, r.token, r.wsUrl);
  }

  /** A token for another client id on an existing stream, then a client for it (not yet connected). */
  static async join(opts: JoinOptions): Promise<StreamClient> {
    const r = await api<{ wsUrl: string; token: string }>(
      opts,
      'POST',
      `/api/mcp/stream/${encodeURIComponent(opts.streamId)}/token`,
      { clientId: opts.clientId },
    );
    return new StreamClient(opts, opts.streamId, opts.clientId, r.token, r.wsUrl);
  }

  get socket(): StreamSocket {
    if (!this.#socket) throw new Error('not connected: call connect() first');
    return this.#socket;
  }

  /** Connects (resolving once the handshake is accepted, rejecting with its connect_error message). */
  connect(opts: { lastSeq?: number } = {}): Promise<this> {
    const auth: StreamAuth = { token: this.token };
    if (opts.lastSeq !== undefined) auth.lastSeq = opts.lastSeq;
    const socket: StreamSocket = io(new URL(this.wsUrl, this.options.baseUrl).href, {
      reconnection: false,
      forceNew: true,
      transports: ['websocket'],
      ...this.options.socketOptions,
      auth,
    });
    this.#socket = socket;
    // Attached before the handshake, so that messages replayed right after it are not missed.
    for (const [event, fn] of this.#listeners) socket.on(event, fn as never);
    const track = (payload: { seq?: number }) => {
      if (typeof payload?.seq === 'number' && payload.seq > this.lastSeq) this.lastSeq = payload.seq;
    };
    socket.onAny((_event: string, payload: { seq?: number }) => track(payload));
    socket.on('server-response', (r) => {
      const p = this.#pending.get(r.id);
      if (!p) return;
      this.#pending.delete(r.id);
      clearTimeout(p.timer);
      p.resolve(r);
    });
    socket.on('server-progress', (p) => this.#pending.get(p.id)?.onProgress?.(p));
    socket.on('disconnect', (reason) => {
      for (const [id, p] of this.#pending) {
        clearTimeout(p.timer);
        p.reject(
          new StreamRequestError(`disconnected (${reason}) before the response to ${id}`, 'DISCONNECTED'),
        );
      }
      this.#pending.clear();
    });
    return new Promise((resolve, reject) => {
      socket.once('connect', () => resolve(this));
      socket.once('connect_error', (err: Error & { data?: { code?: string } }) => {
        socket.close();
        reject(new StreamRequestError(err.message, err.data?.code ?? 'CONNECT_ERROR'));
      });
    });
  }

  /** Disconnects and connects again with lastSeq, after fetching a fresh token when asked to. */
  async reconnect(opts: { freshToken?: boolean } = {}): Promise<this> {
    this.#socket?.close();
    if (opts.freshToken) {
      const r = await api<{ token: string }>(
        this.options,
        'POST',
        `/api/mcp/stream/${encodeURIComponent(this.streamId)}/token`,
        { clientId: this.clientId },
      );
      this.token = r.token;
    }
    return this.connect({ lastSeq: this.lastSeq });
  }

  /** Listens on this socket and on every later one (reconnect), from before the handshake. */
  on<E extends keyof StreamServerToClient>(event: E, fn: StreamServerToClient[E]): this {
    this.#listeners.push([event, fn as (payload: never) => void]);
    this.#socket?.on(event, fn as never);
    return this;
  }

  off<E extends keyof StreamServerToClient>(event: E, fn: StreamServerToClient[E]): this {
    const i = this.#listeners.findIndex(([e, f]) => e === event && f === (fn as unknown));
    if (i >= 0) this.#listeners.splice(i, 1);
    this.#socket?.off(event, fn as never);
    return this;
  }

  /** Sends a client-message and resolves with its server-response (ok or not). */
  request(
    type: string,
    args: Record<string, unknown> = {},
    opts: RequestOptions = {},
  ): Promise<ServerResponse> {
    const id = opts.id ?? `${this.clientId}-${++this.#nextId}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(
          new StreamRequestError(`no response to ${id} within ${opts.timeoutMs ?? 60_000} ms`, 'TIMEOUT'),
        );
      }, opts.timeoutMs ?? 60_000);
      this.#pending.set(id, { resolve, reject, onProgress: opts.onProgress, timer });
      this.socket.emit('client-message', {
        type,
        id,
        data: args,
        ...(opts.topic === undefined ? {} : { topic: opts.topic }),
      });
    });
  }

  cancel(id: string | number): Promise<Ack> {
    return this.socket.emitWithAck('cancel', { id });
  }

  subscribe(topic: string): Promise<Ack> {
    return this.socket.emitWithAck('subscribe-topic', topic);
  }

  unsubscribe(topic: string): Promise<Ack> {
    return this.socket.emitWithAck('unsubscribe-topic', topic);
  }

  publish(topic: string, data: unknown): Promise<Ack> {
    return this.socket.emitWithAck('publish', { topic, data });
  }

  /** Disconnects; pending requests reject. */
  close(): void {
    this.#socket?.close();
  }

  /** POST /api/mcp/stream/stop. */
  stop(): Promise<{ disconnected: number }> {
    return api(this.options, 'POST', '/api/mcp/stream/stop', { streamId: this.streamId });
  }
}
