/** A fixed-capacity ring of the last `capacity` items, oldest first; pushing past capacity drops the oldest. */
export class ReplayBuffer<T> {
  readonly #items: (T | undefined)[];
  #head = 0;
  #length = 0;

  constructor(readonly capacity: number) {
    this.#items = new Array(capacity);
  }

  get length(): number {
    return this.#length;
  }

  push(item: T): void {
    if (this.capacity === 0) return;
    if (this.#length < this.capacity) {
      this.#items[(this.#head + this.#length) % this.capacity] = item;
      this.#length++;
    } else {
      this.#items[this.#head] = item;
      this.#head = (this.#head + 1) % this.capacity;
    }
  }

  oldest(): T | undefined {
    return this.#length === 0 ? undefined : this.#items[this.#head];
  }

  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = 0; i < this.#length; i++) yield this.#items[(this.#head + i) % this.capacity] as T;
  }
}
