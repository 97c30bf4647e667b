import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadMigrations, migrate, migrationsCurrent } from '../../src/db/migrator.js';
import { openPgDb } from '../../src/db/pg-db.js';
import { migrationsDir } from '../../src/paths.js';
import { drivers, openTestDb, type TestDb } from '../helpers/db.js';

describe.each(drivers)('migrations on %s', (driver) => {
  let t: TestDb;
  beforeAll(async () => {
    t = await openTestDb(driver, { migrate: false });
  });
  afterAll(() => t.drop());

  it('apply once, then are a no-op, and create the seed contract', async () => {
    const migrations = await loadMigrations(migrationsDir);
    expect(await migrationsCurrent(t.db, migrations)).toBe(false);
    expect(await migrate(t.db, migrations)).toEqual(migrations.map((m) => m.version));
    expect(await migrate(t.db, migrations)).toEqual([]);
    expect(await migrationsCurrent(t.db, migrations)).toBe(true);

    const tables = await t.db.query<{ name: string }>(
      "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
    );
    expect(tables.rows.map((r) => r.name)).toEqual(
      expect.arrayContaining([
        'mcp_servers',
        'mcp_bundles',
        'mcp_events',
        'mcp_stream_sessions',
        'mcp_config_history',
        'mcp_active_streams',
        'mcp_bundle_performance',
        'mcp_server_optimization_insights',
      ]),
    );
    const columns = await t.db.query<{ column_name: string }>(
      "SELECT column_name FROM information_schema.columns WHERE table_name = 'mcp_events'",
    );
    expect(columns.rows.map((r) => r.column_name)).toEqual(
      expect.arrayContaining([
        'id',
        'event_type',
        'server_id',
        'bundle_id',
        'stream_id',
        'event_data',
        'timestamp',
        'duration',
      ]),
    );
  });

  it('score and suggestion functions answer on known data', async () => {
    await t.db.query(
      "INSERT INTO mcp_servers (name, transport, command) VALUES ('a', 'stdio', 'x'), ('b', 'stdio', 'x')",
    );
    const ids = (await t.db.query<{ id: number }>('SELECT id FROM mcp_servers ORDER BY id')).rows.map(
      (r) => r.id,
    );
    const rows: unknown[][] = [];
    const start = Date.now() - 60_000;
    for (let i = 0; i < 10; i++) {
      rows.push(['tool_call', ids[0], 'x', true, 'success', 10, `c${i}`, new Date(start + i * 1000)]);
      rows.push([
        'tool_call',
        ids[1],
        'y',
        i > 0,
        i > 0 ? 'success' : 'timeout',
        10,
        `c${i}`,
        new Date(start + i * 1000 + 500),
      ]);
    }
    const cols = [
      'event_type',
      'server_id',
      'tool_name',
      'ok',
      'outcome',
      'duration',
      'client_id',
      'timestamp',
    ];
    await t.db.copyRows('mcp_events', cols, rows);
    const score = await t.db.query<{ a: number; b: number }>(
      "SELECT calculate_config_performance($1, interval '1 hour') AS a, calculate_config_performance($2, interval '1 hour') AS b",
      ids,
    );
    expect(score.rows[0]!.a).toBe(100);
    // 9/10 succeeded, 1/10 timed out: 60×0.9 + 30 + 10×0.9
    expect(score.rows[0]!.b).toBe(93);
    // Ten more sessions, without y: y follows x more often than chance (lift 0.9 / (9/20) = 2).
    await t.db.copyRows(
      'mcp_events',
      cols,
      Array.from({ length: 10 }, (_, i) => [
        'tool_call',
        ids[0],
        'z',
        true,
        'success',
        10,
        `alone${i}`,
        new Date(start + i * 1000),
      ]),
    );
    const suggested = await t.db.query<{
      server_ids: number[];
      tools: string[];
      support: number;
      confidence: number;
      lift: number;
    }>('SELECT server_ids, tools, support, confidence, lift FROM suggest_bundle_from_patterns()');
    // x → y in 9 of the 10 sessions: the first y failed, and failed calls are not evidence.
    expect(suggested.rows).toEqual([
      { server_ids: ids, tools: ['x', 'y'], support: 9, confidence: 0.9, lift: 2 },
    ]);
  });
});

describe('two hubs migrating one PostgreSQL at once', () => {
  it('both succeed and the migrations are applied exactly once', async () => {
    const t = await openTestDb('postgres', { migrate: false });
    const other = await openPgDb(t.url!, { max: 2 });
    try {
      const migrations = await loadMigrations(migrationsDir);
      const [a, b] = await Promise.all([migrate(t.db, migrations), migrate(other, migrations)]);
      expect([...a, ...b].sort()).toEqual(migrations.map((m) => m.version));
      const applied = await t.db.query<{ n: number }>('SELECT count(*) AS n FROM switchboard_migrations');
      expect(applied.rows[0]!.n).toBe(migrations.length);
    } finally {
      await other.close();
      await t.drop();
    }
  });
});
