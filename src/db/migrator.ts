import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Db } from './db.js';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

const fileName = /^(\d{4})_([a-z0-9_]+)\.sql$/;
// Any constant works as long as every hub process uses the same one.
const lockKey = 0x5b_0001;

export async function loadMigrations(dir: string): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.sql')).sort();
  const migrations: Migration[] = [];
  for (const file of files) {
    const m = fileName.exec(file);
    if (!m) throw new Error(`Migration file name must look like 0001_name.sql: ${file}`);
    migrations.push({
      version: Number(m[1]),
      name: m[2]!,
      sql: await readFile(path.join(dir, file), 'utf8'),
    });
  }
  migrations.forEach((m, i) => {
    if (m.version !== i + 1)
      throw new Error(
        `Migrations must be numbered 1, 2, 3… without gaps; found ${m.version} at position ${i + 1}`,
      );
  });
  return migrations;
}

/**
 * Applies pending migrations in order, each in its own transaction. The transaction first takes a
 * transaction-scoped advisory lock, so when several hub processes start at once one applies and the
 * others wait, then see the row it recorded and skip. Returns the versions this call applied.
 */
export async function migrate(db: Db, migrations: readonly Migration[]): Promise<number[]> {
  const { rows } = await db.query<{ v: number }>("SELECT current_setting('server_version_num')::int AS v");
  if ((rows[0]?.v ?? 0) < 150000) throw new Error('Switchboard needs PostgreSQL 15 or later');
  const applied: number[] = [];
  for (const m of migrations) {
    const didApply = await db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [lockKey]);
      await tx.exec(`CREATE TABLE IF NOT EXISTS switchboard_migrations (
        version integer PRIMARY KEY,
        name text NOT NULL,
        applied_at timestamp NOT NULL DEFAULT now()
      )`);
      const done = await tx.query('SELECT 1 FROM switchboard_migrations WHERE version = $1', [m.version]);
      if (done.rowCount > 0) return false;
      await tx.exec(m.sql);
      await tx.query('INSERT INTO switchboard_migrations (version, name) VALUES ($1, $2)', [
        m.version,
        m.name,
      ]);
      return true;
    });
    if (didApply) applied.push(m.version);
  }
  return applied;
}

/** True when every known migration is recorded (used by /readyz). */
export async function migrationsCurrent(db: Db, migrations: readonly Migration[]): Promise<boolean> {
  const { rows } = await db.query<{ present: string | null }>(
    "SELECT to_regclass('switchboard_migrations')::text AS present",
  );
  if (!rows[0]?.present) return false;
  const applied = await db.query<{ n: number }>('SELECT count(*) AS n FROM switchboard_migrations');
  return (applied.rows[0]?.n ?? 0) >= migrations.length;
}
