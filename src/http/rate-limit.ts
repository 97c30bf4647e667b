import rateLimit, { type FastifyRateLimitStore, type FastifyRateLimitStoreCtor } from '@fastify/rate-limit';
import type { FastifyInstance } from 'fastify';
import { HubError } from '../errors.js';
import type { RedisClient } from '../realtime/redis.js';

/**
 * Counts requests in Redis, so that hubs sharing it share each client's budget (with one budget per process,
 * N hubs would let a client make N times the limit). One fixed window per key: INCR, and the window's
 * expiry set by the first request of it. While Redis is unreachable the store fails at once (commands would
 * otherwise wait for the reconnect) and the plugin lets requests through (skipOnError): the API stays up.
 */
function redisRateStore(client: RedisClient, prefix: string): FastifyRateLimitStoreCtor {
  return class RedisRateStore implements FastifyRateLimitStore {
    incr(
      key: string,
      callback: (error: Error | null, result?: { current: number; ttl: number }) => void,
      timeWindow: number,
    ): void {
      if (!client.isReady) {
        callback(new Error('Redis is not connected'));
        return;
      }
      const k = `${prefix}${key}`;
      client
        .multi()
        .incr(k)
        .pExpire(k, timeWindow, 'NX')
        .pTTL(k)
        .exec()
        .then(
          (replies) => callback(null, { current: Number(replies[0]), ttl: Math.max(0, Number(replies[2])) }),
          (err: unknown) => callback(err instanceof Error ? err : new Error(String(err))),
        );
    }

    // Every route shares the one global budget.
    child(): FastifyRateLimitStore {
      return this;
    }
  };
}

/**
 * Per-client request budget on every /api route; over it a request gets 429 with Retry-After. With Redis
 * (REDIS_URL) the budget is shared by every hub process.
 */
export async function registerRateLimit(
  app: FastifyInstance,
  perMinute: number,
  redis?: { client: RedisClient; prefix: string },
): Promise<void> {
  if (perMinute === 0) return;
  await app.register(rateLimit, {
    global: true,
    max: perMinute,
    timeWindow: 60_000,
    allowList: (req) => !req.url.startsWith('/api/'),
    ...(redis ? { store: redisRateStore(redis.client, `${redis.prefix}rate:`), skipOnError: true } : {}),
    errorResponseBuilder: (_req, context) => {
      const err = new HubError(
        'SB_ERR_RATE_LIMITED',
        `${context.max} requests per minute; retry in ${context.after}`,
      );
      return Object.assign(err, { statusCode: 429 });
    },
  });
}
