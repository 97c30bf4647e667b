import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openPgDb } from '../../src/db/pg-db.js';
import { openPgliteDb } from '../../src/db/pglite-db.js';
import { createPostgresDatabase, drivers } from '../helpers/db.js';
import { everythingServer } from '../helpers/hub.js';
import { type HubProcess, startHubProcess } from '../helpers/hub-process.js';

async function registerEverything(hub: HubProcess): Promise<number> {
  const res = await fetch(`${hub.base}/api/mcp/servers`, {
    method: 'POST',
    headers: hub.headers,
    body: JSON.stringify({
      name: 'everything',
      transport: 'stdio',
      command: process.execPath,
      args: [everythingServer, 'stdio'],
      config: { max_concurrency: 32 },
    }),
  });
  expect(res.status).toBe(201);
  return ((await res.json()) as { server: { id: number } }).server.id;
}

/** Fires calls 32 at a time; returns how many were acknowledged (HTTP 200, ok) and stops at the first refusal. */
async function burst(
  hub: HubProcess,
  serverId: number,
  total: number,
  onAck?: (n: number) => void,
): Promise<number> {
  let started = 0;
  let acked = 0;
  let refused = false;
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (started < total && !refused) {
        const i = started++;
        try {
          const res = await fetch(`${hub.base}/api/mcp/servers/${serverId}/tools/echo/call`, {
            method: 'POST',
            headers: hub.headers,
            body: JSON.stringify({ arguments: { message: `m${i}` } }),
          });
          const body = (await res.json()) as { ok?: boolean };
          if (res.status === 200 && body.ok) {
            acked++;
            onAck?.(acked);
          } else refused = true;
        } catch {
          refused = true;
        }
      }
    }),
  );
  return acked;
}

describe.each(drivers)('events survive a burst and a graceful shutdown (%s)', (driver) => {
  let database: Awaited<ReturnType<typeof createPostgresDatabase>> | undefined;
  let dataDir: string | undefined;
  afterAll(async () => {
    await database?.drop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('10,000 calls give 10,000 rows; SIGTERM mid-burst loses no acknowledged call', async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'sb-shutdown-'));
    database = driver === 'postgres' ? await createPostgresDatabase() : undefined;
    const hub = await startHubProcess(
      { ...(database ? { DATABASE_URL: database.url } : {}), SWITCHBOARD_SEED_EXAMPLES: 'false' },
      dataDir,
    );
    try {
      const serverId = await registerEverything(hub);
      expect(await burst(hub, serverId, 10_000)).toBe(10_000);

      let signalled = false;
      const acked = await burst(hub, serverId, 10_000, (n) => {
        if (n === 2_000 && !signalled) {
          signalled = true;
          hub.child.proc.kill('SIGTERM');
        }
      });
      expect(signalled).toBe(true);
      expect(await hub.exited).toBe(0);
      expect(acked).toBeGreaterThanOrEqual(2_000);

      // The process has exited: its embedded database can be opened here.
      const db = database
        ? await openPgDb(database.url, { max: 1 })
        : await openPgliteDb(path.join(dataDir, 'pglite'));
      try {
        const { rows } = await db.query<{ n: number }>(
          "SELECT count(*) AS n FROM mcp_events WHERE event_type = 'tool_call' AND server_id = $1 AND ok",
          [serverId],
        );
        // Every acknowledged call of both bursts is in the table; calls in flight at SIGTERM may add a few more.
        expect(rows[0]!.n).toBeGreaterThanOrEqual(10_000 + acked);
        expect(rows[0]!.n).toBeLessThanOrEqual(10_000 + acked + 32);
      } finally {
        await db.close();
      }
    } finally {
      await hub.stop();
    }
  }, 180_000);
});
