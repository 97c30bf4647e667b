import type { Queryable } from '../db/db.js';

export async function insertStreamSession(
  db: Queryable,
  s: { id: string; serverId: number; clientId: string; config: unknown; startedAt: Date },
): Promise<void> {
  await db.query(
    `INSERT INTO mcp_stream_sessions (id, server_id, client_id, config, started_at, active)
     VALUES ($1, $2, $3, $4, $5, true)`,
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
 * Adds the counters of several streams in one transaction. Additive, so that every hub serving a stream adds
 * its own share; `active: true` leaves the flag as it is (another hub may have stopped the stream).
 */
export async function updateStreamCounters(
  db: { transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> },
  rows: readonly StreamCounters[],
): Promise<void> {
  if (rows.length === 0) return;
  await db.transaction(async (tx) => {
    for (const r of rows) {
      await tx.query(
        `UPDATE mcp_stream_sessions
            SET messages_received = messages_received + $2, messages_sent = messages_sent + $3,
                active = active AND $4
          WHERE id = $1`,
        [r.id, r.messagesReceived, r.messagesSent, r.active],
      );
    }
  });
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
