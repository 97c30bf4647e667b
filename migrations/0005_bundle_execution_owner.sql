-- Executions orphaned by a hub that stopped mid-run. Several hubs may share one database, so an execution
-- names the hub instance running it, which refreshes heartbeat_at of its running executions periodically;
-- a 'running' row whose heartbeat is stale belongs to a hub that is gone, and any hub may close it as
-- failed with the reason in `error` (src/bundles/service.ts has the interval and the staleness).

ALTER TABLE mcp_bundle_executions ADD COLUMN owner_instance VARCHAR(255);
-- NULL on rows from before this migration: their started_at stands in for it.
ALTER TABLE mcp_bundle_executions ADD COLUMN heartbeat_at TIMESTAMP;
-- Why the execution as a whole failed, when no step says it: { code, message, details }.
ALTER TABLE mcp_bundle_executions ADD COLUMN error JSONB;
-- What the periodic search for stale executions reads (src/bundles/queries.ts lockStaleExecutions): the
-- running rows only, by their last sign of life, whatever the size of the table.
CREATE INDEX mcp_bundle_executions_running ON mcp_bundle_executions ((COALESCE(heartbeat_at, started_at)))
  WHERE status = 'running';
