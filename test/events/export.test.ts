import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StreamOptions, StreamQuery } from '../../src/db/db.js';
import { EXPORT_COLUMNS } from '../../src/events/export.js';
import { drivers } from '../helpers/db.js';
import { insertEvents, prng, type TestEvent } from '../helpers/events.js';
import { startTestHub, type TestHub, testToken } from '../helpers/hub.js';

const JAN = Date.UTC(2026, 0, 1);
const FEB = Date.UTC(2026, 1, 1);
const tricky = [
  'plain',
  'a,b',
  'say "hi"',
  'two\nlines',
  'tab\there',
  'ünïcødé ✓',
  "x'; DROP TABLE mcp_events; --",
  // Backslashes, COPY's own markers (\N for NULL, \. for the end of data) and control characters, which
  // COPY escapes and the export must turn back into the very same text.
  'C:\\temp\\new \\N \\.',
  '\\.',
  '\\N',
  'json-ish \\u0000 \\n \\" \\\\',
  'ctl \x01 \x02 \x1f \x7f end',
  'cr\r\nlf',
  '"quoted", \'single\'',
  '😀 \u202e \u2028 \ufeff \ud834\udd1e',
  '',
];

function roundTripEvents(): TestEvent[] {
  const rand = prng(7);
  const events: TestEvent[] = [];
  for (let i = 0; i < 2500; i++) {
    const text = tricky[i % tricky.length]!;
    events.push({
      event_type: i % 10 === 0 ? 'api_call' : 'tool_call',
      server_id: i % 10 === 0 ? null : 1 + (i % 3),
      timestamp: new Date(JAN + i * 60_000 + Math.floor(rand() * 1000)),
      duration: i % 13 === 0 ? null : Math.floor(rand() * 5000),
      tool_name: i % 10 === 0 ? null : text,
      outcome: i % 7 === 0 ? 'tool_error' : 'success',
      ok: i % 11 === 0 ? null : i % 7 !== 0,
      client_id: i % 5 === 0 ? text : null,
      config_version: 1,
      request_bytes: i,
      response_bytes: i * 2,
      event_data:
        i % 17 === 0
          ? null
          : { note: text, [`k${text}`]: i, n: i, nested: { list: [1, 'two', text, null], ok: true } },
    });
  }
  return events;
}

/** 20,000 events of ~1 KiB in February: an export that takes a while to read. */
function bulkEvents(): TestEvent[] {
  const pad = 'x'.repeat(1000);
  return Array.from({ length: 20_000 }, (_, i) => ({
    event_type: 'tool_call',
    server_id: 2,
    tool_name: 'generate_content',
    timestamp: new Date(FEB + i * 1000),
    duration: 10,
    ok: true,
    event_data: { pad, i },
  }));
}

