/** A count per key that forgets a key whose count falls to zero (so keys seen once do not pile up). */
export class Tally<K> {
  readonly #counts = new Map<K, number>();

  get(key: K): number {
    return this.#counts.get(key) ?? 0;
  }

  add(key: K, amount: number): void {
    const count = this.get(key) + amount;
    if (count > 0) this.#counts.set(key, count);
    else this.#counts.delete(key);
  }

  /** A copy to plan on without changing this one. */
  copy(): Tally<K> {
    const copy = new Tally<K>();
    for (const [key, count] of this.#counts) copy.#counts.set(key, count);
    return copy;
  }
}
