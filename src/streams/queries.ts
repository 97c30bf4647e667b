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

export interface StreamCounters {
  id: string;
  messagesReceived: number;
  messagesSent: number;
  active: boolean;
}

/** Writes the counters (and the active flag) of several streams in one transaction. */
export async function updateStreamCounters(
  db: { transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> },
  rows: readonly StreamCounters[],
): Promise<void> {
  if (rows.length === 0) return;
  await db.transaction(async (tx) => {
    for (const r of rows) {
      await tx.query(
        `UPDATE mcp_stream_sessions SET messages_received = $2, messages_sent = $3, active = $4 WHERE id = $1`,
        [r.id, r.messagesReceived, r.messagesSent, r.active],
      );
    }
  });
}
