-- Bundles: what the bundle store needs besides the seed's columns, and the record of every run of a
-- bundle (one row per execution, one per step). A bundle is soft-deleted because mcp_events.bundle_id
-- refers to it: its events (and mcp_bundle_performance) outlive it.

ALTER TABLE mcp_bundles ADD COLUMN description TEXT NOT NULL DEFAULT '';
-- The default workflow, used when an execute request gives none.
ALTER TABLE mcp_bundles ADD COLUMN workflow JSONB;
ALTER TABLE mcp_bundles ADD COLUMN updated_at TIMESTAMP NOT NULL DEFAULT NOW();
ALTER TABLE mcp_bundles ADD COLUMN deleted_at TIMESTAMP;
CREATE INDEX mcp_bundles_live ON mcp_bundles (created_at) WHERE deleted_at IS NULL;

CREATE TABLE mcp_bundle_executions (
  id VARCHAR(255) PRIMARY KEY,
  bundle_id VARCHAR(255) NOT NULL REFERENCES mcp_bundles(id),
  -- 'running' until it ends; a hub that crashed mid-run leaves 'running' rows behind.
  status VARCHAR(16) NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'cancelled')),
  config JSONB NOT NULL DEFAULT '{}',
  workflow JSONB NOT NULL,
  context JSONB NOT NULL DEFAULT '{}',
  final_context JSONB,
  client_id VARCHAR(255),
  started_at TIMESTAMP NOT NULL DEFAULT NOW(),
  finished_at TIMESTAMP,
  duration_ms INTEGER
);
CREATE INDEX mcp_bundle_executions_bundle ON mcp_bundle_executions (bundle_id, started_at);

CREATE TABLE mcp_bundle_step_results (
  execution_id VARCHAR(255) NOT NULL REFERENCES mcp_bundle_executions(id),
  step INTEGER NOT NULL,
  step_id VARCHAR(255),
  server_index INTEGER NOT NULL,
  server_id INTEGER REFERENCES mcp_servers(id),
  tool_name VARCHAR(255) NOT NULL,
  status VARCHAR(16) NOT NULL CHECK (status IN ('succeeded', 'failed', 'skipped', 'cancelled')),
  ok BOOLEAN NOT NULL,
  args JSONB,
  result JSONB,
  content JSONB,
  error JSONB,
  attempts INTEGER NOT NULL DEFAULT 0,
  started_at TIMESTAMP,
  duration_ms INTEGER,
  PRIMARY KEY (execution_id, step)
);

-- As in 0001, but a bundle that never ran has no success rate (NULL), not 0: the LEFT JOIN's empty row
-- counted as a failure.
CREATE OR REPLACE VIEW mcp_bundle_performance AS
SELECT b.id AS bundle_id,
       b.name,
       b.execution_count,
       count(e.id) AS executions_recorded,
       avg(CASE WHEN e.ok THEN 1.0 WHEN e.id IS NOT NULL THEN 0.0 END) AS success_rate,
       avg(e.duration) AS avg_duration_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY e.duration) AS p95_duration_ms,
       max(e.timestamp) AS last_run
FROM mcp_bundles b
LEFT JOIN mcp_events e ON e.bundle_id = b.id AND e.event_type = 'bundle_execution'
GROUP BY b.id, b.name, b.execution_count;
