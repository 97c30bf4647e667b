import { describe, expect, it } from 'vitest';
import { HubError } from '../../src/errors.js';
import { ConcurrencyGate, type Release } from '../../src/mcp/concurrency-gate.js';

const gate = (limit: number, maxQueue = 100) => new ConcurrencyGate({ name: 'server 1', limit, maxQueue });
const tick = () => new Promise((r) => setImmediate(r));

describe('ConcurrencyGate', () => {
  it('lets `limit` calls run and queues the rest in order', async () => {
    const g = gate(2);
    const order: number[] = [];
    const releases: Release[] = [];
    const waits = [1, 2, 3, 4].map((n) =>
      g.acquire().then((release) => {
        order.push(n);
        releases.push(release);
      }),
    );
    await tick();
    expect(order).toEqual([1, 2]);
    expect(g.inFlight).toBe(2);
    expect(g.queued).toBe(2);
    releases[0]!();
    await tick();
    expect(order).toEqual([1, 2, 3]);
    releases[1]!();
    await Promise.all(waits);
    expect(order).toEqual([1, 2, 3, 4]);
    expect(g.inFlight).toBe(2);
    expect(g.queued).toBe(0);
  });

  it('never lets a newcomer overtake a waiter (tryAcquire respects the queue)', async () => {
    const g = gate(1);
    const first = g.tryAcquire()!;
    const waiting = g.acquire();
    first();
    // The slot went to the waiter, not to whoever asks next.
    expect(g.tryAcquire()).toBeUndefined();
    (await waiting)();
    expect(g.tryAcquire()).toBeDefined();
  });

  it('a release is idempotent', async () => {
    const g = gate(1);
    const r = await g.acquire();
    r();
    r();
    expect(g.inFlight).toBe(0);
    const again = g.tryAcquire();
    expect(again).toBeDefined();
    expect(g.inFlight).toBe(1);
  });

  it('refuses with SB_ERR_QUEUE_FULL past maxQueue', async () => {
    const g = gate(1, 2);
    g.tryAcquire();
    const a = g.acquire();
    const b = g.acquire();
    await expect(g.acquire()).rejects.toMatchObject({ code: 'SB_ERR_QUEUE_FULL', status: 503 });
    expect(g.queued).toBe(2);
    a.catch(() => {});
    b.catch(() => {});
  });

  it('an aborted waiter leaves the queue at once with SB_ERR_CANCELLED', async () => {
    const g = gate(1);
    const held = g.tryAcquire()!;
    const ac = new AbortController();
    const aborted = g.acquire(ac.signal);
    const next = g.acquire();
    expect(g.queued).toBe(2);
    ac.abort();
    await expect(aborted).rejects.toMatchObject({ code: 'SB_ERR_CANCELLED' });
    expect(g.queued).toBe(1);
    held();
    const r = await next;
    expect(g.inFlight).toBe(1);
    r();
    // An already aborted signal never queues.
    g.tryAcquire();
    await expect(g.acquire(AbortSignal.abort())).rejects.toMatchObject({ code: 'SB_ERR_CANCELLED' });
  });

  it('raising the limit admits waiters', async () => {
    const g = gate(1);
    g.tryAcquire();
    const waits = [g.acquire(), g.acquire()];
    g.setLimits(3, 10);
    await Promise.all(waits);
    expect(g.inFlight).toBe(3);
  });

  it('close() rejects waiters and later acquires with the given error', async () => {
    const g = gate(1);
    const held = g.tryAcquire()!;
    const waiting = g.acquire();
    const err = new HubError('SB_ERR_CLOSED', 'The pool');
    g.close(err);
    await expect(waiting).rejects.toBe(err);
    await expect(g.acquire()).rejects.toBe(err);
    expect(() => g.tryAcquire()).toThrow(err);
    held(); // a running call still gives its slot back without trouble
    expect(g.inFlight).toBe(0);
  });

  it('keeps its counters right under churn', async () => {
    const g = gate(4, 10_000);
    let running = 0;
    let max = 0;
    await Promise.all(
      Array.from({ length: 2_000 }, async (_, i) => {
        const ac = new AbortController();
        if (i % 7 === 0) setImmediate(() => ac.abort());
        let release: Release;
        try {
          release = await g.acquire(ac.signal);
        } catch {
          return;
        }
        running++;
        max = Math.max(max, running);
        await tick();
        running--;
        release();
      }),
    );
    expect(max).toBe(4);
    expect(g.inFlight).toBe(0);
    expect(g.queued).toBe(0);
  });
});
