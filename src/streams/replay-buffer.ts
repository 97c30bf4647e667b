/**
 * The last `capacity` items, oldest first, and at most `maxBytes` of them by the sizes given to push():
 * pushing past either bound drops the oldest (a big result must not pin memory for thousands of messages).
 */
export class ReplayBuffer<T> {
  readonly #items: (T | undefined)[];
  readonly #sizes: number[];
  #head = 0;
  #length = 0;
  #bytes = 0;

  constructor(
    readonly capacity: number,
    readonly maxBytes: number = Number.POSITIVE_INFINITY,
  ) {
    this.#items = new Array(capacity);
    this.#sizes = new Array(capacity).fill(0);
  }

  get length(): number {
    return this.#length;
  }

  get bytes(): number {
    return this.#bytes;
  }

  push(item: T, bytes = 0): void {
    if (this.capacity === 0) return;
    if (this.#length === this.capacity) this.#dropOldest();
    const at = (this.#head + this.#length) % this.capacity;
    this.#items[at] = item;
    this.#sizes[at] = bytes;
    this.#length++;
    this.#bytes += bytes;
    // The newest item stays even when it alone is over the budget: a reconnecting client may still want it.
    while (this.#bytes > this.maxBytes && this.#length > 1) this.#dropOldest();
  }

  #dropOldest(): void {
    this.#bytes -= this.#sizes[this.#head]!;
    this.#items[this.#head] = undefined;
    this.#head = (this.#head + 1) % this.capacity;
    this.#length--;
  }

  oldest(): T | undefined {
    return this.#length === 0 ? undefined : this.#items[this.#head];
  }

  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = 0; i < this.#length; i++) yield this.#items[(this.#head + i) % this.capacity] as T;
  }
}
