-- Daily rollups of mcp_events: what the insights need once old events are deleted by the retention job.
-- Only additive figures (counts, sums, max) are kept, so that the rows of one day can be merged batch by
-- batch, exactly; percentiles need the events and cover the retention window only.
CREATE TABLE mcp_event_daily_rollup (
  day DATE NOT NULL,
  -- 0 for events without a server (no foreign key: a rollup outlives nothing it refers to).
  server_id INTEGER NOT NULL DEFAULT 0,
  event_type VARCHAR(100) NOT NULL,
  tool_name VARCHAR(255) NOT NULL DEFAULT '',
  events BIGINT NOT NULL,
  ok_count BIGINT NOT NULL,
  error_count BIGINT NOT NULL,
  timeouts BIGINT NOT NULL,
  duration_count BIGINT NOT NULL,
  duration_sum BIGINT NOT NULL,
  duration_max INTEGER,
  PRIMARY KEY (day, server_id, event_type, tool_name)
);

-- The insights now count rolled-up tool calls too: calls, success and error rates, mean latency and timeouts
-- cover the whole history; p95 covers the events still kept.
DROP VIEW mcp_server_optimization_insights;
CREATE VIEW mcp_server_optimization_insights AS
WITH live AS (
  SELECT server_id,
         count(*) AS n,
         count(*) FILTER (WHERE ok) AS ok_n,
         count(ok) AS judged,
         count(duration) AS timed,
         sum(duration) AS duration_sum,
         percentile_cont(0.95) WITHIN GROUP (ORDER BY duration) AS p95,
         count(*) FILTER (WHERE outcome = 'timeout') AS timeouts
  FROM mcp_events
  WHERE event_type = 'tool_call' AND server_id IS NOT NULL
  GROUP BY server_id
), rolled AS (
  SELECT server_id,
         sum(events) AS n,
         sum(ok_count) AS ok_n,
         sum(ok_count + error_count) AS judged,
         sum(duration_count) AS timed,
         sum(duration_sum) AS duration_sum,
         sum(timeouts) AS timeouts
  FROM mcp_event_daily_rollup
  WHERE event_type = 'tool_call'
  GROUP BY server_id
)
SELECT srv.id AS server_id,
       srv.name,
       srv.config,
       srv.config_version,
       (COALESCE(l.n, 0) + COALESCE(r.n, 0))::bigint AS total_calls,
       (COALESCE(l.ok_n, 0) + COALESCE(r.ok_n, 0))::numeric
         / NULLIF(COALESCE(l.judged, 0) + COALESCE(r.judged, 0), 0) AS success_rate,
       1 - (COALESCE(l.ok_n, 0) + COALESCE(r.ok_n, 0))::numeric
         / NULLIF(COALESCE(l.judged, 0) + COALESCE(r.judged, 0), 0) AS error_rate,
       (COALESCE(l.duration_sum, 0) + COALESCE(r.duration_sum, 0))::numeric
         / NULLIF(COALESCE(l.timed, 0) + COALESCE(r.timed, 0), 0) AS avg_duration_ms,
       l.p95 AS p95_duration_ms,
       (COALESCE(l.timeouts, 0) + COALESCE(r.timeouts, 0))::bigint AS timeouts,
       calculate_config_performance(srv.id, interval '24 hours') AS current_score,
       (SELECT max(h.created_at) FROM mcp_config_history h WHERE h.server_id = srv.id AND h.applied) AS last_optimized
FROM mcp_servers srv
LEFT JOIN live l ON l.server_id = srv.id
LEFT JOIN rolled r ON r.server_id = srv.id
WHERE srv.deleted_at IS NULL;
