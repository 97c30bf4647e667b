import { HubError } from '../errors.js';
import { tokenMatcher } from '../http/auth.js';
import type { Realtime } from '../realtime/socket-server.js';
import { handshakeError, originCheck } from '../realtime/socket-server.js';
import type { HubEventBus } from './hub-events.js';
import { type LiveBatch, LiveEventFeed } from './live-feed.js';

/** The live events namespace and what it emits (hub → client only). */
export const EVENTS_NAMESPACE = '/mcp-events';
export const LIVE_EVENTS = 'events' as const;

export interface LiveEventsServerToClient {
  [LIVE_EVENTS]: (batch: LiveBatch) => void;
}

const room = (serverId: number | string | null) => `server:${serverId ?? 'none'}`;

/**
 * `/mcp-events`: the UI's live view of the event log. The handshake carries the API token
 * (`auth: { token }`) and optionally `serverId` to receive only that server's events; batches come every
 * 250 ms, sampled when the hub is busy (see LiveEventFeed).
 */
export function registerLiveEvents(
  realtime: Realtime,
  bus: HubEventBus,
  options: { apiToken: string; allowedOrigins: readonly string[] },
): void {
  const ns = realtime.io.of(EVENTS_NAMESPACE);
  const matches = tokenMatcher(options.apiToken);
  ns.use(originCheck(options.allowedOrigins));
  ns.use((socket, next) => {
    const auth = (socket.handshake.auth ?? {}) as { token?: unknown; serverId?: unknown };
    if (!matches(typeof auth.token === 'string' ? auth.token : undefined)) {
      next(handshakeError(new HubError('SB_ERR_UNAUTHORIZED', 'a valid API token in auth.token')));
      return;
    }
    const { serverId } = auth;
    if (serverId !== undefined && !(Number.isInteger(serverId) && (serverId as number) > 0)) {
      next(handshakeError(new HubError('SB_ERR_VALIDATION', 'auth.serverId must be a positive integer')));
      return;
    }
    socket.data.serverId = serverId as number | undefined;
    next();
  });
  ns.on('connection', (socket) => {
    socket.join(socket.data.serverId === undefined ? 'all' : room(socket.data.serverId));
  });

  const feed = new LiveEventFeed({
    bus,
    watched: () => realtime.mayHaveListeners(ns),
    onBatch: (batch) => {
      ns.to('all').emit(LIVE_EVENTS, batch);
      // Per-server subscribers get their server's share of the batch, with its own exact count.
      const byServer = new Map<string, LiveBatch['events']>();
      for (const e of batch.events) {
        const key = String(e.serverId ?? 'none');
        const list = byServer.get(key) ?? [];
        list.push(e);
        byServer.set(key, list);
      }
      for (const [key, events] of byServer) {
        const seen = batch.perServer[key] ?? events.length;
        ns.to(room(key)).emit(LIVE_EVENTS, {
          events,
          seen,
          sampled: seen > events.length,
          perServer: { [key]: seen },
        });
      }
    },
  });
  feed.start();
  realtime.beforeClose(async () => feed.close());
}
