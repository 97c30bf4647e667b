-- The suggestion a bundle was accepted from. One live bundle per suggestion: two accepts of the same
-- suggestion at once (a double click, two users) make one bundle, and the other accept is told which.
-- A deleted bundle frees its suggestion, which may then be suggested and accepted again.
ALTER TABLE mcp_bundles ADD COLUMN suggestion_id VARCHAR(64);
CREATE UNIQUE INDEX mcp_bundles_suggestion_live ON mcp_bundles (suggestion_id)
  WHERE deleted_at IS NULL AND suggestion_id IS NOT NULL;
