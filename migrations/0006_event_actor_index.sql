-- The bundle rule of analyze follows each tool call of a server to the same stream's or client's next and
-- previous call: one probe of this index each, instead of sorting the window's calls of every server.
-- Partial: only the calls the rule mines, so the index costs nothing on other events.
CREATE INDEX mcp_events_actor_calls ON mcp_events ((COALESCE(stream_id, client_id)), timestamp, id)
  WHERE event_type = 'tool_call' AND server_id IS NOT NULL AND tool_name IS NOT NULL;
