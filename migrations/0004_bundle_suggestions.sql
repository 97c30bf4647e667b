-- Auto-bundling: suggest_bundle_from_patterns() mines the tool calls of mcp_events for sequences of two and
-- three calls that the same actor makes again and again, across at least two servers. Replaces the first
-- form of 0001 (pairs of consecutive calls only, no sessions, no lift); its return type changes, so it is
-- dropped rather than replaced.
--
-- Sessions: an actor is the call's stream, else its client. An actor's calls form one session while each
-- follows the one before within p_window; a longer pause starts a new session. Calls made by bundle
-- executions (source 'bundle' or a bundle id) are no evidence of what users do by hand, and are left out.
--
-- A pattern is a sequence of distinct (server, tool) steps, each a successful call (failed calls are left out of
-- the sequences), in the order made, all among the 5 calls of the actor that follow the first step and within
-- p_window of it: calls in between are allowed, a workflow done by hand has detours. The lookahead bounds the
-- work: one sort of the calls, then at most 5 pairs and 10 triples per call, whatever the session lengths.
--
-- For a pattern P = (A, R…) — its first step A, then the rest R (one step, or two in order):
--   support    = sessions that contain P
--   confidence = support(P) / support(A)             — P(the rest follows | A was called)
--   lift       = confidence / (support(R) / sessions) — above 1 when R follows A more often than R occurs
--   score      = support × confidence × ln(lift)      — 0 when A and the rest are independent
-- A triple's confidence is that of the whole sequence, not of its last step after the first two: a detour
-- that happens to sit between two steps of a real workflow (A→N→B) is as likely after A as N is, which
-- keeps it out, while A→B→C done every time keeps the confidence of A→B.
-- Kept: support ≥ p_min_support, confidence ≥ p_min_confidence, lift ≥ p_min_lift, at least two servers, no
-- deleted server. A pair is dropped when a kept triple that contains it has at least 90% of its support
-- (the longer workflow says the same, and more), and a pattern whose servers (in order of first use) are
-- already those of a bundle is not suggested again. examples: the p_max_examples most recent sessions
-- with the ids of the events that form the pattern in each, so that later values can be traced to earlier
-- results without reading any other event.
DROP FUNCTION suggest_bundle_from_patterns();

