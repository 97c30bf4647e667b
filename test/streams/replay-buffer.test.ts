import { describe, expect, it } from 'vitest';
import { ReplayBuffer } from '../../src/streams/replay-buffer.js';
import { TokenBucket } from '../../src/streams/token-bucket.js';

describe('ReplayBuffer', () => {
  it.each([
    { capacity: 3, pushed: 0, kept: [] },
    { capacity: 3, pushed: 2, kept: [1, 2] },
    { capacity: 3, pushed: 3, kept: [1, 2, 3] },
    { capacity: 3, pushed: 7, kept: [5, 6, 7] },
    { capacity: 1, pushed: 4, kept: [4] },
    { capacity: 0, pushed: 4, kept: [] },
  ])('capacity $capacity after $pushed pushes keeps $kept', ({ capacity, pushed, kept }) => {
    const b = new ReplayBuffer<number>(capacity);
    for (let i = 1; i <= pushed; i++) b.push(i);
    expect([...b]).toEqual(kept);
    expect(b.length).toBe(kept.length);
    expect(b.oldest()).toBe(kept[0]);
  });
});

describe('ReplayBuffer byte budget', () => {
  it('drops the oldest items while over maxBytes, but keeps the newest', () => {
    const b = new ReplayBuffer<string>(10, 100);
    b.push('a', 40);
    b.push('b', 40);
    expect([...b]).toEqual(['a', 'b']);
    b.push('c', 40);
    expect([...b]).toEqual(['b', 'c']);
    expect(b.bytes).toBe(80);
    b.push('huge', 500);
    expect([...b]).toEqual(['huge']);
    b.push('d', 1);
    expect([...b]).toEqual(['d']);
    expect(b.bytes).toBe(1);
  });
});

describe('TokenBucket', () => {
  it('lets a burst through, refuses the next, refills with time', () => {
    let now = 0;
    const bucket = new TokenBucket(10, 3, () => now);
    expect([bucket.take(), bucket.take(), bucket.take(), bucket.take()]).toEqual([true, true, true, false]);
    expect(bucket.retryAfterSeconds()).toBeCloseTo(0.1);
    now += 100;
    expect(bucket.take()).toBe(true);
    expect(bucket.take()).toBe(false);
    now += 10_000;
    expect([bucket.take(), bucket.take(), bucket.take(), bucket.take()]).toEqual([true, true, true, false]);
  });
});
