/**
 * Event recorder throughput against its ceiling, in one run on one fresh PostgreSQL database:
 *   COPY      — pre-built recorder rows sent with pg-copy-streams on one connection, in batches of the
 *               recorder's batch size (the ceiling: what the database takes).
 *   recorder  — N HubEvents emitted on a HubEventBus as fast as the loop goes (yielding to the event loop
 *               every batch, as a server would between requests), then flush(): emit → rows committed,
 *               sanitizing and row building included.
 *   INSERT    — multi-row INSERT of the same rows, 500 per statement (for reference).
 * Each method runs BENCH_REPS times (default 3), in rotating order, on an emptied table.
 *
 *   npx tsx bench/recorder.ts              BENCH_EVENTS (default 200000), BENCH_REPS, TEST_DATABASE_URL
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { copyStatement, encodeCopyRows } from '../src/db/db.js';
import { loadMigrations, migrate } from '../src/db/migrator.js';
import { openPgDb } from '../src/db/pg-db.js';
import { type HubEvent, HubEventBus } from '../src/events/hub-events.js';
import {
  EVENT_COLUMNS,
  EventRecorder,
  type EventRow,
  eventToRow,
  RECORDER_DEFAULTS,
} from '../src/events/recorder.js';
import { createLogger } from '../src/logger.js';
import { createMetrics } from '../src/metrics.js';
import { migrationsDir } from '../src/paths.js';
import { createPostgresDatabase } from './lib/postgres-database.js';

const N = Number(process.env.BENCH_EVENTS ?? 200_000);
const REPS = Number(process.env.BENCH_REPS ?? 3);
const BATCH = RECORDER_DEFAULTS.batchSize;
const SERVERS = 50;
const BUNDLES = 20;

/** Tool-call events whose data is about the size of the ceiling bench's rows (~320 bytes of JSON). */
function makeEvents(n: number): HubEvent[] {
  const now = Date.now();
  return Array.from({ length: n }, (_, i) => ({
    type: 'tool_call',
    at: new Date(now - (i % 604_800) * 1000),
    serverId: 1 + (i % SERVERS),
    bundleId: `bundle-${i % BUNDLES}`,
    streamId: `stream-${i % 1000}`,
    toolName: 'echo',
    outcome: i % 17 ? 'success' : 'tool_error',
    ok: i % 17 !== 0,
    source: 'rest',
    clientId: `client-${i % 100}`,
    configVersion: 1,
    durationMs: (i * 7919) % 2000,
    requestBytes: 120,
    responseBytes: 180,
    data: {
      requestId: `req-${i}`,
      args: { message: 'hello world '.repeat(6).trim(), count: i % 100 },
      result: { content: [{ type: 'text', text: 'Echo: hello world hello world hello' }], isError: false },
      client: { name: 'bench-client', version: '1.0.0' },
      tags: ['a', 'b', 'c'],
    },
  }));
}

async function copyBatches(client: pg.Client, rows: EventRow[]): Promise<void> {
  const statement = copyStatement('mcp_events', EVENT_COLUMNS, 'STDIN');
  for (let off = 0; off < rows.length; off += BATCH) {
    const text = encodeCopyRows(rows.slice(off, off + BATCH));
    await pipeline(Readable.from([text]), client.query(copyFrom(statement)));
  }
}

async function insertBatches(client: pg.Client, rows: EventRow[]): Promise<void> {
  const width = EVENT_COLUMNS.length;
  for (let off = 0; off < rows.length; off += 500) {
    const batch = rows.slice(off, off + 500);
    const placeholders = batch.map(
      (_, j) => `(${EVENT_COLUMNS.map((_c, k) => `$${j * width + k + 1}`).join(',')})`,
    );
    await client.query(
      `INSERT INTO mcp_events (${EVENT_COLUMNS.join(', ')}) VALUES ${placeholders.join(',')}`,
      batch.flat(),
    );
  }
}

interface Sample {
  rowsPerSec: number;
  extra?: string;
}

function stats(xs: number[]) {
  const sorted = [...xs].sort((a, b) => a - b);
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, xs.length - 1));
  return {
    median: sorted[Math.floor(sorted.length / 2)] as number,
    mean,
    standardError: sd / Math.sqrt(xs.length),
  };
}

/** Like undici's benchmarks/_util printResults: result, ± standard error, and the ratio to the ceiling. */
function printResults(results: Record<string, number[]>, ceiling: string): void {
  const base = stats(results[ceiling] ?? [1]).median;
  const rows = Object.entries(results)
    .sort((a, b) => stats(a[1]).median - stats(b[1]).median)
    .map(([name, xs]) => {
      const s = stats(xs);
      return {
        Tests: name,
        Samples: xs.length,
        'Result (median)': `${Math.round(s.median).toLocaleString('en-US')} rows/s`,
        Tolerance: `± ${((s.standardError / s.mean) * 100).toFixed(2)} %`,
        [`vs ${ceiling}`]: `${(s.median / base).toFixed(2)}×`,
      };
    });
  console.table(rows);
}

