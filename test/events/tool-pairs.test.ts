import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SERVER_SAMPLE_SHARE, type ToolPairRow, toolPairs } from '../../src/events/queries.js';
import { drivers, openTestDb, type TestDb } from '../helpers/db.js';
import { insertEvents, prng, type TestEvent } from '../helpers/events.js';

const MIN = 60_000;
const since = new Date(Date.UTC(2026, 2, 1));
const until = new Date(since.getTime() + 6 * 3_600_000);
const SERVERS = 4;
const tools = ['fetch', 'parse', 'store'];

/**
 * Actors (streams or clients) that call servers in habits (1.fetch then 2.parse, 3.store then 1.parse) and at
 * random, at intervals from seconds to a quarter of an hour, with calls just outside the window, calls
 * without an actor or a tool, and other event types in between: every case the rule tells apart.
 */
function events(): TestEvent[] {
  const rand = prng(11);
  const out: TestEvent[] = [];
  for (let a = 0; a < 12; a++) {
    const actor = a % 3 === 0 ? { stream_id: `stream-${a}` } : { client_id: `client-${a}` };
    let t = since.getTime() - 20 * MIN + Math.floor(rand() * 10 * MIN);
    while (t < until.getTime() + 20 * MIN) {
      const r = rand();
      const seq: [number, string][] =
        r < 0.3
          ? [
              [1, 'fetch'],
              [2, 'parse'],
            ]
          : r < 0.45
            ? [
                [3, 'store'],
                [1, 'parse'],
              ]
            : [[1 + Math.floor(rand() * SERVERS), tools[Math.floor(rand() * tools.length)]!]];
      for (const [server_id, tool_name] of seq) {
        out.push({ event_type: 'tool_call', server_id, tool_name, timestamp: new Date(t), ...actor });
        t += 1000 + Math.floor(rand() * rand() * 15 * MIN);
      }
      if (rand() < 0.1) out.push({ event_type: 'api_call', timestamp: new Date(t), ...actor });
      if (rand() < 0.05)
        out.push({ event_type: 'tool_call', server_id: 2, timestamp: new Date(t + 1), ...actor });
      if (rand() < 0.05)
        out.push({ event_type: 'tool_call', server_id: 4, tool_name: 'fetch', timestamp: new Date(t + 2) });
    }
  }
  return out;
}

/** The rule computed from the events in JS: each actor's calls in order, consecutive ones on two servers. */
function reference(all: TestEvent[], serverId: number | undefined, minSupport: number): ToolPairRow[] {
  const calls = all
    .map((e, id) => ({ ...e, id, actor: e.stream_id ?? e.client_id ?? null }))
    .filter(
      (e) =>
        e.event_type === 'tool_call' &&
        e.server_id != null &&
        e.tool_name != null &&
        e.actor !== null &&
        e.timestamp >= since &&
        e.timestamp < until,
    );
  const byActor = new Map<string, typeof calls>();
  for (const c of calls) byActor.set(c.actor!, [...(byActor.get(c.actor!) ?? []), c]);
  const pairs = new Map<string, ToolPairRow>();
  for (const seq of byActor.values()) {
    seq.sort((a, b) => a.timestamp.getTime() - b.timestamp.getTime() || a.id - b.id);
    for (let i = 0; i + 1 < seq.length; i++) {
      const [a, b] = [seq[i]!, seq[i + 1]!];
      if (a.server_id === b.server_id || b.timestamp.getTime() - a.timestamp.getTime() > 10 * MIN) continue;
      if (serverId !== undefined && a.server_id !== serverId && b.server_id !== serverId) continue;
      const key = `${a.server_id}/${a.tool_name}/${b.server_id}/${b.tool_name}`;
      const first_calls = calls.filter(
        (c) => c.server_id === a.server_id && c.tool_name === a.tool_name,
      ).length;
      const p = pairs.get(key) ?? {
        server_id: a.server_id!,
        tool_name: a.tool_name!,
        next_server: b.server_id!,
        next_tool: b.tool_name!,
        support: 0,
        first_calls,
      };
      p.support++;
      pairs.set(key, p);
    }
  }
  return [...pairs.values()].filter((p) => p.support >= minSupport);
}

