import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { Db } from '../../src/db/db.js';
import { loadMigrations, migrate } from '../../src/db/migrator.js';
import { openPgDb } from '../../src/db/pg-db.js';
import { openPgliteDb } from '../../src/db/pglite-db.js';
import { migrationsDir } from '../../src/paths.js';

/** The local PostgreSQL of the machines (trust auth); TEST_DATABASE_URL overrides it. */
export const adminUrl = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export interface TestDb {
  db: Db;
  /** Connection string of the database (postgres only), for a second process or client. */
  url?: string;
  /** Closes the connection and, on PostgreSQL, drops the database. */
  drop(): Promise<void>;
}

/** A fresh PostgreSQL database of its own; fails (never skips) when the server is unreachable. */
export async function createPostgresDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `sb_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
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
