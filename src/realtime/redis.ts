import { createAdapter } from '@socket.io/redis-adapter';
import { createClient } from 'redis';
import type { Server } from 'socket.io';
import type { Logger } from '../logger.js';

export type RedisClient = ReturnType<typeof createClient>;

/** The hub's two Redis connections (REDIS_URL): commands (and publishing), and subscriptions. */
export interface RedisConnection {
  client: RedisClient;
  subscriber: RedisClient;
  /** Every key and channel of the hub starts with it (SWITCHBOARD_REDIS_PREFIX). */
  prefix: string;
  /** Both connections are up (for /readyz). */
  ready(): boolean;
  close(): Promise<void>;
}

/** The URL without its password, for logs and errors. */
function redact(url: string): string {
  const u = new URL(url);
  if (u.password) u.password = '***';
  return u.toString();
}

/**
 * Connects to Redis, failing after a few attempts when it is unreachable at start. Once connected, a lost
 * connection is logged once and retried forever with backoff (up to 2 s apart); commands issued meanwhile
 * wait for it (at most 10,000 of them, then they fail).
 */
export async function connectRedis(url: string, prefix: string, log: Logger): Promise<RedisConnection> {
  let started = false;
  const client: RedisClient = createClient({
    url,
    commandsQueueMaxLength: 10_000,
    socket: {
      connectTimeout: 5_000,
      reconnectStrategy: (retries: number) =>
        !started && retries >= 5
          ? new Error(`Redis at ${redact(url)} is unreachable`)
          : Math.min(50 * 2 ** retries, 2_000),
    },
  });
  const subscriber = client.duplicate();
  const connections: [string, RedisClient][] = [
    ['commands', client],
    ['subscriber', subscriber],
  ];
  for (const [name, c] of connections) {
    let down = false;
    c.on('error', (err: unknown) => {
      if (down) return;
      down = true;
      log.error({ err, connection: name, redis: redact(url) }, 'Redis connection lost; reconnecting');
    });
    c.on('ready', () => {
      if (!down) return;
      down = false;
      log.info({ connection: name }, 'Redis connection back');
    });
  }
  try {
    await Promise.all([client.connect(), subscriber.connect()]);
  } catch (err) {
    for (const [, c] of connections) if (c.isOpen) c.destroy();
    throw err;
  }
  started = true;
  return {
    client,
    subscriber,
    prefix,
    ready: () => client.isReady && subscriber.isReady,
    async close() {
      await Promise.allSettled(connections.map(([, c]) => (c.isOpen ? c.close() : undefined)));
    },
  };
}

/**
 * The adapter publishes without waiting for the outcome; while Redis is away those promises reject with
 * nobody to catch them, which would end the process. They are marked handled here (and logged at debug);
 * whoever awaits one still sees its error.
 */
function handled(client: RedisClient, log: Logger): RedisClient {
  return new Proxy(client, {
    get(target, property) {
      const value = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        const result = value.apply(target, args);
        if (result instanceof Promise)
          result.catch((err: unknown) => log.debug({ err }, 'Redis command of the socket.io adapter failed'));
        return result;
      };
    },
  });
}

/** socket.io across hub processes: broadcasts, disconnects and server-side events go through Redis pub/sub. */
export function useRedisAdapter(io: Server, redis: RedisConnection, log: Logger): void {
  io.adapter(
    createAdapter(handled(redis.client, log), handled(redis.subscriber, log), {
      key: `${redis.prefix}socket.io`,
      publishOnSpecificResponseChannel: true,
    }),
  );
}
