import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../../src/mcp/canonical-json.js';
import { ResultCache, resultCacheKey } from '../../src/mcp/result-cache.js';

/** A cache on a clock the test moves. */
function cacheAt(limits: { maxEntries?: number; maxBytes?: number; maxEntryBytes?: number } = {}) {
  const clock = { now: 0 };
  const cache = new ResultCache(
    { maxEntries: 100, maxBytes: 10_000, maxEntryBytes: 1_000, ...limits },
    () => clock.now,
  );
  return { cache, clock };
}

describe('resultCacheKey', () => {
  it.each([
    ['key order of the arguments', { a: 1, b: 2 }, { b: 2, a: 1 }, true],
    [
      'key order of nested objects',
      { o: { x: 1, y: [{ q: 1, p: 2 }] } },
      { o: { y: [{ p: 2, q: 1 }], x: 1 } },
      true,
    ],
    ['no arguments and empty arguments', undefined, {}, true],
    ['different values', { a: 1 }, { a: 2 }, false],
    ['array order', { a: [1, 2] }, { a: [2, 1] }, false],
    ['a string and a number', { a: '1' }, { a: 1 }, false],
  ])('%s', (_what, a, b, same) => {
    expect(resultCacheKey('t', a) === resultCacheKey('t', b)).toBe(same);
  });

  it('differs between tools', () => {
    expect(resultCacheKey('a', { x: 1 })).not.toBe(resultCacheKey('b', { x: 1 }));
  });

  it('writes sorted keys', () => {
    expect(canonicalJson({ b: 1, a: { d: null, c: 'x' } })).toBe('{"a":{"c":"x","d":null},"b":1}');
  });
});

describe('ResultCache', () => {
  it('answers within the TTL and forgets after it', () => {
    const { cache, clock } = cacheAt();
    expect(cache.set('k', '{"v":1}', 100)).toBe(true);
    clock.now = 99;
    expect(cache.get('k')).toBe('{"v":1}');
    clock.now = 100;
    expect(cache.get('k')).toBeUndefined();
    expect(cache.size).toBe(0);
    expect(cache.bytes).toBe(0);
  });

  it('evicts the least recently used entry past maxEntries', () => {
    const { cache } = cacheAt({ maxEntries: 2 });
    cache.set('a', '1', 1_000);
    cache.set('b', '2', 1_000);
    expect(cache.get('a')).toBe('1'); // a is now more recent than b
    cache.set('c', '3', 1_000);
    expect(cache.get('b')).toBeUndefined();
    expect(cache.get('a')).toBe('1');
    expect(cache.get('c')).toBe('3');
  });

  it('evicts past maxBytes, counting keys and results', () => {
    const { cache } = cacheAt({ maxBytes: 30 });
    cache.set('a', 'x'.repeat(9), 1_000); // 10 bytes
    cache.set('b', 'x'.repeat(9), 1_000);
    cache.set('c', 'x'.repeat(9), 1_000);
    expect(cache.bytes).toBe(30);
    cache.set('d', 'x'.repeat(9), 1_000);
    expect(cache.size).toBe(3);
    expect(cache.bytes).toBe(30);
    expect(cache.get('a')).toBeUndefined();
  });

  it('does not cache a result larger than maxEntryBytes, nor with a TTL of 0', () => {
    const { cache } = cacheAt({ maxEntryBytes: 20 });
    expect(cache.set('big', 'x'.repeat(20), 1_000)).toBe(false);
    expect(cache.set('zero', '1', 0)).toBe(false);
    expect(cache.size).toBe(0);
  });

  it('replaces an entry under the same key and clears', () => {
    const { cache } = cacheAt();
    cache.set('k', '1', 1_000);
    cache.set('k', '22', 1_000);
    expect(cache.get('k')).toBe('22');
    expect(cache.bytes).toBe(3);
    cache.clear();
    expect(cache.get('k')).toBeUndefined();
    expect(cache.bytes).toBe(0);
  });
});
