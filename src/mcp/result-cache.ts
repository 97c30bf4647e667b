import { canonicalJson } from './canonical-json.js';

/** What one server's result cache may hold. */
export interface ResultCacheLimits {
  /** Entries kept at most; past it the least recently used goes. */
  maxEntries: number;
  /** Bytes (key and result JSON) kept at most; past it the least recently used go. */
  maxBytes: number;
  /** A larger result is not cached at all: it would push out many small ones. */
  maxEntryBytes: number;
}

export const defaultResultCacheLimits: ResultCacheLimits = {
  maxEntries: 1_000,
  maxBytes: 16 * 1024 * 1024,
  maxEntryBytes: 1024 * 1024,
};

interface Entry {
  /** The result as JSON: every hit parses its own copy, so no caller can change what the next one gets. */
  json: string;
  bytes: number;
  expiresAt: number;
}

/**
 * The cached results of one server's read-only tools: keyed by tool and canonical arguments, each kept for
 * its TTL, bounded in entries and bytes with least-recently-used eviction. Expired entries are dropped when
 * read or when eviction reaches them.
 */
export class ResultCache {
  readonly #limits: ResultCacheLimits;
  readonly #now: () => number;
  /** Map order is recency order: a hit moves its entry to the end, eviction takes from the front. */
  readonly #entries = new Map<string, Entry>();
  #bytes = 0;

  constructor(
    limits: ResultCacheLimits = defaultResultCacheLimits,
    now: () => number = () => performance.now(),
  ) {
    this.#limits = limits;
    this.#now = now;
  }

  get size(): number {
    return this.#entries.size;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** The cached JSON of `key`, or undefined (absent or expired). */
  get(key: string): string | undefined {
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= this.#now()) {
      this.#delete(key, entry);
      return undefined;
    }
    this.#entries.delete(key);
    this.#entries.set(key, entry);
    return entry.json;
  }

  /** Keeps `json` under `key` for `ttlMs`; returns false when it is too large to be cached. */
  set(key: string, json: string, ttlMs: number): boolean {
    const bytes = Buffer.byteLength(key) + Buffer.byteLength(json);
    const previous = this.#entries.get(key);
    if (previous) this.#delete(key, previous);
    if (ttlMs <= 0 || bytes > this.#limits.maxEntryBytes || bytes > this.#limits.maxBytes) return false;
    this.#entries.set(key, { json, bytes, expiresAt: this.#now() + ttlMs });
    this.#bytes += bytes;
    for (const [k, e] of this.#entries) {
      if (this.#entries.size <= this.#limits.maxEntries && this.#bytes <= this.#limits.maxBytes) break;
      this.#delete(k, e);
    }
    return true;
  }

  clear(): void {
    this.#entries.clear();
    this.#bytes = 0;
  }

  #delete(key: string, entry: Entry): void {
    this.#entries.delete(key);
    this.#bytes -= entry.bytes;
  }
}

/** The cache key of a call: the tool and its arguments as JSON with object keys sorted (key order is noise). */
export function resultCacheKey(tool: string, args: Record<string, unknown> | undefined): string {
  return `${tool}\n${canonicalJson(args ?? {})}`;
}
