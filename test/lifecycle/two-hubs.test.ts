import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPgDb } from '../../src/db/pg-db.js';
import { createPostgresDatabase } from '../helpers/db.js';
import { type HubProcess, startHubProcess } from '../helpers/hub-process.js';

describe('two hub processes started at once on one PostgreSQL', () => {
  let database: Awaited<ReturnType<typeof createPostgresDatabase>>;
  const hubs: HubProcess[] = [];
  beforeAll(async () => {
    database = await createPostgresDatabase();
  });
  afterAll(async () => {
    await Promise.all(hubs.map((h) => h.stop()));
    await database.drop();
  });

  it('both come up, migrations run once and the examples are seeded once', async () => {
    hubs.push(
      ...(await Promise.all([
        startHubProcess({ DATABASE_URL: database.url }),
        startHubProcess({ DATABASE_URL: database.url }),
      ])),
    );
    for (const hub of hubs) {
      const res = await fetch(`${hub.base}/api/mcp/servers`, { headers: hub.headers });
      const { servers } = (await res.json()) as { servers: { id: number; name: string }[] };
      expect(servers.map((s) => [s.id, s.name])).toEqual([
        [1, 'seo'],
        [2, 'content'],
        [3, 'graphics'],
      ]);
    }
    const db = await openPgDb(database.url, { max: 1 });
    try {
      const migrations = await db.query<{ n: number }>('SELECT count(*) AS n FROM switchboard_migrations');
      const versions = await db.query<{ version: number }>(
        'SELECT version FROM switchboard_migrations ORDER BY version',
      );
      expect(migrations.rows[0]!.n).toBe(versions.rows.length);
      expect(new Set(versions.rows.map((r) => r.version)).size).toBe(versions.rows.length);
    } finally {
      await db.close();
    }
  });
});
