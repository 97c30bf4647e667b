import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance } from 'fastify';
import { HubError } from '../errors.js';

/** Per-client request budget on every /api route; over it a request gets 429 with Retry-After. */
export async function registerRateLimit(app: FastifyInstance, perMinute: number): Promise<void> {
  if (perMinute === 0) return;
  await app.register(rateLimit, {
    global: true,
    max: perMinute,
    timeWindow: 60_000,
    allowList: (req) => !req.url.startsWith('/api/'),
    errorResponseBuilder: (_req, context) => {
      const err = new HubError(
        'SB_ERR_RATE_LIMITED',
        `${context.max} requests per minute; retry in ${context.after}`,
      );
      return Object.assign(err, { statusCode: 429 });
    },
  });
}
