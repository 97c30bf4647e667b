import type { Queryable } from '../db/db.js';

export async function insertStreamSession(
  db: Queryable,
  s: { id: string; serverId: number; clientId: string; config: unknown; startedAt: Date },
): Promise<void> {
  await db.query(
    `INSERT INTO mcp_stream_sessions (id, server_id, client_id, config, started_at, active, last_seen_at)
     VALUES ($1, $2, $3, $4, $5, true, LOCALTIMESTAMP)`,
    [s.id, s.serverId, s.clientId, JSON.stringify(s.config), s.startedAt],
  );
}

/** Counts not yet written by one hub (deltas), and whether the stream is still active. */
export interface StreamCounters {
  id: string;
  messagesReceived: number;
  messagesSent: number;
  active: boolean;
}

/**
 * Adds the counters of several streams in one statement, and notes that this hub serves them now
 * (last_seen_at). Additive, so that every hub serving a stream adds its own share; `active: true` leaves the
 * flag as it is (another hub may have stopped the stream).
 */
export async function updateStreamCounters(db: Queryable, rows: readonly StreamCounters[]): Promise<void> {
  if (rows.length === 0) return;
  await db.query(
    `UPDATE mcp_stream_sessions s
        SET messages_received = s.messages_received + c.received, messages_sent = s.messages_sent + c.sent,
            active = s.active AND c.active, last_seen_at = LOCALTIMESTAMP
       FROM unnest($1::varchar[], $2::int[], $3::int[], $4::boolean[]) AS c(id, received, sent, active)
      WHERE s.id = c.id`,
    [
      rows.map((r) => r.id),
      rows.map((r) => r.messagesReceived),
      rows.map((r) => r.messagesSent),
      rows.map((r) => r.active),
    ],
  );
}

/**
 * Active sessions that no hub has vouched for (counters or heartbeat) for `staleMs`, apart from `except`
 * (this hub's own): their hub stopped without closing them, or nobody serves them now.
 */
export async function selectUnattendedStreams(
  db: Queryable,
  staleMs: number,
  except: readonly string[],
): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    `SELECT id FROM mcp_stream_sessions
      WHERE active AND COALESCE(last_seen_at, started_at) < LOCALTIMESTAMP - make_interval(secs => $1::float8 / 1000)
        AND NOT (id = ANY($2::varchar[]))
      ORDER BY started_at`,
    [staleMs, except],
  );
  return rows.map((r) => r.id);
}

export async function selectActiveStreams(
  db: Queryable,
): Promise<{ id: string; messagesReceived: number; messagesSent: number }[]> {
  const { rows } = await db.query<{ id: string; messages_received: number; messages_sent: number }>(
    'SELECT id, messages_received, messages_sent FROM mcp_stream_sessions WHERE active ORDER BY started_at',
  );
  return rows.map((r) => ({
    id: r.id,
    messagesReceived: Number(r.messages_received),
    messagesSent: Number(r.messages_sent),
  }));
}

export async function markStreamsInactive(db: Queryable, ids: readonly string[]): Promise<void> {
  await db.query('UPDATE mcp_stream_sessions SET active = false WHERE id = ANY($1)', [ids]);
}
