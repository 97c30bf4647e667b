import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drivers } from '../helpers/db.js';
import { insertEvents, type TestEvent } from '../helpers/events.js';
import { startTestHub, type TestHub } from '../helpers/hub.js';

const JAN = Date.UTC(2026, 0, 1);

// 250 events; many share a timestamp, so the page boundaries fall inside ties.
const events: TestEvent[] = Array.from({ length: 250 }, (_, i) => ({
  event_type: i % 4 === 0 ? 'api_call' : 'tool_call',
  server_id: i % 4 === 0 ? null : 1 + (i % 3),
  tool_name: i % 4 === 0 ? null : `tool_${i % 3}`,
  outcome: i % 6 === 0 ? 'timeout' : 'success',
  ok: i % 6 !== 0,
  timestamp: new Date(JAN + Math.floor(i / 7) * 1000),
  duration: i,
  client_id: i % 2 === 0 ? 'even' : 'odd',
  event_data: { i },
}));

describe.each(drivers)('GET /api/mcp/events on %s', (driver) => {
  let t: TestHub;
  let ordered: { id: number; server_id: number | null; event_type: string; outcome: string }[];

  beforeAll(async () => {
    // The events are dated 2026-01: keep the retention job off them however long the suite runs.
    t = await startTestHub(driver, { SWITCHBOARD_EVENT_RETENTION_DAYS: 3650 });
    await insertEvents(t.hub.db, events);
    // Microseconds a JS Date cannot hold: the cursor must not lose them.
    await t.hub.db.query(
      `INSERT INTO mcp_events (event_type, server_id, timestamp, ok)
       SELECT 'tool_call', 1, timestamp '2026-01-01 00:00:05.000001' + make_interval(secs => g * 0.000001), true
       FROM generate_series(0, 9) g`,
    );
    ordered = (
      await t.hub.db.query<{ id: number; server_id: number | null; event_type: string; outcome: string }>(
        "SELECT id, server_id, event_type, outcome FROM mcp_events WHERE timestamp < '2026-02-01' ORDER BY timestamp DESC, id DESC",
      )
    ).rows;
    expect(ordered).toHaveLength(260);
  });
  afterAll(() => t?.close());

  const walk = async (query: string, limit: number) => {
    const ids: number[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const url: string = `/api/mcp/events?until=2026-02-01&limit=${limit}${query}${cursor ? `&cursor=${cursor}` : ''}`;
      const res = await t.api({ method: 'GET', url });
      expect(res.statusCode).toBe(200);
      const body = res.json();
      expect(body.events.length).toBeLessThanOrEqual(limit);
      ids.push(...body.events.map((e: { id: number }) => e.id));
      cursor = body.nextCursor;
      pages++;
    } while (cursor && pages < 100);
    return { ids, pages };
  };

  it('pages through every event newest first, none twice, none skipped', async () => {
    const { ids, pages } = await walk('', 40);
    expect(ids).toEqual(ordered.map((r) => r.id));
    expect(pages).toBe(7);
  });

  it('applies filters to every page', async () => {
    const { ids } = await walk('&serverId=2&outcome=timeout', 3);
    expect(ids).toEqual(ordered.filter((r) => r.server_id === 2 && r.outcome === 'timeout').map((r) => r.id));
    const api = await walk('&eventType=api_call', 25);
    expect(api.ids).toEqual(ordered.filter((r) => r.event_type === 'api_call').map((r) => r.id));
  });

  it('returns events with ISO 8601 UTC timestamps and the stored columns', async () => {
    const res = await t.api({ method: 'GET', url: '/api/mcp/events?until=2026-01-01T00:00:01Z&limit=1' });
    const [event] = res.json().events;
    expect(event).toMatchObject({ timestamp: '2026-01-01T00:00:00.000Z', event_data: { i: 6 }, duration: 6 });
  });

  it('refuses bad cursors, limits and filters with 400', async () => {
    for (const qs of [
      'cursor=nope',
      `cursor=${Buffer.from('["x",1]').toString('base64url')}`,
      `cursor=${Buffer.from('["2026-01-01T00:00:00.000000\' OR 1=1",1]').toString('base64url')}`,
      'cursor=a%27%20OR%201%3D1',
      'limit=0',
      'limit=501',
      'outcome=weird',
      'serverId=abc',
      'since=2026-02-01&until=2026-01-01',
    ]) {
      const res = await t.api({ method: 'GET', url: `/api/mcp/events?${qs}` });
      expect(res.statusCode, qs).toBe(400);
      expect(res.json().error.code).toBe('SB_ERR_VALIDATION');
    }
  });
});
