/** Messages between the hub's thread (src/db/pglite-db.ts) and the embedded database's (pglite-worker.ts). */

export interface WorkerStart {
  /** File-backed PGlite directory; undefined keeps the database in memory. */
  dataDir: string | undefined;
}

/**
 * `tx` runs a statement inside an open transaction. `begin` is answered on `id` (with the transaction's
 * number) once inside it, and on `endId` when it has committed or rolled back, after an `end` request.
 */
export type WorkerRequest =
  | { id: number; op: 'query'; text: string; params: readonly unknown[] | undefined; tx?: number }
  | { id: number; op: 'exec'; script: string; tx?: number }
  | { id: number; op: 'copy'; statement: string; text: string }
  | { id: number; op: 'begin'; endId: number }
  | { id: number; op: 'end'; tx: number; commit: boolean }
  | { id: number; op: 'close' };

/** Id 0 answers the start: the database is open (or could not be). */
export type WorkerReply =
  | { id: number; ok: true; value?: unknown }
  | { id: number; ok: false; error: Record<string, unknown> };
