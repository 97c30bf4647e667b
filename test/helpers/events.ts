import type { Db } from '../../src/db/db.js';
import { EVENT_COLUMNS } from '../../src/events/recorder.js';

/** One mcp_events row for tests; unset columns are NULL. */
export interface TestEvent {
  event_type?: string;
  server_id?: number | null;
  bundle_id?: string | null;
  stream_id?: string | null;
  event_data?: Record<string, unknown> | null;
  timestamp: Date;
  duration?: number | null;
  tool_name?: string | null;
  outcome?: string | null;
  ok?: boolean | null;
  error_code?: string | null;
  source?: string | null;
  client_id?: string | null;
  config_version?: number | null;
  request_bytes?: number | null;
  response_bytes?: number | null;
  queue_ms?: number | null;
  concurrency?: number | null;
}

/** Inserts events with COPY, as the recorder does. */
export async function insertEvents(db: Db, events: readonly TestEvent[]): Promise<void> {
  const rows = events.map((e) =>
    EVENT_COLUMNS.map((c) => {
      const v = (e as unknown as Record<string, unknown>)[c];
      if (c === 'event_type') return v ?? 'tool_call';
      return v ?? null;
    }),
  );
  for (let i = 0; i < rows.length; i += 5000)
    await db.copyRows('mcp_events', EVENT_COLUMNS, rows.slice(i, i + 5000));
}

/** A small deterministic PRNG (mulberry32), so generated distributions are the same on every run. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** percentile_cont: linear interpolation between the two closest ranks. */
export function percentileCont(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const pos = p * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}
