import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPgliteDb } from '../../src/db/pglite-db.js';
import { drivers, openTestDb, type TestDb } from '../helpers/db.js';

describe.each(drivers)('the Db interface on %s', (driver) => {
  let t: TestDb;
  beforeAll(async () => {
    t = await openTestDb(driver, { migrate: false });
    await t.db.exec(
      'CREATE TABLE items (id serial PRIMARY KEY, name text UNIQUE NOT NULL, n int8, at timestamp, doc jsonb)',
    );
  });
  afterAll(() => t.drop());

  it('returns the same JS types: int8 as numbers, timestamps as UTC Dates, jsonb parsed', async () => {
    const at = new Date('2026-03-04T05:06:07.089Z');
    await t.db.query('INSERT INTO items (name, n, at, doc) VALUES ($1, $2, $3, $4)', [
      'typed',
      9_007_199_254,
      at,
      { a: [1, 'two'] },
    ]);
    const { rows, rowCount } = await t.db.query<{ n: number; at: Date; doc: unknown }>(
      "SELECT n, at, doc FROM items WHERE name = 'typed'",
    );
    expect(rowCount).toBe(1);
    expect(rows[0]).toEqual({ n: 9_007_199_254, at, doc: { a: [1, 'two'] } });
  });

  it('commits a transaction that resolves and rolls back one that throws, with its error', async () => {
    const value = await t.db.transaction(async (tx) => {
      await tx.query("INSERT INTO items (name) VALUES ('kept')");
      return (await tx.query<{ n: number }>("SELECT count(*)::int AS n FROM items WHERE name = 'kept'"))
        .rows[0]?.n;
    });
    expect(value).toBe(1);
    await expect(
      t.db.transaction(async (tx) => {
        await tx.query("INSERT INTO items (name) VALUES ('dropped')");
        throw new Error('changed my mind');
      }),
    ).rejects.toThrow('changed my mind');
    const names = await t.db.query<{ name: string }>(
      "SELECT name FROM items WHERE name IN ('kept', 'dropped')",
    );
    expect(names.rows).toEqual([{ name: 'kept' }]);
  });

  it("keeps PostgreSQL's error fields (code, constraint) and the database usable after them", async () => {
    const err = await t.db.query("INSERT INTO items (name) VALUES ('kept')").catch((e: unknown) => e);
    expect(err).toMatchObject({ code: '23505', constraint: 'items_name_key' });
    expect((err as Error).message).toMatch(/duplicate key/);
    const failedTx = await t.db
      .transaction(async (tx) => {
        await tx.query("INSERT INTO items (name) VALUES ('in-tx')");
        await tx.query("INSERT INTO items (name) VALUES ('kept')");
      })
      .catch((e: unknown) => e);
    expect(failedTx).toMatchObject({ code: '23505' });
    const { rows } = await t.db.query("SELECT 1 FROM items WHERE name = 'in-tx'");
    expect(rows).toEqual([]);
  });

  it('copies rows in and reads them back in batches', async () => {
    const rows = Array.from({ length: 2_500 }, (_, i) => [`copied-${i}`, i, { i }]);
    expect(await t.db.copyRows('items', ['name', 'n', 'doc'], rows)).toBe(2_500);
    const seen: number[] = [];
    for await (const batch of t.db.stream<{ id: number; n: number }>(
      {
        text: "SELECT id, n FROM items WHERE name LIKE 'copied-%' ORDER BY id",
        params: [],
        page: (after, limit) => ({
          text: "SELECT id, n FROM items WHERE name LIKE 'copied-%' AND id > $1 ORDER BY id LIMIT $2",
          params: [after?.id ?? 0, limit],
        }),
      },
      { batchSize: 1_000 },
    )) {
      expect(batch.length).toBeLessThanOrEqual(1_000);
      seen.push(...batch.map((r) => r.n));
    }
    expect(seen).toEqual(rows.map((_, i) => i));
  });
});

describe('PGlite on its own thread', () => {
  it('runs a long statement while the calling thread goes on', async () => {
    const db = await openPgliteDb(undefined);
    try {
      let ticks = 0;
      const timer = setInterval(() => ticks++, 10);
      await db.query('SELECT pg_sleep(0.5)');
      clearInterval(timer);
      // In the hub's thread the statement would have held every timer until it ended.
      expect(ticks).toBeGreaterThan(5);
    } finally {
      await db.close();
    }
  });

  it('refuses statements once closed, and a file-backed database keeps what was committed', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'sb-pglite-'));
    try {
      const first = await openPgliteDb(dir);
      await first.exec('CREATE TABLE kept (v text)');
      await first.query("INSERT INTO kept VALUES ('still here')");
      await first.close();
      await expect(first.query('SELECT 1')).rejects.toMatchObject({ code: 'SB_ERR_CLOSED' });
      const second = await openPgliteDb(dir);
      expect((await second.query('SELECT v FROM kept')).rows).toEqual([{ v: 'still here' }]);
      await second.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
