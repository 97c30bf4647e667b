import { randomBytes } from 'node:crypto';
import { createPostgresDatabase } from './db.js';
import { type HubProcess, startHubProcess } from './hub-process.js';
import { deleteRedisKeys, redisUrl } from './redis.js';

/** Two hub processes (the built hub) sharing a fresh PostgreSQL database and the local Redis. */
export interface HubPair {
  a: HubProcess;
  b: HubProcess;
  /** Their SWITCHBOARD_REDIS_PREFIX: every Redis key and channel of theirs starts with it. */
  prefix: string;
  /** Stops both hubs, drops the database and deletes their Redis keys. */
  stop(): Promise<void>;
}

export async function startHubPair(env: Record<string, string> = {}): Promise<HubPair> {
  const prefix = `sbtest-${randomBytes(4).toString('hex')}:`;
  const database = await createPostgresDatabase();
  const hubs: HubProcess[] = [];
  const stop = async () => {
    await Promise.all(hubs.map((h) => h.stop()));
    await database.drop();
    await deleteRedisKeys(prefix);
  };
  try {
    const shared = {
      DATABASE_URL: database.url,
      REDIS_URL: redisUrl,
      SWITCHBOARD_REDIS_PREFIX: prefix,
      ...env,
    };
    // One after the other: the first one migrates (and seeds the example servers unless told not to).
    hubs.push(await startHubProcess(shared));
    hubs.push(await startHubProcess(shared));
  } catch (err) {
    await stop();
    throw err;
  }
  const [a, b] = hubs as [HubProcess, HubProcess];
  return { a, b, prefix, stop };
}
