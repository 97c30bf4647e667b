/** How many bundles the cache keeps; the least recently used one goes first. */
export const BUNDLE_CACHE_SIZE = 1_000;

/**
 * The bundles an execution starts from, kept in memory so that an execution does not wait for a database
 * read before its first step. Only sound while every write to the bundles goes through this process (the
 * caller decides when that holds): an edit made elsewhere would never reach it.
 *
 * A load that an invalidation overtakes is used by the execute that asked for it, never cached: it may hold
 * the row as it was before the edit, and the next execute would find it.
 */
export class BundleCache<T> {
  readonly #entries = new Map<string, T>();
  readonly #size: number;
  /** Bumped by every invalidation; a load started under an older value is not cached. */
  #generation = 0;

  constructor(size = BUNDLE_CACHE_SIZE) {
    this.#size = size;
  }

  /** The cached value, or `load(id)`'s, cached when it is defined and nothing was invalidated meanwhile. */
  async get(id: string, load: (id: string) => Promise<T | undefined>): Promise<T | undefined> {
    const hit = this.#entries.get(id);
    if (hit !== undefined) {
      // Map order is insertion order: re-inserting makes it the most recently used.
      this.#entries.delete(id);
      this.#entries.set(id, hit);
      return hit;
    }
    const generation = this.#generation;
    const loaded = await load(id);
    if (loaded !== undefined && generation === this.#generation) {
      this.#entries.set(id, loaded);
      if (this.#entries.size > this.#size) this.#entries.delete(this.#entries.keys().next().value!);
    }
    return loaded;
  }

  /** After a change to the bundle (edit, delete) is stored. */
  invalidate(id: string): void {
    this.#generation++;
    this.#entries.delete(id);
  }
}
