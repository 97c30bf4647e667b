-- The seed's tables (names and columns kept; columns only added), the registry they refer to, the
-- indexes the queries need, and first forms of the seed's views and functions. Every session runs with
-- TimeZone=UTC, so the seed's `timestamp` columns hold UTC.

CREATE TABLE mcp_servers (
  id SERIAL PRIMARY KEY,
  name VARCHAR(255) NOT NULL,
  description TEXT NOT NULL DEFAULT '',
  transport VARCHAR(32) NOT NULL CHECK (transport IN ('stdio', 'streamable-http')),
  command TEXT,
  args JSONB NOT NULL DEFAULT '[]',
  env JSONB NOT NULL DEFAULT '{}',
  cwd TEXT,
  url TEXT,
  headers JSONB NOT NULL DEFAULT '{}',
  config JSONB NOT NULL DEFAULT '{}',
  config_version INTEGER NOT NULL DEFAULT 1,
  enabled BOOLEAN NOT NULL DEFAULT true,
  protocol_version VARCHAR(32),
  protocol_era VARCHAR(16),
  created_at TIMESTAMP NOT NULL DEFAULT NOW(),
  updated_at TIMESTAMP NOT NULL DEFAULT NOW(),
  -- Deleting keeps the row (events refer to it) and hides it everywhere.
  deleted_at TIMESTAMP,
  CHECK ((transport = 'stdio' AND command IS NOT NULL) OR (transport = 'streamable-http' AND url IS NOT NULL))
);
CREATE UNIQUE INDEX mcp_servers_name_live ON mcp_servers (name) WHERE deleted_at IS NULL;

CREATE TABLE mcp_bundles (
  id VARCHAR(255) PRIMARY KEY,
  name VARCHAR(255) NOT NULL,
  server_ids JSONB NOT NULL,
  config JSONB DEFAULT '{}',
  created_at TIMESTAMP DEFAULT NOW(),
  execution_count INTEGER DEFAULT 0
);

CREATE TABLE mcp_events (
  id SERIAL PRIMARY KEY,
  event_type VARCHAR(100) NOT NULL,
  server_id INTEGER REFERENCES mcp_servers(id),
  bundle_id VARCHAR(255) REFERENCES mcp_bundles(id),
  stream_id VARCHAR(255),
  event_data JSONB,
  timestamp TIMESTAMP DEFAULT NOW(),
  duration INTEGER,
  -- Added: the columns analysis filters and groups on, so it never has to dig into event_data.
  tool_name VARCHAR(255),
  outcome VARCHAR(32),
  ok BOOLEAN,
  error_code VARCHAR(64),
  source VARCHAR(32),
  client_id VARCHAR(255),
  config_version INTEGER,
  request_bytes INTEGER,
  response_bytes INTEGER
);
CREATE INDEX mcp_events_server_time ON mcp_events (server_id, timestamp);
CREATE INDEX mcp_events_time ON mcp_events (timestamp);
CREATE INDEX mcp_events_bundle_time ON mcp_events (bundle_id, timestamp) WHERE bundle_id IS NOT NULL;
CREATE INDEX mcp_events_stream_time ON mcp_events (stream_id, timestamp) WHERE stream_id IS NOT NULL;

CREATE TABLE mcp_stream_sessions (
  id VARCHAR(255) PRIMARY KEY,
  server_id INTEGER REFERENCES mcp_servers(id),
  client_id VARCHAR(255) NOT NULL,
  config JSONB DEFAULT '{}',
  started_at TIMESTAMP DEFAULT NOW(),
  messages_received INTEGER DEFAULT 0,
  messages_sent INTEGER DEFAULT 0,
  active BOOLEAN DEFAULT true
);

CREATE TABLE mcp_config_history (
  id SERIAL PRIMARY KEY,
  server_id INTEGER REFERENCES mcp_servers(id),
  config JSONB NOT NULL,
  performance_score DECIMAL(5,2),
  events_analyzed INTEGER,
  created_at TIMESTAMP DEFAULT NOW(),
  applied BOOLEAN DEFAULT false,
  config_version INTEGER
);
CREATE INDEX mcp_config_history_server ON mcp_config_history (server_id, created_at);

CREATE VIEW mcp_active_streams AS
SELECT s.id AS stream_id,
       s.server_id,
       srv.name AS server_name,
       s.client_id,
       s.config,
       s.started_at,
       EXTRACT(EPOCH FROM (LOCALTIMESTAMP - s.started_at))::bigint AS uptime_seconds,
       s.messages_received,
       s.messages_sent
FROM mcp_stream_sessions s
LEFT JOIN mcp_servers srv ON srv.id = s.server_id
WHERE s.active;

