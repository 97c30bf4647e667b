/**
 * The REST rate limit across two hub processes sharing one PostgreSQL and one Redis: a client's budget is
 * counted once, whichever hub answers. Needs `npm run build` (dist/src/main.js).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HubPair, startHubPair } from '../helpers/hub-pair.js';
import type { HubProcess } from '../helpers/hub-process.js';

const LIMIT = 6;

describe('REST rate limit shared by two hubs through Redis', () => {
  let pair: HubPair;
  let a: HubProcess;
  let b: HubProcess;

  beforeAll(async () => {
    pair = await startHubPair({
      SWITCHBOARD_RATE_LIMIT_PER_MINUTE: String(LIMIT),
      SWITCHBOARD_SEED_EXAMPLES: 'false',
    });
    ({ a, b } = pair);
  }, 120_000);

  afterAll(() => pair?.stop(), 60_000);

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
