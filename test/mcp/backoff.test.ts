import { describe, expect, it } from 'vitest';
import { backoffDelay, defaultBackoff } from '../../src/mcp/backoff.js';

describe('backoffDelay', () => {
  const opts = { baseMs: 100, maxMs: 1_000, factor: 2, jitter: 0.5 };

  it.each([
    [0, 0, 0],
    [1, 50, 100],
    [2, 100, 200],
    [3, 200, 400],
    [4, 400, 800],
    [5, 500, 1_000],
    [50, 500, 1_000],
  ])('after %i failures the delay is in [%i, %i]', (failures, min, max) => {
    expect(backoffDelay(failures, opts, () => 0)).toBe(min);
    expect(backoffDelay(failures, opts, () => 1)).toBe(max);
    const d = backoffDelay(failures, opts);
    expect(d).toBeGreaterThanOrEqual(min);
    expect(d).toBeLessThanOrEqual(max);
  });

  it('never waits zero after a failure, and never more than the cap', () => {
    for (let i = 1; i < 100; i++) {
      const d = backoffDelay(i, defaultBackoff);
      expect(d).toBeGreaterThan(0);
      expect(d).toBeLessThanOrEqual(defaultBackoff.maxMs);
    }
  });
});