-- One 'bundle_execution' event is recorded per run of a bundle.
CREATE VIEW mcp_bundle_performance AS
SELECT b.id AS bundle_id,
       b.name,
       b.execution_count,
       count(e.id) AS executions_recorded,
       avg(CASE WHEN e.ok THEN 1.0 ELSE 0.0 END) AS success_rate,
       avg(e.duration) AS avg_duration_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY e.duration) AS p95_duration_ms,
       max(e.timestamp) AS last_run
FROM mcp_bundles b
LEFT JOIN mcp_events e ON e.bundle_id = b.id AND e.event_type = 'bundle_execution'
GROUP BY b.id, b.name, b.execution_count;

-- Score of a server's recent tool calls, 0–100 (NULL when it made no call in the window):
--   60 × success rate
-- + 30 × latency against the server's own baseline: min(1, baseline median / window mean), where the
--        baseline is the median of its successful calls over the 7 days before now
-- + 10 × (1 − share of calls that timed out).
CREATE FUNCTION calculate_config_performance(p_server_id integer, p_time_window interval)
RETURNS numeric AS $$
  WITH win AS (
    SELECT count(*) AS n,
           avg(CASE WHEN ok THEN 1.0 ELSE 0.0 END) AS success_rate,
           avg(duration) AS mean_ms,
           avg(CASE WHEN outcome = 'timeout' THEN 1.0 ELSE 0.0 END) AS timeout_rate
    FROM mcp_events
    WHERE server_id = p_server_id AND event_type = 'tool_call'
      AND timestamp >= LOCALTIMESTAMP - p_time_window
  ), base AS (
    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY duration) AS median_ms
    FROM mcp_events
    WHERE server_id = p_server_id AND event_type = 'tool_call' AND ok
      AND timestamp >= LOCALTIMESTAMP - interval '7 days'
  )
  SELECT CASE WHEN win.n = 0 THEN NULL ELSE round((
      60 * win.success_rate
    + 30 * LEAST(1.0, COALESCE(base.median_ms, 0)::numeric / GREATEST(COALESCE(win.mean_ms, 0), 1))
    + 10 * (1 - win.timeout_rate)
  )::numeric, 2) END
  FROM win, base
$$ LANGUAGE sql STABLE;

CREATE VIEW mcp_server_optimization_insights AS
SELECT srv.id AS server_id,
       srv.name,
       srv.config,
       srv.config_version,
       count(e.id) AS total_calls,
       avg(CASE WHEN e.ok THEN 1.0 ELSE 0.0 END) AS success_rate,
       avg(CASE WHEN e.ok THEN 0.0 ELSE 1.0 END) AS error_rate,
       avg(e.duration) AS avg_duration_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY e.duration) AS p95_duration_ms,
       count(*) FILTER (WHERE e.outcome = 'timeout') AS timeouts,
       calculate_config_performance(srv.id, interval '24 hours') AS current_score,
       (SELECT max(h.created_at) FROM mcp_config_history h WHERE h.server_id = srv.id AND h.applied) AS last_optimized
FROM mcp_servers srv
LEFT JOIN mcp_events e ON e.server_id = srv.id AND e.event_type = 'tool_call'
WHERE srv.deleted_at IS NULL
GROUP BY srv.id, srv.name, srv.config, srv.config_version;

-- Pairs of tool calls on two different servers made one after the other by the same stream or client
-- within 10 minutes. support = how often the pair occurred; confidence = support / calls of the first tool.
CREATE FUNCTION suggest_bundle_from_patterns()
RETURNS TABLE (server_ids integer[], tools text[], support bigint, confidence numeric) AS $$
  WITH calls AS (
    SELECT server_id, tool_name, timestamp,
           COALESCE(stream_id, client_id) AS actor
    FROM mcp_events
    WHERE event_type = 'tool_call' AND tool_name IS NOT NULL AND COALESCE(stream_id, client_id) IS NOT NULL
  ), seq AS (
    SELECT server_id, tool_name, timestamp,
           lead(server_id) OVER w AS next_server,
           lead(tool_name) OVER w AS next_tool,
           lead(timestamp) OVER w AS next_at
    FROM calls
    WINDOW w AS (PARTITION BY actor ORDER BY timestamp)
  ), firsts AS (
    SELECT server_id, tool_name, count(*) AS n FROM calls GROUP BY server_id, tool_name
  ), pairs AS (
    SELECT server_id, tool_name, next_server, next_tool, count(*) AS n
    FROM seq
    WHERE next_server IS NOT NULL AND next_server <> server_id AND next_at - timestamp <= interval '10 minutes'
    GROUP BY server_id, tool_name, next_server, next_tool
  )
  SELECT ARRAY[p.server_id, p.next_server],
         ARRAY[p.tool_name::text, p.next_tool::text],
         p.n,
         round(p.n::numeric / f.n, 4)
  FROM pairs p
  JOIN firsts f ON f.server_id = p.server_id AND f.tool_name = p.tool_name
  WHERE p.n >= 3
  ORDER BY p.n DESC, 4 DESC
$$ LANGUAGE sql STABLE;
