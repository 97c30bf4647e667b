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
import type { RelayedMessage, StreamContext, StreamService } from './stream-service.js';
import { toWireError } from './stream-service.js';
import { writeBacklog } from './write-backlog.js';

interface SocketData {
  ctx: StreamContext;
  lastSeq: number | undefined;
}

type StreamSocket = Socket<StreamClientToServer, StreamServerToClient, Record<string, never>, SocketData>;

const RELAY_EVENT = 'switchboard:stream-message';

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
    if (!streamNamespacePattern.test(name)) return next(null, false);
    service.isKnown(streamIdOf(name)).then(
      (known) => next(null, known),
      (err: unknown) => {
        options.log.warn({ err, namespace: name }, 'could not look the stream up');
        next(null, false);
      },
    );
  });
  if (service.shared) {
    // Messages sequenced on one hub reach the sockets of the others through the socket.io Redis adapter.
    const main = io.of('/');
    main.on(RELAY_EVENT, (m: RelayedMessage) => service.receive(m));
    service.useRelay((m) => main.serverSideEmit(RELAY_EVENT, m));
  }
  parent.use(originCheck(options.allowedOrigins));
  parent.use(async (socket, next) => {
    const auth = authSchema.safeParse(socket.handshake.auth ?? {});
    const token = typeof socket.handshake.auth?.token === 'string' ? socket.handshake.auth.token : undefined;
    try {
      const ctx = await service.authenticate(streamIdOf(socket.nsp), token);
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
    const limits = service.limits;
    const backlog = writeBacklog(socket.conn);
    let detach: (() => void) | undefined;
    try {
      detach = service.attach(
        ctx,
        {
          clientId: ctx.clientId,
          send(event, payload) {
            const queued = backlog.measure();
            if (queued.packets > limits.slowConsumerPackets || queued.bytes > limits.slowConsumerBytes) {
              log.warn({ clientId: ctx.clientId, ...queued }, 'cutting off a slow stream consumer');
              // Closing with discard frees its queue now; a plain disconnect would wait for the client to
              // read it (or for the heartbeat to give up on it).
              socket.conn.close(true);
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
    const fail = (event: string, ack: unknown, err: unknown) => {
      const error = isHubError(err) ? err : new HubError('SB_ERR_INTERNAL', String(err));
      service.refuse(ctx, event, error);
      respondAck(ack, { ok: false, error: error.toJSON() });
    };
    /** A handler's result: the seq it produced (publish), or anything else (nothing to report). */
    const done = (ack: unknown, seq: unknown) =>
      respondAck(ack, typeof seq === 'number' ? { ok: true, seq } : { ok: true });
    /**
     * Runs a simple event: admitted, handled, acknowledged; failures become stream-error (and a failed ack).
     * A handler answers at once on one hub, with a promise when the stream's state is in Redis.
     */
    const simple = (event: string, handle: (payload: unknown) => unknown) => {
      socket.on(event as keyof StreamClientToServer, (payload: unknown, ack?: unknown) => {
        const refused = service.admit(ctx, event, payload, bucket);
        try {
          if (refused) throw refused;
          const seq = handle(payload);
          if (seq instanceof Promise)
            seq.then(
              (s) => done(ack, s),
              (err: unknown) => fail(event, ack, err),
            );
          else done(ack, seq);
        } catch (err) {
          fail(event, ack, err);
        }
      });
    };
    simple(ClientEvents.subscribe, (topic) => service.subscribe(ctx, topic));
    simple(ClientEvents.unsubscribe, (topic) => service.unsubscribe(ctx, topic));
    simple(ClientEvents.publish, (payload) => service.publish(ctx, payload));
    simple(ClientEvents.cancel, (payload) => service.cancel(ctx, payload));

    socket.on(ClientEvents.message, (payload: unknown, ack?: unknown) => {
      const reply = (response: unknown) => {
        if (typeof ack === 'function' && response !== undefined) ack(response);
      };
      const refused = service.admit(ctx, ClientEvents.message, payload, bucket);
      if (refused) {
        const response = service.refuseMessage(ctx, payload, refused);
        if (response instanceof Promise) response.then(reply, () => {});
        else reply(response);
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
