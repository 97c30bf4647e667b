/**
 * The REST rate limit across two hub processes sharing one PostgreSQL and one Redis: a client's budget is
 * counted once, whichever hub answers. Needs `npm run build` (dist/src/main.js).
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresDatabase } from '../helpers/db.js';
import { type HubProcess, startHubProcess } from '../helpers/hub-process.js';
import { deleteRedisKeys, redisUrl } from '../helpers/redis.js';

const LIMIT = 6;

describe('REST rate limit shared by two hubs through Redis', () => {
  const prefix = `sbtest-${randomBytes(4).toString('hex')}:`;
  let database: Awaited<ReturnType<typeof createPostgresDatabase>>;
  let a: HubProcess;
  let b: HubProcess;

  beforeAll(async () => {
    database = await createPostgresDatabase();
    const env = {
      DATABASE_URL: database.url,
      REDIS_URL: redisUrl,
      SWITCHBOARD_REDIS_PREFIX: prefix,
      SWITCHBOARD_RATE_LIMIT_PER_MINUTE: String(LIMIT),
      SWITCHBOARD_SEED_EXAMPLES: 'false',
    };
    // One after the other: the first one migrates.
    a = await startHubProcess(env);
    b = await startHubProcess(env);
  }, 120_000);

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await database?.drop();
    await deleteRedisKeys(prefix);
  }, 60_000);

  it('counts requests to either hub against one budget, and answers the one over it with 429', async () => {
    const statuses: number[] = [];
    // Alternating hubs: with a budget per process each would allow LIMIT, twice as many in all.
    for (let i = 0; i < LIMIT + 2; i++) {
      const hub = i % 2 === 0 ? a : b;
      const res = await fetch(`${hub.base}/api/mcp/servers`, { headers: hub.headers });
      statuses.push(res.status);
      if (res.status === 429) {
        const body = (await res.json()) as { success: boolean; error: { code: string } };
        expect(body).toMatchObject({ success: false, error: { code: 'SB_ERR_RATE_LIMITED' } });
        expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
      } else await res.arrayBuffer();
    }
    expect(statuses).toEqual([...new Array(LIMIT).fill(200), 429, 429]);
    // Routes outside /api are not counted.
    expect((await fetch(`${a.base}/healthz`)).status).toBe(200);
  });
});
