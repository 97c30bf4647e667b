import type { Namespace, Server, Socket } from 'socket.io';
import { HubError, isHubError } from '../errors.js';
import type { Logger } from '../logger.js';
import { handshakeError, originCheck } from '../realtime/socket-server.js';
import {
  type Ack,
  ClientEvents,
  ServerEvents,
  type StreamClientToServer,
  type StreamServerToClient,
  streamNamespacePattern,
} from '../realtime/stream-events.js';
import { authSchema } from './payloads.js';
import type { StreamContext, StreamService } from './stream-service.js';
import { toWireError } from './stream-service.js';

interface SocketData {
  ctx: StreamContext;
  lastSeq: number | undefined;
}

type StreamSocket = Socket<StreamClientToServer, StreamServerToClient, Record<string, never>, SocketData>;

/** A socket whose outgoing buffer grows past this many packets is too slow: it is disconnected (it may resume with lastSeq). */
const SLOW_CONSUMER_PACKETS = 10_000;

const streamIdOf = (nsp: Namespace | string) =>
  (typeof nsp === 'string' ? nsp : nsp.name).slice('/mcp-stream/'.length);

/**
 * The `/mcp-stream/<streamId>` namespaces: handshake checks in use() middleware (origin, token), then a
 * thin adapter from socket events to the StreamService.
 */
export function registerStreamNamespace(
  io: Server,
  service: StreamService,
  options: { allowedOrigins: readonly string[]; log: Logger },
): void {
  // A function rather than the bare pattern: a child namespace is only created for a stream the hub knows
  // (active or recently stopped), so junk names cannot pile up namespaces.
  const parent = io.of((name, _auth, next) => {
    next(null, streamNamespacePattern.test(name) && service.isKnown(streamIdOf(name)));
  });
  parent.use(originCheck(options.allowedOrigins));
  parent.use((socket, next) => {
    const auth = authSchema.safeParse(socket.handshake.auth ?? {});
    const token = typeof socket.handshake.auth?.token === 'string' ? socket.handshake.auth.token : undefined;
    try {
      const ctx = service.authenticate(streamIdOf(socket.nsp), token);
      if (!auth.success)
        throw new HubError('SB_ERR_VALIDATION', 'auth must be { token, lastSeq?: integer ≥ 0 }');
      socket.data = { ctx, lastSeq: auth.data.lastSeq } satisfies SocketData;
      next();
    } catch (err) {
      next(handshakeError(isHubError(err) ? err : new HubError('SB_ERR_INTERNAL', String(err))));
    }
  });

  parent.on('connection', (raw: Socket) => {
    const socket = raw as StreamSocket;
    const { ctx, lastSeq } = socket.data;
    const log = options.log.child({ streamId: ctx.streamId });
    let detach: (() => void) | undefined;
    try {
      detach = service.attach(
        ctx,
        {
          clientId: ctx.clientId,
          send(event, payload) {
            const writeBuffer = (socket.conn as unknown as { writeBuffer?: unknown[] }).writeBuffer;
            if (writeBuffer && writeBuffer.length > SLOW_CONSUMER_PACKETS) {
              log.warn({ clientId: ctx.clientId }, 'disconnecting a slow stream consumer');
              socket.disconnect(true);
              return;
            }
            (socket.emit as (e: string, p: unknown) => boolean)(event, payload);
          },
          disconnect(reason) {
            // Let the stream-stopped event go out before the close packet.
            setImmediate(() => socket.disconnect(true));
            log.debug({ clientId: ctx.clientId, reason }, 'stream client disconnected by the hub');
          },
        },
        lastSeq,
      );
    } catch (err) {
      socket.emit(ServerEvents.error, { event: 'connect', error: toWireError(err), seq: 0 });
      socket.disconnect(true);
      return;
    }
    socket.on('disconnect', () => detach?.());
    const bucket = service.rateLimiter(ctx.streamId);

    const respondAck = (ack: unknown, value: Ack) => {
      if (typeof ack === 'function') ack(value);
    };
    /** Runs a simple event: admitted, handled, acknowledged; failures become stream-error (and a failed ack). */
    const simple = (event: string, handle: (payload: unknown) => number | undefined) => {
      socket.on(event as keyof StreamClientToServer, (payload: unknown, ack?: unknown) => {
        const refused = service.admit(ctx, event, payload, bucket);
        try {
          if (refused) throw refused;
          const seq = handle(payload);
          respondAck(ack, seq === undefined ? { ok: true } : { ok: true, seq });
        } catch (err) {
          const error = isHubError(err) ? err : new HubError('SB_ERR_INTERNAL', String(err));
          service.refuse(ctx, event, error);
          respondAck(ack, { ok: false, error: error.toJSON() });
        }
      });
    };
    simple(ClientEvents.subscribe, (topic) => {
      service.subscribe(ctx, topic);
      return undefined;
    });
    simple(ClientEvents.unsubscribe, (topic) => {
      service.unsubscribe(ctx, topic);
      return undefined;
    });
    simple(ClientEvents.publish, (payload) => service.publish(ctx, payload));
    simple(ClientEvents.cancel, (payload) => {
      service.cancel(ctx, payload);
      return undefined;
    });

    socket.on(ClientEvents.message, (payload: unknown, ack?: unknown) => {
      const reply = (response: unknown) => {
        if (typeof ack === 'function' && response !== undefined) ack(response);
      };
      const refused = service.admit(ctx, ClientEvents.message, payload, bucket);
      if (refused) {
        reply(service.refuseMessage(ctx, payload, refused));
        return;
      }
      service.handleMessage(ctx, payload).then(reply, (err: unknown) => {
        log.error({ err }, 'stream message failed');
      });
    });

    // Anything else is answered, not ignored: a client with a typo learns of it.
    socket.onAny((event: string) => {
      if (Object.values(ClientEvents).includes(event as (typeof ClientEvents)[keyof typeof ClientEvents]))
        return;
      service.refuse(
        ctx,
        event.slice(0, 100),
        new HubError('SB_ERR_VALIDATION', `unknown event ${event.slice(0, 100)}`),
      );
    });
  });
}
