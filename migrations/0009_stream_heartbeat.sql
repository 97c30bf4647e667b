-- When a hub last said that it serves a stream session (every hub serving it writes this with its counters,
-- at least every 10 s). An active row nobody has vouched for in a while belongs to a hub that died: with
-- streams in one process it is marked inactive; with Redis, once its Redis state has expired as well
-- (until then its clients may still resume it on any hub). NULL: not since this column exists.
ALTER TABLE mcp_stream_sessions ADD COLUMN last_seen_at TIMESTAMP;
