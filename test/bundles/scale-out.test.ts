/**
 * Bundle executions and live events across two hub processes (the built hub, `npm run build`) on one
 * PostgreSQL database and one Redis. PostgreSQL only: an embedded PGlite database cannot be shared.
 */
import { io, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUNDLES_NAMESPACE, BundleServerEvents } from '../../src/bundles/socket.js';
import { LIVE_EVENTS } from '../../src/events/socket.js';
import { flakyServer } from '../helpers/hub.js';
import { type HubPair, startHubPair } from '../helpers/hub-pair.js';
import { type HubProcess, processToken } from '../helpers/hub-process.js';
import { until } from '../helpers/stream-hub.js';

describe('bundles and live events across two hub processes (PostgreSQL + Redis)', () => {
  const sockets: Socket[] = [];
  let pair: HubPair;
  let a: HubProcess;
  let b: HubProcess;
  let bundleId: string;

  const post = async (hub: HubProcess, url: string, body: unknown) => {
    const res = await fetch(`${hub.base}${url}`, {
      method: 'POST',
      headers: hub.headers,
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  /** A socket of `namespace` on `hub` that records every event it receives. */
  const listen = async (hub: HubProcess, namespace: string, auth: Record<string, unknown>) => {
    const socket = io(`${hub.base}${namespace}`, {
      auth: { token: processToken, ...auth },
      transports: ['websocket'],
      reconnection: false,
      forceNew: true,
    });
    sockets.push(socket);
    const events: { event: string; payload: Record<string, unknown> }[] = [];
    socket.onAny((event: string, payload: Record<string, unknown>) => events.push({ event, payload }));
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('connect_error', reject);
    });
    return events;
  };

  beforeAll(async () => {
    pair = await startHubPair({ SWITCHBOARD_SEED_EXAMPLES: 'false' });
    ({ a, b } = pair);
    const server = await post(a, '/api/mcp/servers', {
      name: 'flaky',
      transport: 'stdio',
      command: process.execPath,
      args: [flakyServer],
    });
    expect(server.status).toBe(201);
    const serverId = (server.body.server as { id: number }).id;
    const bundle = await post(a, '/api/mcp/bundle/create', {
      bundleName: 'two sleeps',
      serverIds: [serverId],
    });
    expect(bundle.status).toBe(201);
    bundleId = bundle.body.bundleId as string;
  }, 120_000);

  afterAll(async () => {
    for (const s of sockets) s.close();
    await pair?.stop();
  }, 60_000);

  it('an execution running on A is followed live from B, though nobody follows anything on A', async () => {
    const run = await post(a, '/api/mcp/bundle/execute', {
      bundleId,
      async: true,
      workflow: {
        steps: [
          { id: 'first', server: 0, tool: 'sleep', args: { ms: 600 } },
          { id: 'second', server: 0, tool: 'sleep', args: { ms: 600 }, dependsOn: ['first'] },
        ],
      },
    });
    expect(run.status).toBe(202);
    const executionId = run.body.executionId as string;
    const events = await listen(b, BUNDLES_NAMESPACE, { executionId });
    await until(
      () => events.some((e) => e.event === BundleServerEvents.finished),
      'execution-finished relayed from A to the follower on B',
      10_000,
    );
    // The snapshot came first (from the database: the execution does not run on B), then A's updates.
    expect(events[0]).toMatchObject({
      event: BundleServerEvents.state,
      payload: { executionId, state: { status: 'running' } },
    });
    const finishedSteps = events
      .filter((e) => e.event === BundleServerEvents.stepFinished)
      .map((e) => (e.payload.step as { id: string }).id);
    expect(finishedSteps).toContain('second');
    expect(events.at(-1)).toMatchObject({
      event: BundleServerEvents.finished,
      payload: { executionId, result: { status: 'succeeded' } },
    });
  });

  it("a UI on B sees live events of A's calls", async () => {
    const events = await listen(b, '/mcp-events', {});
    const call = await post(a, '/api/mcp/bundle/execute', {
      bundleId,
      workflow: { steps: [{ server: 0, tool: 'sleep', args: { ms: 10 } }] },
    });
    expect(call.status).toBe(200);
    await until(
      () =>
        events.some(
          (e) =>
            e.event === LIVE_EVENTS &&
            (e.payload.events as { type: string }[]).some((x) => x.type === 'bundle_execution'),
        ),
      "A's bundle_execution event in a live batch on B",
      10_000,
    );
  });
});
