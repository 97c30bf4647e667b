import type { Queryable } from '../db/db.js';

/** One row of suggest_bundle_from_patterns() (migrations/0004_bundle_suggestions.sql says what each means). */
export interface PatternRow {
  server_ids: number[];
  step_servers: number[];
  tools: string[];
  support: number;
  confidence: number;
  lift: number;
  score: number;
  sessions: number;
  examples: { session: string; events: number[] }[];
}

export interface MineOptions {
  minSupport: number;
  since: Date | null;
  maxExamples: number;
  /** The best `limit` patterns only (all when absent). */
  limit?: number;
}

/** The patterns of the event log, best first; all the mining is one set-based statement in the database. */
export async function minePatterns(db: Queryable, o: MineOptions): Promise<PatternRow[]> {
  const { rows } = await db.query<PatternRow>(
    `SELECT * FROM suggest_bundle_from_patterns(
       p_min_support => $1::int,
       p_since => ($2::timestamptz AT TIME ZONE 'UTC'),
       p_max_examples => $3::int)
     LIMIT $4`,
    [o.minSupport, o.since?.toISOString() ?? null, o.maxExamples, o.limit ?? null],
  );
  return rows;
}

/** The events of one example session of a pattern: the event id of each step. */
export interface ExampleEvents {
  /** Index of the pattern in the caller's list. */
  pattern: number;
  /** Index of the example session within the pattern. */
  example: number;
  events: readonly number[];
}

/**
 * A scalar of an earlier step's structured result that equals a top-level argument of a later step, in
 * `sessions` of the example sessions, with `distinctValues` different values among them.
 */
export interface FlowRow {
  pattern: number;
  from_step: number;
  to_step: number;
  path: string[];
  /** The argument it flowed into: its key, and the keys down to it when nested. */
  arg: string[];
  sessions: number;
  distinct_values: number;
}

/** The most common value of a step's argument in the example sessions. */
export interface ArgumentRow {
  pattern: number;
  step: number;
  arg: string;
  value: unknown;
  /** Example sessions where the argument had this value. */
  count: number;
  /** Example sessions where the argument was given at all. */
  present: number;
}

// The stored events of the examples, one row per (pattern, example, step). Reads the listed ids only: a
// bounded read whatever the size of the log.
const exampleEventsCte = `ex AS (
    SELECT x.pattern, x.example, x.step, e.event_data
    FROM jsonb_to_recordset($1::jsonb) AS x(pattern int, example int, step int, event_id int)
    JOIN mcp_events e ON e.id = x.event_id
  )`;

function exampleParam(examples: readonly ExampleEvents[]): string {
  return JSON.stringify(
    examples.flatMap((x) =>
      x.events.map((eventId, step) => ({ pattern: x.pattern, example: x.example, step, event_id: eventId })),
    ),
  );
}

// Values the sanitizer wrote in place of the real one: never evidence of a flow, never a literal to replay.
const sanitizerMarker = `(v #>> '{}') IN ('[redacted]', '[circular]', '[max depth]')
    OR (v #>> '{}') LIKE '%…[truncated %' OR (v #>> '{}') LIKE '[binary % bytes]'`;

/**
 * Where a value of an earlier step's result reappears as an argument of a later step of the same example
 * session. The result's structuredContent is walked to its scalar leaves (objects and arrays, up to
 * `maxDepth` levels); strings and numbers only, as true/false/null/"" match by coincidence.
 */
