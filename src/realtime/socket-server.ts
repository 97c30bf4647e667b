import type { FastifyInstance } from 'fastify';
import { type Namespace, Server, type Socket } from 'socket.io';
import { HubError } from '../errors.js';
import { isOriginAllowed } from '../http/origin-check.js';
import { coalesceWebSocketWrites } from './coalesce-writes.js';

export interface RealtimeOptions {
  allowedOrigins: readonly string[];
  /** Largest socket.io packet; a bigger one makes engine.io drop the connection, so features check a lower limit themselves. */
  maxPacketBytes: number;
  /** Broadcasts reach the sockets of other hub processes too (the Redis adapter is installed). */
  shared?: boolean;
}

/** A refused handshake: socket.io clients get `connect_error` with this message and `data: { code, details }`. */
export function handshakeError(err: HubError): Error & { data: unknown } {
  const error = new Error(err.message) as Error & { data: unknown };
  error.data = err.toJSON();
  return error;
}

/**
 * Namespace middleware: browsers send Origin, and only the hub's own origin or one listed in
 * SWITCHBOARD_ALLOWED_ORIGINS may open a socket. Clients that send no Origin (not browsers) pass.
 */
export function originCheck(allowed: readonly string[]) {
  return (socket: Socket, next: (err?: Error) => void): void => {
    const origin = socket.handshake.headers.origin;
    if (!origin || isOriginAllowed(origin, socket.handshake.headers.host, allowed)) {
      next();
      return;
    }
    next(
      handshakeError(
        new HubError('SB_ERR_FORBIDDEN', `origin ${origin} is not allowed (SWITCHBOARD_ALLOWED_ORIGINS)`),
      ),
    );
  };
}

export interface Realtime {
  io: Server;
  /**
   * Whether a broadcast in `ns` may reach anybody: a socket of this hub, or, across hubs, possibly one of
   * another hub (which cannot be known without asking them all). Features skip building what nobody gets.
   */
  mayHaveListeners(ns: Namespace): boolean;
  /** Work to do while sockets are still connected at shutdown (say goodbye, stop sessions). */
  beforeClose(fn: () => Promise<void>): void;
}

/**
 * The one socket.io server of the hub, on Fastify's HTTP server (default path /socket.io). Feature
 * namespaces attach to it. At shutdown the features' beforeClose work runs, then every socket is
 * disconnected before Fastify closes the HTTP server (which would otherwise wait for them).
 */
export function createSocketServer(app: FastifyInstance, options: RealtimeOptions): Realtime {
  const io = new Server(app.server, {
    maxHttpBufferSize: options.maxPacketBytes,
    // Cross-origin browsers are refused by originCheck with a clear connect_error; CORS headers let them read it.
    cors: { origin: true, credentials: false },
    serveClient: false,
    // Stream namespaces are created per stream; drop each once its last socket has left.
    cleanupEmptyChildNamespaces: true,
  });
  coalesceWebSocketWrites(io);
  // The main namespace has no use; keep it closed to browsers from other origins too.
  io.use(originCheck(options.allowedOrigins));
  const closers: (() => Promise<void>)[] = [];
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await Promise.allSettled(closers.map((fn) => fn()));
    io.engine.close();
  };
  app.addHook('preClose', close);
  app.addHook('onClose', close);
  return {
    io,
    mayHaveListeners: (ns) => options.shared === true || ns.sockets.size > 0,
    beforeClose: (fn) => closers.push(fn),
  };
}
