import { createClient } from 'redis';

/** The local Redis of the dev and CI machines; TEST_REDIS_URL overrides it. */
export const redisUrl = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Removes every key a test's hubs wrote under their own prefix. */
export async function deleteRedisKeys(prefix: string): Promise<void> {
  const redis = createClient({ url: redisUrl });
  await redis.connect();
  try {
    const keys: string[] = [];
    for await (const batch of redis.scanIterator({ MATCH: `${prefix}*`, COUNT: 1000 })) keys.push(...batch);
    if (keys.length > 0) await redis.del(keys);
  } finally {
    await redis.close();
  }
}
