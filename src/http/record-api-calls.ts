import type { FastifyInstance } from 'fastify';
import type { HubEventBus } from '../events/hub-events.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by a handler whose work already emits a richer event (a tool call): no api_call is added. */
    eventRecorded: boolean;
  }
}

/** Every /api request becomes an api_call event, unless its handler recorded the request itself. */
export function registerApiCallRecording(app: FastifyInstance, events: HubEventBus): void {
  app.decorateRequest('eventRecorded', false);
  app.addHook('onResponse', (req, reply, done) => {
    done();
    if (req.eventRecorded || !req.url.startsWith('/api/')) return;
    events.emit({
      type: 'api_call',
      source: 'rest',
      ok: reply.statusCode < 400,
      durationMs: Math.round(reply.elapsedTime),
      data: { method: req.method, route: req.routeOptions.url ?? null, status: reply.statusCode },
    });
  });
}
