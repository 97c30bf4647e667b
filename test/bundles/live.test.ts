import type { AddressInfo } from 'node:net';
import { io as connect, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ExecutionResult, ExecutionUpdate } from '../../src/bundles/service.js';
import {
  BUNDLES_NAMESPACE,
  BundleClientEvents,
  BundleServerEvents,
  type ExecutionStatePayload,
  FOLLOWS_PER_SECOND,
  type FollowAck,
} from '../../src/bundles/socket.js';
import { drivers } from '../helpers/db.js';
import { flakyServer, startTestHub, type TestHub, testToken } from '../helpers/hub.js';

type Received = ExecutionUpdate | ExecutionStatePayload;

/** A socket of the namespace that records every event it receives, in order. */
interface Follower {
  socket: Socket;
  events: Received[];
  /** Resolves with the first recorded event (past or future) that matches. */
  next(match: (e: Received) => boolean): Promise<Received>;
}

const allowedOrigin = 'http://allowed.example';

describe.each(drivers)('the /mcp-bundles namespace on %s', (driver) => {
  let t: TestHub;
  let url: string;
  let bundleId: string;
  let otherBundleId: string;
  const sockets: Socket[] = [];

  // Steps 0 and 1 run at once on two servers; 2 needs both, 3 needs 2. Step 2 is long, so that the
  // execution is surely mid-run while the test looks at it.
  const workflow = {
    steps: [
      { id: 'a', server: 0, tool: 'sleep', args: { ms: 300, progressEvery: 100 } },
      { id: 'b', server: 1, tool: 'sleep', args: { ms: 200 } },
      { id: 'c', server: 0, tool: 'sleep', args: { ms: 1500 }, dependsOn: [0, 1] },
      { id: 'd', server: 1, tool: 'echo', args: { message: 'done' }, dependsOn: [2] },
    ],
  };

  beforeAll(async () => {
    t = await startTestHub(driver, { SWITCHBOARD_ALLOWED_ORIGINS: allowedOrigin });
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    url = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}${BUNDLES_NAMESPACE}`;
    const one = await t.addStdioServer('flaky-live-1', [flakyServer]);
    const two = await t.addStdioServer('flaky-live-2', [flakyServer]);
    const res = await t.api({
      method: 'POST',
      url: '/api/mcp/bundle/create',
      payload: { bundleName: 'live', serverIds: [one, two], bundleConfig: { parallel: true }, workflow },
    });
    expect(res.statusCode, res.body).toBe(201);
    bundleId = res.json().bundleId;
    const second = await t.api({
      method: 'POST',
      url: '/api/mcp/bundle/create',
      payload: { bundleName: 'other', serverIds: [one, two], bundleConfig: { parallel: true } },
    });
    expect(second.statusCode, second.body).toBe(201);
    otherBundleId = second.json().bundleId;
  });
  afterAll(async () => {
    for (const s of sockets) s.disconnect();
    await t?.close();
  });

  const open = (auth: Record<string, unknown>, extraHeaders?: Record<string, string>) => {
    const socket = connect(url, {
      auth,
      transports: ['websocket'],
      reconnection: false,
      ...(extraHeaders ? { extraHeaders } : {}),
    });
    sockets.push(socket);
    return socket;
  };

  const connected = (socket: Socket) =>
    new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('connect_error', reject);
    });

  async function follower(auth: Record<string, unknown> = {}): Promise<Follower> {
    const socket = open({ token: testToken, ...auth });
    const events: Received[] = [];
    const waiting: { match: (e: Received) => boolean; resolve: (e: Received) => void }[] = [];
    socket.onAny((_name: string, payload: Received) => {
      events.push(payload);
      for (const w of [...waiting]) {
        if (w.match(payload)) {
          waiting.splice(waiting.indexOf(w), 1);
          w.resolve(payload);
        }
      }
    });
    await connected(socket);
    return {
      socket,
      events,
      next: (match) =>
        new Promise((resolve) => {
          const seen = events.find(match);
          if (seen) resolve(seen);
          else waiting.push({ match, resolve });
        }),
    };
  }

  const follow = (socket: Socket, target: Record<string, unknown>) =>
    socket.timeout(10_000).emitWithAck(BundleClientEvents.follow, target) as Promise<FollowAck>;

  async function getExecution(executionId: string): Promise<ExecutionResult> {
    const res = await t.api({ method: 'GET', url: `/api/mcp/bundle/executions/${executionId}` });
    expect(res.statusCode, res.body).toBe(200);
    return res.json();
  }

  async function startAsync(): Promise<string> {
    const res = await t.api({
      method: 'POST',
      url: '/api/mcp/bundle/execute',
      payload: { bundleId, async: true },
    });
    expect(res.statusCode, res.body).toBe(202);
    return res.json().executionId;
  }

  const finishedOf = (executionId: string) => (e: Received) =>
    e.type === BundleServerEvents.finished && e.executionId === executionId;

  it('pushes an async execution live: start, every step in DAG order, end equal to the stored result', async () => {
    // Another execution at the same time, followed by a client of its own: it must see nothing of this one.
    const other = await t.api({
      method: 'POST',
      url: '/api/mcp/bundle/execute',
      payload: {
        bundleId: otherBundleId,
        async: true,
        workflow: {
          steps: [
            { server: 0, tool: 'sleep', args: { ms: 1000, progressEvery: 200 } },
            { server: 1, tool: 'echo', args: { message: 'other' }, dependsOn: [0] },
          ],
        },
      },
    });
    expect(other.statusCode, other.body).toBe(202);
    const otherId: string = other.json().executionId;
    const bystander = await follower({ executionId: otherId });

    // A UI watching the bundle, following from before the execution exists.
    const watcher = await follower({ bundleId });
    const executionId = await startAsync();
    // A client that learns the id from the 202 and follows it by event.
    const client = await follower();
    expect(await follow(client.socket, { executionId })).toEqual({
      success: true,
      following: { executionId },
    });

    // Mid-run: step c has started (a and b are done), so polling shows a partial state.
    await client.next((e) => e.type === BundleServerEvents.stepStarted && e.step.id === 'c');
    const partial = await getExecution(executionId);
    expect(partial.status).toBe('running');
    expect(partial.results.map((s) => s.status)).toEqual(['succeeded', 'succeeded', 'running', 'pending']);

    const finished = await watcher.next(finishedOf(executionId));
    await client.next(finishedOf(executionId));
    const stored = await getExecution(executionId);
    expect(finished.type === BundleServerEvents.finished && finished.result).toEqual(stored);
    expect(stored).toMatchObject({ status: 'succeeded', success: true });

    // The watcher saw the whole execution and nothing of what ran before it was following.
    const seen = watcher.events.filter((e) => e.executionId === executionId);
    expect(watcher.events.every((e) => e.executionId === executionId)).toBe(true);
    expect(seen[0]?.type).toBe(BundleServerEvents.started);
    expect(seen.at(-1)?.type).toBe(BundleServerEvents.finished);
    expect(seen.filter((e) => e.type === BundleServerEvents.started)).toHaveLength(1);
    expect(seen.filter((e) => e.type === BundleServerEvents.finished)).toHaveLength(1);
    const position = (type: string, id: string) =>
      seen.findIndex((e) => e.type === type && 'step' in e && typeof e.step === 'object' && e.step.id === id);
    for (const id of ['a', 'b', 'c', 'd']) {
      const started = position(BundleServerEvents.stepStarted, id);
      const ended = position(BundleServerEvents.stepFinished, id);
      expect(started, `step-started ${id}`).toBeGreaterThan(0);
      expect(ended, `step-finished ${id}`).toBeGreaterThan(started);
      expect(
        seen.filter(
          (e) =>
            e.type !== BundleServerEvents.stepProgress && 'step' in e && (e.step as { id: string }).id === id,
        ),
      ).toHaveLength(2);
    }
    // Dependencies end before their dependants start; the two roots run at once.
    for (const [dep, step] of [
      ['a', 'c'],
      ['b', 'c'],
      ['c', 'd'],
    ] as const) {
      expect(position(BundleServerEvents.stepFinished, dep)).toBeLessThan(
        position(BundleServerEvents.stepStarted, step),
      );
    }
    expect(position(BundleServerEvents.stepStarted, 'b')).toBeLessThan(
      position(BundleServerEvents.stepFinished, 'a'),
    );
    // Progress of step a (index 0) comes between its start and its end.
    const progress = seen.flatMap((e, i) =>
      e.type === BundleServerEvents.stepProgress && e.step === 0 ? [i] : [],
    );
    expect(progress.length).toBeGreaterThan(0);
    for (const i of progress) {
      expect(i).toBeGreaterThan(position(BundleServerEvents.stepStarted, 'a'));
      expect(i).toBeLessThan(position(BundleServerEvents.stepFinished, 'a'));
    }

    // The client that joined mid-run: first the snapshot, then only what came after it, each once.
    const [snapshot, ...updates] = client.events;
    expect(snapshot?.type).toBe(BundleServerEvents.state);
    const state = (snapshot as ExecutionStatePayload).state;
    expect(state).toMatchObject({ executionId, bundleId, status: 'running' });
    expect(client.events.every((e) => e.executionId === executionId)).toBe(true);
    expect(
      updates.some((e) => e.type === BundleServerEvents.state || e.type === BundleServerEvents.started),
    ).toBe(false);
    for (const s of state.results) {
      const ends = updates.filter(
        (e) => e.type === BundleServerEvents.stepFinished && e.step.step === s.step,
      );
      const starts = updates.filter(
        (e) => e.type === BundleServerEvents.stepStarted && e.step.step === s.step,
      );
      // A step done in the snapshot is not reported again; every other one ends exactly once after it.
      expect(ends).toHaveLength(s.status === 'succeeded' ? 0 : 1);
      expect(starts).toHaveLength(s.status === 'pending' ? 1 : 0);
    }
    expect(updates.at(-1)?.type).toBe(BundleServerEvents.finished);

    // The follower of the other execution got all of it and nothing else.
    await bystander.next(finishedOf(otherId));
    expect(bystander.events[0]).toMatchObject({ type: BundleServerEvents.state, executionId: otherId });
    expect(bystander.events.every((e) => e.executionId === otherId)).toBe(true);
  });

  it('gives a late joiner the snapshot of an execution that has already finished', async () => {
    const executionId = await startAsync();
    const early = await follower({ executionId });
    await early.next(finishedOf(executionId));
    const stored = await getExecution(executionId);

    const late = await follower({ executionId });
    const snapshot = await late.next((e) => e.type === BundleServerEvents.state);
    expect(snapshot).toEqual({ type: BundleServerEvents.state, executionId, bundleId, state: stored });
    // Following again by event sends the snapshot again; a finished execution sends nothing more.
    expect(await follow(late.socket, { executionId })).toMatchObject({ success: true });
    expect(late.events).toHaveLength(2);
    expect(late.events[1]).toEqual(snapshot);
  });

  it('stops sending after unfollow-execution', async () => {
    const client = await follower({ bundleId });
    const unfollowed = (await client.socket
      .timeout(10_000)
      .emitWithAck(BundleClientEvents.unfollow, { bundleId })) as FollowAck;
    expect(unfollowed).toEqual({ success: true, following: { bundleId } });
    const watcher = await follower({ bundleId });
    const executionId = await startAsync();
    await watcher.next(finishedOf(executionId));
    // Whatever the hub sent this socket before answering it has arrived by the answer.
    expect(await follow(client.socket, { executionId: 'exec-ping' })).toMatchObject({ success: false });
    expect(client.events).toEqual([]);
  });

  it('answers an unknown id or a bad payload with an error, and the socket stays', async () => {
    const client = await follower();
    expect(await follow(client.socket, { executionId: 'exec-unknown' })).toMatchObject({
      success: false,
      error: { code: 'SB_ERR_NOT_FOUND', message: 'Execution exec-unknown not found' },
    });
    expect(await follow(client.socket, { bundleId: 'bundle-unknown' })).toMatchObject({
      success: false,
      error: { code: 'SB_ERR_NOT_FOUND' },
    });
    for (const bad of [{}, { executionId: 7 }, { executionId: 'x', bundleId: 'y' }, 'exec-1']) {
      expect(await follow(client.socket, bad as Record<string, unknown>)).toMatchObject({
        success: false,
        error: { code: 'SB_ERR_VALIDATION' },
      });
    }
    expect(client.socket.connected).toBe(true);
    expect(await follow(client.socket, { bundleId })).toEqual({ success: true, following: { bundleId } });
    expect(client.events).toEqual([]);
  });

  it('limits follows per socket, answering with the retry delay', async () => {
    const client = await follower();
    const acks = await Promise.all(
      Array.from({ length: 3 * FOLLOWS_PER_SECOND }, () => follow(client.socket, { bundleId })),
    );
    const refused = acks.flatMap((a) => (a.success ? [] : [a.error]));
    expect(refused.length).toBeGreaterThan(0);
    for (const e of refused) {
      expect(e).toMatchObject({
        code: 'SB_ERR_RATE_LIMITED',
        details: { retryAfterSeconds: expect.any(Number) },
      });
    }
    // The burst passes.
    expect(acks.filter((a) => a.success).length).toBeGreaterThanOrEqual(2 * FOLLOWS_PER_SECOND);
    expect(client.socket.connected).toBe(true);
  });

  it('refuses a handshake without the API token, from a bad origin, or naming an unknown execution', async () => {
    await expect(connected(open({}))).rejects.toMatchObject({ data: { code: 'SB_ERR_UNAUTHORIZED' } });
    await expect(connected(open({ token: 'nope' }))).rejects.toMatchObject({
      data: { code: 'SB_ERR_UNAUTHORIZED' },
    });
    const badOrigin = connected(open({ token: testToken }, { origin: 'http://evil.example' }));
    await expect(badOrigin).rejects.toMatchObject({ data: { code: 'SB_ERR_FORBIDDEN' } });
    await expect(badOrigin).rejects.toThrow(/origin/);
    await expect(connected(open({ token: testToken, executionId: 'exec-unknown' }))).rejects.toMatchObject({
      data: { code: 'SB_ERR_NOT_FOUND' },
    });
    await expect(connected(open({ token: testToken, executionId: 42 }))).rejects.toMatchObject({
      data: { code: 'SB_ERR_VALIDATION' },
    });
    await connected(open({ token: testToken }, { origin: allowedOrigin }));
  });
});
