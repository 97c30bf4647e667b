import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestHub, type TestHub } from '../helpers/hub.js';

describe('rate limits and origin checks', () => {
  let t: TestHub;
  beforeAll(async () => {
    t = await startTestHub('pglite', {
      SWITCHBOARD_RATE_LIMIT_PER_MINUTE: '5',
      SWITCHBOARD_ALLOWED_ORIGINS: 'http://ui.example.test',
      SWITCHBOARD_SEED_EXAMPLES: 'false',
    });
  });
  afterAll(() => t?.close());

  it('refuses a foreign browser origin and accepts a listed one', async () => {
    const foreign = await t.api({
      method: 'GET',
      url: '/api/mcp/servers',
      headers: { origin: 'http://evil.test' },
    });
    expect(foreign.statusCode).toBe(403);
    expect(foreign.json().error.code).toBe('SB_ERR_FORBIDDEN');
    const listed = await t.api({
      method: 'GET',
      url: '/api/mcp/servers',
      headers: { origin: 'http://ui.example.test' },
    });
    expect(listed.statusCode).toBe(200);
  });

  it('answers 429 with Retry-After past the budget, and keeps health checks open', async () => {
    const statuses: number[] = [];
    let last: LightMyRequestResponse | undefined;
    for (let i = 0; i < 8; i++) {
      last = await t.api({ method: 'GET', url: '/api/mcp/servers' });
      statuses.push(last.statusCode);
    }
    expect(statuses).toContain(429);
    expect(last!.statusCode).toBe(429);
    expect(last!.json()).toMatchObject({ success: false, error: { code: 'SB_ERR_RATE_LIMITED' } });
    expect(Number(last!.headers['retry-after'])).toBeGreaterThan(0);
    expect((await t.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
  });
});