const sorted = (rows: ToolPairRow[]) =>
  [...rows].sort(
    (a, b) =>
      a.server_id - b.server_id ||
      a.tool_name.localeCompare(b.tool_name) ||
      a.next_server - b.next_server ||
      a.next_tool.localeCompare(b.next_tool),
  );

describe.each(drivers)('the bundle rule’s tool pairs on %s', (driver) => {
  let t: TestDb;
  const all = events();

  beforeAll(async () => {
    t = await openTestDb(driver);
    await t.db.query(
      `INSERT INTO mcp_servers (name, transport, command) SELECT 'server-' || g, 'stdio', 'node' FROM generate_series(1, $1) g`,
      [SERVERS],
    );
    // Shuffled, so that ids do not follow time and the order of the calls comes from their timestamps.
    const rand = prng(3);
    const shuffled = [...all].sort(() => rand() - 0.5);
    const order = new Map(shuffled.map((e, i) => [e, i]));
    await insertEvents(t.db, shuffled);
    // The reference breaks timestamp ties by id, as the query does: ids follow the insertion order.
    all.sort((a, b) => order.get(a)! - order.get(b)!);
  });
  afterAll(() => t?.drop());

  it('finds every pair of one server, first or second, with its support and first calls', async () => {
    for (let serverId = 1; serverId <= SERVERS; serverId++) {
      const rows = await toolPairs(t.db, { since, until, serverId }, 2, 100_000);
      const expected = reference(all, serverId, 2);
      expect(expected.length).toBeGreaterThan(0);
      expect(sorted(rows), `server ${serverId}`).toEqual(sorted(expected));
      expect(rows.map((r) => r.support)).toEqual([...rows.map((r) => r.support)].sort((a, b) => b - a));
    }
  });

  it('finds the same pairs over every server', async () => {
    const rows = await toolPairs(t.db, { since, until }, 2, 100_000);
    expect(sorted(rows)).toEqual(sorted(reference(all, undefined, 2)));
  });

  it('finds the habits with the support they have', async () => {
    const rows = await toolPairs(t.db, { since, until, serverId: 1 }, 5, 100_000);
    const habit = rows.find((r) => r.tool_name === 'fetch' && r.next_server === 2 && r.next_tool === 'parse');
    const before = rows.find((r) => r.server_id === 3 && r.tool_name === 'store' && r.next_tool === 'parse');
    expect(habit!.support / habit!.first_calls).toBeGreaterThan(0.5);
    expect(before!.support / before!.first_calls).toBeGreaterThan(0.5);
  });

  it('mines only the most recent calls of the server when told to sample', async () => {
    const serverCalls = all
      .filter(
        (e) =>
          e.server_id === 1 &&
          e.event_type === 'tool_call' &&
          e.tool_name &&
          (e.stream_id ?? e.client_id) &&
          e.timestamp >= since &&
          e.timestamp < until,
      )
      .sort((a, b) => b.timestamp.getTime() - a.timestamp.getTime());
    const sample = Math.floor(serverCalls.length / 2);
    const cut = serverCalls[sample - 1]!.timestamp;
    const rows = await toolPairs(t.db, { since, until, serverId: 1 }, 1, sample * SERVER_SAMPLE_SHARE);
    // The sample starts at its oldest call: counts come from the calls from then on.
    const recent = reference(
      all.filter((e) => e.timestamp >= cut),
      1,
      1,
    );
    const firstOnServer = (r: ToolPairRow[]) => sorted(r.filter((p) => p.server_id === 1));
    expect(firstOnServer(rows).length).toBeGreaterThan(0);
    expect(firstOnServer(rows)).toEqual(firstOnServer(recent));
    expect(firstOnServer(rows)).not.toEqual(firstOnServer(reference(all, 1, 1)));
  });
});
