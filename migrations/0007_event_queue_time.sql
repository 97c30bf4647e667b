-- How a tool call met its server's max_concurrency: what the queueing and saturation recommendations of
-- analyze read. queue_ms is the part of `duration` spent waiting for a slot; concurrency is how many calls of
-- the server were running once this one had its slot (itself included). NULL for other events.
ALTER TABLE mcp_events ADD COLUMN queue_ms INTEGER;
ALTER TABLE mcp_events ADD COLUMN concurrency INTEGER;
