import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/db.js';
import { isHubError } from '../../src/errors.js';
import { type HubEvent, HubEventBus } from '../../src/events/hub-events.js';
import { EVENT_COLUMNS, EventRecorder, type EventRecorderOptions } from '../../src/events/recorder.js';
import {
  MAX_STRING_CHARS,
  REDACTED,
  TIGHT_ARRAY_ITEMS,
  TIGHT_STRING_CHARS,
} from '../../src/events/sanitizer.js';
import { createLogger } from '../../src/logger.js';
import { createMetrics } from '../../src/metrics.js';
import { drivers, openTestDb, type TestDb } from '../helpers/db.js';

/** Log lines written by the recorder, parsed. */
function captureLog() {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger('debug', { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { log, lines };
}

/** A Db whose copyRows goes through `wrap` first (slow or failing databases). */
function wrapCopy(
  db: Db,
  wrap: (rows: readonly (readonly unknown[])[], copy: () => Promise<number>) => Promise<number>,
): Db {
  return { ...db, copyRows: (table, columns, rows) => wrap(rows, () => db.copyRows(table, columns, rows)) };
}

const counterValue = async (c: { get(): Promise<{ values: { value: number }[] }> }) =>
  (await c.get()).values[0]?.value ?? 0;

describe.each(drivers)('EventRecorder on %s', (driver) => {
  let t: TestDb;
  let serverId: number;
  const bundleId = 'bundle-known';
  const open: EventRecorder[] = [];

  beforeAll(async () => {
    t = await openTestDb(driver);
    const { rows } = await t.db.query<{ id: number }>(
      "INSERT INTO mcp_servers (name, transport, command) VALUES ('rec-test', 'stdio', 'true') RETURNING id",
    );
    serverId = rows[0]?.id as number;
    await t.db.query("INSERT INTO mcp_bundles (id, name, server_ids) VALUES ($1, 'b', '[]')", [bundleId]);
  });
  afterAll(async () => {
    await Promise.all(open.map((r) => r.close()));
    await t.drop();
  });
  beforeEach(async () => {
    await t.db.query('TRUNCATE mcp_events');
  });

  function setup(options: Partial<EventRecorderOptions> = {}) {
    const bus = new HubEventBus();
    const metrics = createMetrics();
    const { log, lines } = captureLog();
    const recorder = new EventRecorder({ db: t.db, events: bus, metrics, log, ...options });
    open.push(recorder);
    recorder.start();
    return { bus, metrics, lines, recorder };
  }

  const count = async () =>
    Number((await t.db.query<{ n: number }>('SELECT count(*) AS n FROM mcp_events')).rows[0]?.n);

  it('writes 10,000 emitted events as exactly 10,000 rows', async () => {
    const { bus, metrics, recorder } = setup();
    for (let i = 0; i < 10_000; i++) {
      bus.emit({ type: 'tool_call', serverId, toolName: 'echo', ok: true, data: { i } });
    }
    await recorder.flush();
    expect(await count()).toBe(10_000);
    const { rows } = await t.db.query<{ n: number; distinct_i: number }>(
      "SELECT count(*) AS n, count(DISTINCT (event_data->>'i')::int) AS distinct_i FROM mcp_events",
    );
    expect(rows[0]).toEqual({ n: 10_000, distinct_i: 10_000 });
    expect(recorder.stats).toEqual({ queued: 0, inFlight: 0, written: 10_000, dropped: 0 });
    expect(await counterValue(metrics.recorderWritten)).toBe(10_000);
    await recorder.close();
    expect(await count()).toBe(10_000);
  });

  it('maps every field to its column', async () => {
    const { bus, recorder } = setup();
    const at = new Date(Date.UTC(2025, 4, 6, 7, 8, 9, 123));
    const event: HubEvent = {
      type: 'tool_call',
      at,
      serverId,
      bundleId,
      streamId: 'stream-1-c-1',
      toolName: 'analyze_seo',
      outcome: 'tool_error',
      ok: false,
      errorCode: 'SB_ERR_UPSTREAM_PROTOCOL',
      source: 'stream',
      clientId: 'client-7',
      configVersion: 3,
      durationMs: 12.6,
      requestBytes: 345,
      responseBytes: 6789,
      queueMs: 4.4,
      concurrency: 2,
      data: { args: { url: 'https://example.test' }, nested: [1, 'two'] },
    };
    bus.emit(event);
    bus.emit({ type: 'api_call' });
    await recorder.flush();
    const { rows } = await t.db.query(`SELECT ${EVENT_COLUMNS.join(', ')} FROM mcp_events ORDER BY id`);
    expect(rows).toEqual([
      {
        event_type: 'tool_call',
        server_id: serverId,
        bundle_id: bundleId,
        stream_id: 'stream-1-c-1',
        event_data: { args: { url: 'https://example.test' }, nested: [1, 'two'] },
        timestamp: at,
        duration: 13,
        tool_name: 'analyze_seo',
        outcome: 'tool_error',
        ok: false,
        error_code: 'SB_ERR_UPSTREAM_PROTOCOL',
        source: 'stream',
        client_id: 'client-7',
        config_version: 3,
        request_bytes: 345,
        response_bytes: 6789,
        queue_ms: 4,
        concurrency: 2,
      },
      {
        event_type: 'api_call',
        server_id: null,
        bundle_id: null,
        stream_id: null,
        event_data: null,
        timestamp: expect.any(Date),
        duration: null,
        tool_name: null,
        outcome: null,
        ok: null,
        error_code: null,
        source: null,
        client_id: null,
        config_version: null,
        request_bytes: null,
        response_bytes: null,
        queue_ms: null,
        concurrency: null,
      },
    ]);
  });

  it('never stores a secret, anywhere in the table', async () => {
    const { bus, recorder } = setup();
    const secrets = [
      'sk-live-0001',
      'hunter2-0002',
      'ghp_token0003',
      'cookie-value-0004',
      'bearer-value-0005',
      'url-password-0006',
      'query-token-0007',
      'embedded-json-0008',
      'error-bearer-0009',
      'session-0010',
    ];
    bus.emit({
      type: 'server_change',
      serverId,
      data: {
        env: { OPENAI_API_KEY: secrets[0], PGPASSWORD: secrets[1], GITHUB_PERSONAL_ACCESS_TOKEN: secrets[2] },
        headers: [{ name: 'x', Cookie: secrets[3] }],
        note: `called with Authorization: Bearer ${secrets[4]}`,
        url: `postgres://admin:${secrets[5]}@db.local/app?access_token=${secrets[6]}`,
        result: { content: [{ type: 'text', text: `{"client_secret": "${secrets[7]}"}` }] },
        error: new Error(`upstream refused Bearer ${secrets[8]}`),
        deep: { a: { b: { c: [{ sessionId: secrets[9] }] } } },
      },
    });
    bus.emit({ type: 'tool_call', serverId, toolName: 'echo', data: { args: { password: secrets[1] } } });
    await recorder.flush();
    const { rows } = await t.db.query<{ row: string }>('SELECT t::text AS row FROM mcp_events t');
    expect(rows).toHaveLength(2);
    const table = rows.map((r) => r.row).join('\n');
    for (const secret of secrets) expect(table).not.toContain(secret);
    expect(table).toContain(REDACTED);
  });

  it('truncates long strings and oversized payloads', async () => {
    const { bus, recorder } = setup();
    bus.emit({ type: 'tool_call', serverId, data: { html: 'x'.repeat(MAX_STRING_CHARS + 1000) } });
    bus.emit({
      type: 'tool_call',
      serverId,
      data: { pages: Array.from({ length: 50 }, () => 'y'.repeat(2000)) },
    });
    bus.emit({
      type: 'tool_call',
      serverId,
      data: Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`page${i}`, 'é'.repeat(2000)])),
    });
    await recorder.flush();
    const { rows } = await t.db.query<{ event_data: Record<string, unknown> }>(
      'SELECT event_data FROM mcp_events ORDER BY id',
    );
    expect(rows[0]?.event_data.html).toBe(`${'x'.repeat(MAX_STRING_CHARS)}…[truncated 1000 chars]`);
    // Over the cap, then within it once sanitized with the tighter limits: shorter, but still the pages.
    expect(rows[1]?.event_data.pages).toEqual([
      ...Array.from(
        { length: TIGHT_ARRAY_ITEMS },
        () => `${'y'.repeat(TIGHT_STRING_CHARS)}…[truncated 1744 chars]`,
      ),
      `…[truncated ${50 - TIGHT_ARRAY_ITEMS} items]`,
    ]);
    expect(rows[2]?.event_data).toEqual({
      truncated: true,
      bytes: expect.any(Number),
      preview: expect.any(String),
    });
  });

  it('bounds the buffer while the database is slow, and counts and logs every drop', async () => {
    const slow = wrapCopy(t.db, async (_rows, copy) => {
      await sleep(100);
      return copy();
    });
    const { bus, metrics, lines, recorder } = setup({
      db: slow,
      maxBuffer: 20,
      batchSize: 5,
      flushIntervalMs: 10,
    });
    for (let i = 0; i < 100; i++) bus.emit({ type: 'tool_call', serverId, data: { i } });
    expect(recorder.stats.queued).toBe(20);
    expect(recorder.stats.dropped).toBe(80);
    expect(await counterValue(metrics.recorderDropped)).toBe(80);
    // One warning at once, not one per event.
    const warnings = lines.filter((l) => l.msg === 'events dropped, not recorded');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ level: 40, dropped: 1, reasons: { buffer_full: 1 } });
    await recorder.flush();
    expect(await count()).toBe(20);
    expect(recorder.stats).toEqual({ queued: 0, inFlight: 0, written: 20, dropped: 80 });
    // The rest is summed up in one line: at the latest by close().
    await recorder.close();
    const later = lines.filter((l) => l.msg === 'events dropped, not recorded').slice(1);
    expect(later.reduce((sum, l) => sum + (l.dropped as number), 0)).toBe(79);
  });

  it('bounds the buffer by memory too', async () => {
    const slow = wrapCopy(t.db, async (_rows, copy) => {
      await sleep(50);
      return copy();
    });
    // About 10 KB of event_data per event: a 100 KB buffer holds 9 of them (with the row overhead).
    const { bus, recorder } = setup({ db: slow, maxBufferBytes: 100_000 });
    for (let i = 0; i < 30; i++)
      bus.emit({
        type: 'tool_call',
        serverId,
        data: { blob: 'z'.repeat(4000), i, more: ['y'.repeat(3000), 'x'.repeat(3000)] },
      });
    expect(recorder.stats).toMatchObject({ queued: 9, dropped: 21 });
    await recorder.flush();
    expect(await count()).toBe(9);
  });

  it('stores events that name unknown servers or bundles without losing the rest of the batch', async () => {
    const { bus, recorder } = setup();
    for (let i = 0; i < 100; i++) {
      const bad = i === 30 ? { serverId: 999_999 } : i === 60 ? { bundleId: 'no-such-bundle' } : {};
      bus.emit({ type: 'tool_call', serverId, bundleId, data: { i }, ...bad });
    }
    await recorder.flush();
    expect(recorder.stats).toMatchObject({ written: 100, dropped: 0 });
    const { rows } = await t.db.query<{
      server_id: number | null;
      bundle_id: string | null;
      event_data: object;
    }>(
      "SELECT server_id, bundle_id, event_data FROM mcp_events WHERE (event_data->>'i')::int IN (30, 60) ORDER BY id",
    );
    expect(rows).toEqual([
      { server_id: null, bundle_id: bundleId, event_data: { i: 30, unknown_server_id: 999_999 } },
      { server_id: serverId, bundle_id: null, event_data: { i: 60, unknown_bundle_id: 'no-such-bundle' } },
    ]);
    expect(await count()).toBe(100);
  });

  it('isolates a row the database refuses, keeping the others', async () => {
    // A data error the row mapping cannot foresee, refused for one row whatever its data.
    const picky = wrapCopy(t.db, async (rows, copy) => {
      if (rows.some((r) => r[EVENT_COLUMNS.indexOf('tool_name')] === 'poison')) {
        throw Object.assign(new Error('invalid input syntax'), { code: '22P02' });
      }
      return copy();
    });
    const { bus, recorder, lines } = setup({ db: picky });
    for (let i = 0; i < 50; i++)
      bus.emit({ type: 'tool_call', serverId, toolName: i === 17 ? 'poison' : 'echo' });
    await recorder.flush();
    expect(recorder.stats).toMatchObject({ written: 49, dropped: 1 });
    expect(await count()).toBe(49);
    expect(lines.some((l) => l.msg === 'event rejected by the database, dropped')).toBe(true);
  });

  it('stores a row whose data the database refuses without that data', async () => {
    const picky = wrapCopy(t.db, async (rows, copy) => {
      if (rows.some((r) => String(r[EVENT_COLUMNS.indexOf('event_data')]).includes('"refuse"'))) {
        throw Object.assign(new Error('unsupported Unicode escape sequence'), { code: '22P05' });
      }
      return copy();
    });
    const { bus, recorder } = setup({ db: picky });
    for (let i = 0; i < 10; i++)
      bus.emit({ type: 'tool_call', serverId, data: i === 4 ? { refuse: true } : { i } });
    await recorder.flush();
    expect(recorder.stats).toMatchObject({ written: 10, dropped: 0 });
    const { rows } = await t.db.query("SELECT event_data FROM mcp_events WHERE event_data ? 'unstorable'");
    expect(rows).toEqual([{ event_data: { unstorable: true, error_code: '22P05' } }]);
  });

  it('retries a failed write with backoff', async () => {
    let failures = 2;
    const flaky = wrapCopy(t.db, async (_rows, copy) => {
      if (failures-- > 0)
        throw Object.assign(new Error('Connection terminated unexpectedly'), { code: 'ECONNRESET' });
      return copy();
    });
    const { bus, recorder } = setup({ db: flaky, retryDelayMs: 5 });
    for (let i = 0; i < 10; i++) bus.emit({ type: 'tool_call', serverId });
    await recorder.flush();
    expect(recorder.stats).toMatchObject({ written: 10, dropped: 0 });
    expect(await count()).toBe(10);
  });

  it('drops and counts a batch after the last retry', async () => {
    let calls = 0;
    const down = wrapCopy(t.db, async () => {
      calls++;
      throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    });
    const { bus, metrics, recorder, lines } = setup({ db: down, retryDelayMs: 1, maxRetries: 2 });
    for (let i = 0; i < 10; i++) bus.emit({ type: 'tool_call', serverId });
    await recorder.flush();
    expect(calls).toBe(3);
    expect(recorder.stats).toMatchObject({ written: 0, dropped: 10 });
    expect(await counterValue(metrics.recorderDropped)).toBe(10);
    expect(lines.some((l) => l.msg === 'event batch could not be written, dropped' && l.level === 50)).toBe(
      true,
    );
  });

  it('close() with the database down gives up on the rest once a batch has failed', async () => {
    let calls = 0;
    const down = wrapCopy(t.db, async () => {
      calls++;
      throw Object.assign(new Error('Connection terminated'), { code: '57P01' });
    });
    const { bus, recorder } = setup({ db: down, retryDelayMs: 1, maxRetries: 1, batchSize: 5 });
    for (let i = 0; i < 50; i++) bus.emit({ type: 'tool_call', serverId });
    await recorder.close();
    expect(calls).toBe(2);
    expect(recorder.stats).toEqual({ queued: 0, inFlight: 0, written: 0, dropped: 50 });
  });

  it('writes on the interval without an explicit flush', async () => {
    const { bus } = setup({ flushIntervalMs: 20 });
    for (let i = 0; i < 3; i++) bus.emit({ type: 'tool_call', serverId });
    const deadline = Date.now() + 5_000;
    while ((await count()) < 3 && Date.now() < deadline) await sleep(10);
    expect(await count()).toBe(3);
  });

  it('flush() waits for a batch already being written', async () => {
    const slow = wrapCopy(t.db, async (_rows, copy) => {
      await sleep(50);
      return copy();
    });
    const { bus, recorder } = setup({ db: slow, batchSize: 10 });
    for (let i = 0; i < 25; i++) bus.emit({ type: 'tool_call', serverId });
    await sleep(10);
    await recorder.flush();
    expect(await count()).toBe(25);
  });

  it('close() flushes everything, is idempotent, and later events count as dropped', async () => {
    const { bus, metrics, recorder } = setup({ flushIntervalMs: 60_000 });
    for (let i = 0; i < 1234; i++) bus.emit({ type: 'tool_call', serverId });
    const first = recorder.close();
    expect(recorder.close()).toBe(first);
    bus.emit({ type: 'tool_call', serverId });
    await first;
    await recorder.close();
    expect(await count()).toBe(1234);
    bus.emit({ type: 'tool_call', serverId });
    await recorder.flush();
    expect(await count()).toBe(1234);
    expect(recorder.stats).toEqual({ queued: 0, inFlight: 0, written: 1234, dropped: 2 });
    expect(await counterValue(metrics.recorderDropped)).toBe(2);
    let err: unknown;
    try {
      recorder.start();
    } catch (e) {
      err = e;
    }
    expect(isHubError(err) && err.code).toBe('SB_ERR_CLOSED');
  });

  it('records nothing when disabled', async () => {
    const { bus, recorder } = setup({ enabled: false });
    bus.emit({ type: 'tool_call', serverId });
    await recorder.flush();
    await recorder.close();
    expect(await count()).toBe(0);
    expect(recorder.stats).toEqual({ queued: 0, inFlight: 0, written: 0, dropped: 0 });
  });
});
