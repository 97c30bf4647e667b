import { randomBytes } from 'node:crypto';
import pg from 'pg';

/**
 * The local PostgreSQL of the dev and CI machines (trust auth). TEST_DATABASE_URL overrides it; it names
 * the admin database the throwaway databases are created from.
 */
export const adminUrl = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/**
 * A fresh PostgreSQL database of its own (tests, benchmarks), dropped by drop(); fails (never skips)
 * when the server is unreachable.
 */
export async function createPostgresDatabase(
  prefix = 'sb_test',
): Promise<{ name: string; url: string; drop(): Promise<void> }> {
  if (!/^[a-z_][a-z0-9_]*$/.test(prefix)) throw new Error(`Invalid database name prefix: ${prefix}`);
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    name,
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}