describe.each(drivers)('GET /api/mcp/events/export on %s', (driver) => {
  let t: TestHub;
  let table: Record<string, unknown>[];

  beforeAll(async () => {
    // The events are dated 2026-01: keep the retention job off them however long the suite runs.
    t = await startTestHub(driver, { SWITCHBOARD_EVENT_RETENTION_DAYS: 3650 });
    await insertEvents(t.hub.db, roundTripEvents());
    await insertEvents(t.hub.db, bulkEvents());
    table = (
      await t.hub.db.query<Record<string, unknown>>(
        `SELECT ${EXPORT_COLUMNS.join(', ')} FROM mcp_events WHERE timestamp < '2026-02-01' ORDER BY id`,
      )
    ).rows;
    expect(table).toHaveLength(2500);
  });
  afterAll(() => t?.close());

  const january = 'startDate=2026-01-01T00:00:00Z&endDate=2026-02-01T00:00:00Z';
  const asJson = (r: Record<string, unknown>) => ({ ...r, timestamp: (r.timestamp as Date).toISOString() });
  const asCsv = (r: Record<string, unknown>) =>
    Object.fromEntries(
      EXPORT_COLUMNS.map((c) => {
        const v = r[c];
        if (v === null || v === undefined) return [c, ''];
        if (v instanceof Date) return [c, v.toISOString()];
        if (typeof v === 'object') return [c, JSON.stringify(v)];
        return [c, String(v)];
      }),
    );

  it('round-trips NDJSON', async () => {
    const res = await t.api({ method: 'GET', url: `/api/mcp/events/export?format=ndjson&${january}` });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('application/x-ndjson');
    const lines = res.body.split('\n');
    expect(lines.pop()).toBe('');
    expect(lines.map((l) => JSON.parse(l))).toEqual(table.map(asJson));
  });

  it('round-trips JSON', async () => {
    const res = await t.api({ method: 'GET', url: `/api/mcp/events/export?format=json&${january}` });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('application/json');
    expect(res.json()).toEqual(table.map(asJson));
  });

  it('round-trips CSV with a header, quoting and ISO 8601 UTC dates', async () => {
    const res = await t.api({ method: 'GET', url: `/api/mcp/events/export?format=csv&${january}` });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('text/csv');
    expect(res.headers['content-disposition']).toMatch(/attachment; filename="mcp-events-.*\.csv"/);
    expect(res.body.split('\n')[0]).toBe(EXPORT_COLUMNS.join(','));
    const records = parse(res.body, { columns: true }) as Record<string, string>[];
    // JSON in a cell is compared parsed: its spacing is the database's.
    const parsed = (r: Record<string, string>) => ({
      ...r,
      event_data: r.event_data === '' ? null : JSON.parse(r.event_data!),
    });
    expect(records.map(parsed)).toEqual(table.map((r) => ({ ...asCsv(r), event_data: r.event_data })));
    expect(records[1]!.timestamp).toMatch(/^2026-01-01T00:01:\d\d\.\d{3}Z$/);
  });

  it('filters by server, event type and dates', async () => {
    const res = await t.api({
      method: 'GET',
      url: `/api/mcp/events/export?format=ndjson&${january}&serverId=2&eventType=tool_call`,
    });
    const rows = res.body
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(rows).toEqual(table.filter((r) => r.server_id === 2 && r.event_type === 'tool_call').map(asJson));
    const empty = await t.api({
      method: 'GET',
      url: '/api/mcp/events/export?format=json&startDate=2030-01-01&endDate=2030-01-02',
    });
    expect(empty.json()).toEqual([]);
    const emptyCsv = await t.api({
      method: 'GET',
      url: '/api/mcp/events/export?format=csv&startDate=2030-01-01&endDate=2030-01-02',
    });
    expect(emptyCsv.body).toBe(`${EXPORT_COLUMNS.join(',')}\n`);
    const one = await t.api({
      method: 'GET',
      url: '/api/mcp/events/export?startDate=2026-01-01T00:10:00Z&endDate=2026-01-01T00:11:00Z',
    });
    expect(one.headers['content-type']).toContain('ndjson');
    expect(
      one.body
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).id),
    ).toEqual([table[10]!.id]);
  });

  it('refuses bad input with 400', async () => {
    for (const qs of [
      'format=xml',
      'format=csv;DROP',
      'startDate=yesterday',
      'startDate=2026-02-30',
      'endDate=2026-01-01T25:00:00Z',
      'startDate=2026-02-01&endDate=2026-01-01',
      'startDate=2020-01-01&endDate=2026-01-01',
      'serverId=1%20OR%201%3D1',
      "eventType=tool_call'--",
      'limit=5',
    ]) {
      const res = await t.api({ method: 'GET', url: `/api/mcp/events/export?${qs}` });
      expect(res.statusCode, qs).toBe(400);
      expect(res.json().error.code).toBe('SB_ERR_VALIDATION');
    }
  });

  it('stops reading the database when the client goes away mid-export', async () => {
    const db = t.hub.db;
    // The export reads through copyOut where the driver has it (PostgreSQL), through stream elsewhere: rows
    // taken from the database are counted where they leave it (one line per row for NDJSON bytes).
    let rows = 0;
    let pagesAsked = 0;
    let pagesRead = 0;
    let ended = false;
    const counted = async function* <T>(inner: AsyncIterable<T>, count: (item: T) => number) {
      try {
        for await (const item of inner) {
          rows += count(item);
          yield item;
        }
      } finally {
        ended = true;
      }
    };
    const { stream, copyOut } = db;
    if (copyOut) {
      db.copyOut = (...args) =>
        counted(copyOut.apply(db, args), (chunk) => {
          let n = 0;
          for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) n++;
          return n;
        });
    } else {
      // Pages are read on PGlite's own thread: one asked for before the buffers filled may still be coming.
      db.stream = <R>(query: StreamQuery<R>, options?: StreamOptions) => {
        const asking: StreamQuery<R> = {
          ...query,
          page(after, limit) {
            pagesAsked++;
            return query.page(after, limit);
          },
        };
        return counted(stream.call(db, asking, options) as AsyncIterable<R[]>, (batch) => {
          pagesRead++;
          return batch.length;
        });
      };
    }
    try {
      await t.app.listen({ port: 0, host: '127.0.0.1' });
      const { port } = t.app.server.address() as AddressInfo;
      const req = http.get({
        host: '127.0.0.1',
        port,
        path: '/api/mcp/events/export?format=ndjson&startDate=2026-02-01',
        headers: { authorization: `Bearer ${testToken}` },
      });
      const res = await new Promise<http.IncomingMessage>((resolve) => req.once('response', resolve));
      expect(res.statusCode).toBe(200);
      // Take one chunk, then stop reading: back-pressure must hold the export where it is, with what the
      // sockets' buffers hold read and the rest of the 20,000 rows left in the database.
      await new Promise((resolve) => res.once('data', resolve));
      res.pause();
      await new Promise((resolve) => setTimeout(resolve, 300));
      await waitFor(() => pagesAsked === pagesRead);
      const whilePaused = rows;
      const askedWhilePaused = pagesAsked;
      expect(whilePaused).toBeLessThan(15_000);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(rows).toBe(whilePaused);
      expect(pagesAsked).toBe(askedWhilePaused);
      if (driver === 'postgres') expect(await exportBackends()).toBe(1);
      req.destroy();
      await waitFor(() => ended);
      expect(rows).toBe(whilePaused);
      if (driver === 'postgres') await waitFor(async () => (await exportBackends()) === 0);
      // The hub is fine afterwards.
      const after = await t.api({ method: 'GET', url: `/api/mcp/events/export?format=json&${january}` });
      expect(after.json()).toHaveLength(2500);
    } finally {
      db.stream = stream;
      db.copyOut = copyOut;
    }
  });

  async function exportBackends(): Promise<number> {
    const { rows } = await t.hub.db.query<{ n: number }>(
      `SELECT count(*) AS n FROM pg_stat_activity
       WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
         AND query LIKE '% FROM mcp_events WHERE %ORDER BY id%'
         AND state <> 'idle'`,
    );
    return rows[0]!.n;
  }
});

async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