export async function exampleFlows(
  db: Queryable,
  examples: readonly ExampleEvents[],
  maxDepth = 8,
): Promise<FlowRow[]> {
  if (examples.length === 0) return [];
  const { rows } = await db.query<FlowRow>(
    `WITH RECURSIVE ${exampleEventsCte},
     leaves (pattern, example, step, path, v, depth) AS (
       SELECT pattern, example, step, ARRAY[]::text[], event_data #> '{result,structuredContent}', 0
       FROM ex WHERE event_data #> '{result,structuredContent}' IS NOT NULL
       UNION ALL
       SELECT l.pattern, l.example, l.step, l.path || c.key, c.value, l.depth + 1
       FROM leaves l
       CROSS JOIN LATERAL (
         SELECT o.key, o.value
         FROM jsonb_each(CASE WHEN jsonb_typeof(l.v) = 'object' THEN l.v END) o
         UNION ALL
         SELECT (a.i - 1)::text, a.value
         FROM jsonb_array_elements(CASE WHEN jsonb_typeof(l.v) = 'array' THEN l.v END) WITH ORDINALITY a(value, i)
       ) c
       WHERE l.depth < $2
     ), args (pattern, example, step, arg, v, depth) AS (
       SELECT ex.pattern, ex.example, ex.step, ARRAY[a.key], a.value, 1
       FROM ex
       CROSS JOIN LATERAL jsonb_each(
         CASE WHEN jsonb_typeof(ex.event_data -> 'arguments') = 'object' THEN ex.event_data -> 'arguments' END
       ) a
       UNION ALL
       -- Into nested objects too ({ options: { url } }); array items are values as a whole.
       SELECT g.pattern, g.example, g.step, g.arg || c.key, c.value, g.depth + 1
       FROM args g
       CROSS JOIN LATERAL jsonb_each(CASE WHEN jsonb_typeof(g.v) = 'object' THEN g.v END) c
       WHERE g.depth < $2
     )
     SELECT l.pattern, l.step AS from_step, a.step AS to_step, l.path, a.arg,
            count(DISTINCT l.example)::int AS sessions, count(DISTINCT a.v)::int AS distinct_values
     FROM leaves l
     JOIN args a ON a.pattern = l.pattern AND a.example = l.example AND a.step > l.step AND a.v = l.v
     WHERE jsonb_typeof(l.v) IN ('string', 'number') AND l.v <> '""'::jsonb
       AND NOT (${sanitizerMarker.replaceAll('v #>>', 'l.v #>>')})
     GROUP BY l.pattern, l.step, a.step, l.path, a.arg`,
    [exampleParam(examples), maxDepth],
  );
  return rows;
}

/** The most common value of each top-level argument of each step in the example sessions. */
export async function commonArguments(
  db: Queryable,
  examples: readonly ExampleEvents[],
): Promise<ArgumentRow[]> {
  if (examples.length === 0) return [];
  const { rows } = await db.query<ArgumentRow>(
    `WITH ${exampleEventsCte},
     args AS (
       SELECT ex.pattern, ex.example, ex.step, a.key AS arg, a.value AS v
       FROM ex
       CROSS JOIN LATERAL jsonb_each(
         CASE WHEN jsonb_typeof(ex.event_data -> 'arguments') = 'object' THEN ex.event_data -> 'arguments' END
       ) a
     ), counted AS (
       SELECT pattern, step, arg, v, count(*)::int AS count,
              sum(count(*)) OVER (PARTITION BY pattern, step, arg)::int AS present,
              row_number() OVER (PARTITION BY pattern, step, arg ORDER BY count(*) DESC, min(example)) AS rank
       FROM args
       GROUP BY pattern, step, arg, v
     )
     SELECT pattern, step, arg, v AS value, count, present
     FROM counted
     WHERE rank = 1 AND NOT (${sanitizerMarker})`,
    [exampleParam(examples)],
  );
  return rows;
}

/** Names of servers by id (deleted ones included: a suggestion never names one, but a race may). */
export async function serverNames(db: Queryable, ids: readonly number[]): Promise<Map<number, string>> {
  if (ids.length === 0) return new Map();
  const { rows } = await db.query<{ id: number; name: string }>(
    'SELECT id, name FROM mcp_servers WHERE id = ANY($1::int[])',
    [ids],
  );
  return new Map(rows.map((r) => [r.id, r.name]));
}
