import { createPostgresDatabase } from '../../bench/lib/postgres-database.js';
import type { Db } from '../../src/db/db.js';
import { loadMigrations, migrate } from '../../src/db/migrator.js';
import { openPgDb } from '../../src/db/pg-db.js';
import { openPgliteDb } from '../../src/db/pglite-db.js';
import { migrationsDir } from '../../src/paths.js';

// Shared with the benchmarks, which need throwaway databases too.
export { adminUrl, createPostgresDatabase } from '../../bench/lib/postgres-database.js';

export interface TestDb {
  db: Db;
  /** Connection string of the database (postgres only), for a second process or client. */
  url?: string;
  /** Closes the connection and, on PostgreSQL, drops the database. */
  drop(): Promise<void>;
}

export type Driver = 'pglite' | 'postgres';
export const drivers: Driver[] = ['pglite', 'postgres'];

export async function openTestDb(driver: Driver, options: { migrate?: boolean } = {}): Promise<TestDb> {
  let testDb: TestDb;
  if (driver === 'pglite') {
    const db = await openPgliteDb(undefined);
    testDb = { db, drop: () => db.close() };
  } else {
    const database = await createPostgresDatabase();
    const db = await openPgDb(database.url, { max: 4 });
    testDb = {
      db,
      url: database.url,
      async drop() {
        await db.close();
        await database.drop();
      },
    };
  }
  if (options.migrate !== false) await migrate(testDb.db, await loadMigrations(migrationsDir));
  return testDb;
}