const database = await createPostgresDatabase('sb_bench');
const log = createLogger(process.env.LOG_LEVEL ?? 'warn');
const db = await openPgDb(database.url, { max: 4 });
const client = new pg.Client({ connectionString: database.url, options: '-c TimeZone=UTC' });
try {
  await migrate(db, await loadMigrations(migrationsDir));
  await client.connect();
  // The rows name real servers and bundles, as the hub's events do (the foreign keys are checked).
  await db.query(
    `INSERT INTO mcp_servers (name, transport, command) SELECT 'bench-' || g, 'stdio', 'true' FROM generate_series(1, ${SERVERS}) g`,
  );
  await db.query(
    `INSERT INTO mcp_bundles (id, name, server_ids) SELECT 'bundle-' || g, 'bench', '[]' FROM generate_series(0, ${BUNDLES - 1}) g`,
  );
  const events = makeEvents(N);
  const rows = events.map(eventToRow);
  console.log(
    `recorder bench: ${N.toLocaleString('en-US')} events × ${REPS} reps, batch ${BATCH}, PostgreSQL ${
      (await client.query('SHOW server_version')).rows[0].server_version
    }, event_data ≈ ${rows[0]?.[4]?.toString().length} bytes`,
  );

  const count = async () => Number((await client.query('SELECT count(*) AS n FROM mcp_events')).rows[0].n);
  const methods: Record<string, () => Promise<Sample>> = {
    COPY: async () => {
      const t0 = performance.now();
      await copyBatches(client, rows);
      return { rowsPerSec: N / ((performance.now() - t0) / 1000) };
    },
    recorder: async () => {
      const bus = new HubEventBus();
      const metrics = createMetrics();
      // An unbounded buffer: this measures throughput, and the emit loop outruns the database by design.
      const unbounded = { maxBuffer: N, maxBufferBytes: Number.MAX_SAFE_INTEGER };
      const recorder = new EventRecorder({ db, events: bus, metrics, log, ...unbounded });
      recorder.start();
      const t0 = performance.now();
      for (let i = 0; i < N; i++) {
        bus.emit(events[i] as HubEvent);
        if (i % BATCH === BATCH - 1) await new Promise(setImmediate);
      }
      const emitMs = performance.now() - t0;
      await recorder.flush();
      const ms = performance.now() - t0;
      await recorder.close();
      const { dropped, written } = recorder.stats;
      if (dropped !== 0 || written !== N) throw new Error(`recorder wrote ${written}, dropped ${dropped}`);
      return {
        rowsPerSec: N / (ms / 1000),
        extra: `emit loop ${emitMs.toFixed(0)} ms of ${ms.toFixed(0)} ms`,
      };
    },
    'INSERT ×500': async () => {
      const t0 = performance.now();
      await insertBatches(client, rows);
      return { rowsPerSec: N / ((performance.now() - t0) / 1000) };
    },
  };

  const results: Record<string, number[]> = {};
  const names = Object.keys(methods);
  for (let rep = 0; rep < REPS; rep++) {
    for (let k = 0; k < names.length; k++) {
      const name = names[(rep + k) % names.length] as string;
      await client.query('TRUNCATE mcp_events');
      await client.query('VACUUM ANALYZE mcp_events');
      const sample = await (methods[name] as () => Promise<Sample>)();
      const n = await count();
      if (n !== N) throw new Error(`${name}: ${n} rows in mcp_events, expected ${N}`);
      results[name] = [...(results[name] ?? []), sample.rowsPerSec];
      console.log(
        `  rep ${rep + 1} ${name.padEnd(12)} ${Math.round(sample.rowsPerSec).toLocaleString('en-US').padStart(9)} rows/s${
          sample.extra ? `  (${sample.extra})` : ''
        }`,
      );
    }
  }
  printResults(results, 'COPY');

  // What recording costs the emitter (the request path): emit with the writes stubbed out.
  const emitCosts: number[] = [];
  for (let rep = 0; rep < REPS; rep++) {
    const bus = new HubEventBus();
    const noWrites = {
      ...db,
      copyRows: async (_t: string, _c: readonly string[], r: readonly unknown[]) => r.length,
    };
    const recorder = new EventRecorder({
      db: noWrites,
      events: bus,
      metrics: createMetrics(),
      log,
      maxBuffer: N,
      maxBufferBytes: Number.MAX_SAFE_INTEGER,
    });
    recorder.start();
    const t0 = performance.now();
    for (let i = 0; i < N; i++) bus.emit(events[i] as HubEvent);
    emitCosts.push(((performance.now() - t0) * 1000) / N);
    await recorder.close();
  }
  console.log(`emit cost (sanitize + row, writes stubbed): ${stats(emitCosts).median.toFixed(2)} µs/event`);
  const ratio = stats(results.recorder ?? [0]).median / stats(results.COPY ?? [1]).median;
  console.log(`recorder/COPY = ${ratio.toFixed(2)} (goal ≥ 0.70)`);
} finally {
  await client.end().catch(() => {});
  await db.close();
  await database.drop();
}