CREATE FUNCTION suggest_bundle_from_patterns(
  p_window interval DEFAULT interval '10 minutes',
  p_min_support integer DEFAULT 5,
  p_since timestamp DEFAULT NULL,
  p_min_confidence numeric DEFAULT 0.3,
  p_min_lift numeric DEFAULT 1.2,
  p_max_examples integer DEFAULT 10
)
RETURNS TABLE (
  -- The bundle's serverIds: the pattern's servers in order of first use.
  server_ids integer[],
  -- The server of each step, and its tool.
  step_servers integer[],
  tools text[],
  support bigint,
  confidence numeric,
  lift numeric,
  score numeric,
  -- Sessions mined (the denominator of lift).
  sessions bigint,
  -- [{ "session": "<actor>@<session start>", "events": [id, …] }], newest first.
  examples jsonb
) AS $$
  WITH calls AS (
    SELECT id, server_id, tool_name::text AS tool, timestamp AS at,
           COALESCE(stream_id, client_id) COLLATE "C" AS actor
    FROM mcp_events
    WHERE event_type = 'tool_call' AND ok AND server_id IS NOT NULL AND tool_name IS NOT NULL
      AND COALESCE(stream_id, client_id) IS NOT NULL
      AND source IS DISTINCT FROM 'bundle' AND bundle_id IS NULL
      AND (p_since IS NULL OR timestamp >= p_since)
  ), seq AS (
    -- One sort of the calls: each with the opening of its session (or NULL) and the next 5 calls of its actor.
    SELECT c.*,
           CASE WHEN lag(at) OVER w IS NULL OR at - lag(at) OVER w > p_window THEN at END AS opens,
           lead(id, 1) OVER w AS id1, lead(server_id, 1) OVER w AS sv1, lead(tool, 1) OVER w AS tl1, lead(at, 1) OVER w AS at1,
           lead(id, 2) OVER w AS id2, lead(server_id, 2) OVER w AS sv2, lead(tool, 2) OVER w AS tl2, lead(at, 2) OVER w AS at2,
           lead(id, 3) OVER w AS id3, lead(server_id, 3) OVER w AS sv3, lead(tool, 3) OVER w AS tl3, lead(at, 3) OVER w AS at3,
           lead(id, 4) OVER w AS id4, lead(server_id, 4) OVER w AS sv4, lead(tool, 4) OVER w AS tl4, lead(at, 4) OVER w AS at4,
           lead(id, 5) OVER w AS id5, lead(server_id, 5) OVER w AS sv5, lead(tool, 5) OVER w AS tl5, lead(at, 5) OVER w AS at5
    FROM calls c
    WINDOW w AS (PARTITION BY actor ORDER BY at, id)
  ), sessioned AS (
    -- Times only grow along an actor's calls: the latest opening so far is the current session's.
    SELECT s.*, max(opens) OVER (PARTITION BY actor ORDER BY at, id ROWS UNBOUNDED PRECEDING) AS session_start
    FROM seq s
  ), total AS (
    SELECT count(*) AS n FROM sessioned WHERE opens IS NOT NULL
  ), items AS (
    SELECT server_id, tool, count(*) AS support
    FROM (SELECT server_id, tool FROM sessioned GROUP BY server_id, tool, actor, session_start) s
    GROUP BY server_id, tool
  ), pair_occ AS (
    -- A later call within the window is in the same session: no pause between them can exceed the window.
    SELECT a.actor, a.session_start, a.at AS at1, a.server_id AS s1, a.tool AS t1, b.server_id AS s2, b.tool AS t2,
           a.id AS e1, b.id AS e2
    FROM sessioned a
    CROSS JOIN LATERAL (VALUES
      (1, a.id1, a.sv1, a.tl1, a.at1),
      (2, a.id2, a.sv2, a.tl2, a.at2),
      (3, a.id3, a.sv3, a.tl3, a.at3),
      (4, a.id4, a.sv4, a.tl4, a.at4),
      (5, a.id5, a.sv5, a.tl5, a.at5)
    ) b(k, id, server_id, tool, at)
    WHERE b.at - a.at <= p_window AND (b.server_id <> a.server_id OR b.tool <> a.tool)
  ), pair_sessions AS (
    -- Support counts sessions, not repetitions; the first occurrence in a session is its example.
    SELECT s1, t1, s2, t2, actor, session_start, min(at1) AS at1, min(ARRAY[e1, e2]) AS events
    FROM pair_occ
    GROUP BY s1, t1, s2, t2, actor, session_start
  ), pair_stats AS (
    SELECT s1, t1, s2, t2, count(*) AS support FROM pair_sessions GROUP BY s1, t1, s2, t2
  ), strong_pairs AS (
    -- A triple is in no more sessions than its first two steps: only pairs that could start a kept triple
    -- (enough support and confidence on their own) are extended.
    SELECT ps.s1, ps.t1, ps.s2, ps.t2
    FROM pair_stats ps JOIN items i ON i.server_id = ps.s1 AND i.tool = ps.t1
    WHERE ps.support >= p_min_support AND ps.support >= p_min_confidence * i.support
  ), triple_occ AS (
    SELECT a.actor, a.session_start, a.at AS at1, a.server_id AS s1, a.tool AS t1, b.server_id AS s2, b.tool AS t2,
           c.server_id AS s3, c.tool AS t3, a.id AS e1, b.id AS e2, c.id AS e3
    FROM sessioned a
    CROSS JOIN LATERAL (VALUES
      (1, a.id1, a.sv1, a.tl1, a.at1),
      (2, a.id2, a.sv2, a.tl2, a.at2),
      (3, a.id3, a.sv3, a.tl3, a.at3),
      (4, a.id4, a.sv4, a.tl4, a.at4),
      (5, a.id5, a.sv5, a.tl5, a.at5)
    ) b(k, id, server_id, tool, at)
    CROSS JOIN LATERAL (VALUES
      (1, a.id1, a.sv1, a.tl1, a.at1),
      (2, a.id2, a.sv2, a.tl2, a.at2),
      (3, a.id3, a.sv3, a.tl3, a.at3),
      (4, a.id4, a.sv4, a.tl4, a.at4),
      (5, a.id5, a.sv5, a.tl5, a.at5)
    ) c(k, id, server_id, tool, at)
    WHERE c.k > b.k AND c.at - a.at <= p_window
      AND (b.server_id <> a.server_id OR b.tool <> a.tool) AND (c.server_id <> a.server_id OR c.tool <> a.tool)
      AND (c.server_id <> b.server_id OR c.tool <> b.tool)
      AND (a.server_id, a.tool, b.server_id, b.tool) IN (SELECT s1, t1, s2, t2 FROM strong_pairs)
  ), triple_sessions AS (
    SELECT s1, t1, s2, t2, s3, t3, actor, session_start, min(at1) AS at1, min(ARRAY[e1, e2, e3]) AS events
    FROM triple_occ
    GROUP BY s1, t1, s2, t2, s3, t3, actor, session_start
  ), triple_stats AS (
    SELECT s1, t1, s2, t2, s3, t3, count(*) AS support
    FROM triple_sessions GROUP BY s1, t1, s2, t2, s3, t3
  ), patterns AS (
    SELECT ARRAY[ps.s1, ps.s2] AS step_servers, ARRAY[ps.t1, ps.t2] AS tools, ps.support,
           ps.support::numeric / i1.support AS confidence, il.support AS rest_support
    FROM pair_stats ps
    JOIN items i1 ON i1.server_id = ps.s1 AND i1.tool = ps.t1
    JOIN items il ON il.server_id = ps.s2 AND il.tool = ps.t2
    WHERE ps.s1 <> ps.s2 AND ps.support >= p_min_support
    UNION ALL
    SELECT ARRAY[ts.s1, ts.s2, ts.s3], ARRAY[ts.t1, ts.t2, ts.t3], ts.support,
           ts.support::numeric / i1.support, rest.support
    FROM triple_stats ts
    JOIN items i1 ON i1.server_id = ts.s1 AND i1.tool = ts.t1
    JOIN pair_stats rest ON rest.s1 = ts.s2 AND rest.t1 = ts.t2 AND rest.s2 = ts.s3 AND rest.t2 = ts.t3
    WHERE NOT (ts.s1 = ts.s2 AND ts.s2 = ts.s3) AND ts.support >= p_min_support
  ), kept AS (
    SELECT p.step_servers, p.tools, p.support, p.confidence,
           p.confidence * total.n / p.rest_support AS lift,
           ARRAY(SELECT u.s FROM unnest(p.step_servers) WITH ORDINALITY u(s, i) GROUP BY u.s ORDER BY min(u.i))
             AS server_ids
    FROM patterns p, total
    WHERE p.confidence >= p_min_confidence
      AND p.confidence * total.n / p.rest_support >= p_min_lift
      AND NOT EXISTS (
        SELECT 1 FROM unnest(p.step_servers) u(s)
        LEFT JOIN mcp_servers srv ON srv.id = u.s
        WHERE srv.id IS NULL OR srv.deleted_at IS NOT NULL
      )
  ), closed AS (
    SELECT k.* FROM kept k
    WHERE cardinality(k.tools) = 3 OR NOT EXISTS (
      SELECT 1 FROM kept t
      WHERE cardinality(t.tools) = 3 AND t.support >= 0.9 * k.support
        AND ((t.step_servers[1:2] = k.step_servers AND t.tools[1:2] = k.tools)
          OR (t.step_servers[2:3] = k.step_servers AND t.tools[2:3] = k.tools)
          OR (ARRAY[t.step_servers[1], t.step_servers[3]] = k.step_servers
              AND ARRAY[t.tools[1], t.tools[3]] = k.tools))
    )
  ), chosen AS (
    SELECT c.* FROM closed c
    WHERE NOT EXISTS (
      SELECT 1 FROM mcp_bundles b WHERE b.deleted_at IS NULL AND b.server_ids = to_jsonb(c.server_ids)
    )
  ), occurrences AS (
    SELECT ARRAY[s1, s2] AS step_servers, ARRAY[t1, t2] AS tools, actor, session_start, at1, events
    FROM pair_sessions
    UNION ALL
    SELECT ARRAY[s1, s2, s3], ARRAY[t1, t2, t3], actor, session_start, at1, events
    FROM triple_sessions
  ), ranked_examples AS (
    SELECT o.step_servers, o.tools, o.actor, o.session_start, o.events,
           row_number() OVER (PARTITION BY o.step_servers, o.tools ORDER BY o.at1 DESC, o.actor) AS rank
    FROM occurrences o
    JOIN chosen c ON c.step_servers = o.step_servers AND c.tools = o.tools
  ), examples AS (
    SELECT step_servers, tools,
           jsonb_agg(
             jsonb_build_object(
               'session', actor || '@' || to_char(session_start, 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
               'events', to_jsonb(events)
             ) ORDER BY rank
           ) AS examples
    FROM ranked_examples
    WHERE rank <= p_max_examples
    GROUP BY step_servers, tools
  )
  SELECT c.server_ids, c.step_servers, c.tools, c.support,
         round(c.confidence, 4), round(c.lift, 4),
         round(c.support * c.confidence * ln(c.lift), 4),
         total.n,
         e.examples
  FROM chosen c
  CROSS JOIN total
  JOIN examples e ON e.step_servers = c.step_servers AND e.tools = c.tools
  ORDER BY 7 DESC, c.support DESC, cardinality(c.tools) DESC, c.step_servers, c.tools
$$ LANGUAGE sql STABLE;
