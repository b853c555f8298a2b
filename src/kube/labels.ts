/**
 * Labels held compactly for caches of many objects (50,000 KPO pods): one flat
 * array of key, value, key, value… instead of a Map per object, with keys and
 * values shared between objects through a bounded intern table. Reads as a
 * ReadonlyMap, so rules do not care which they get.
 */
const interned = new Map<string, string>();
const INTERN_LIMIT = 100_000;

/** The one copy of `text` (label keys, dag and task ids, environments repeat across thousands of pods). */
export function intern(text: string): string {
  const found = interned.get(text);
  if (found !== undefined) return found;
  if (interned.size < INTERN_LIMIT) interned.set(text, text);
  return text;
}

export class CompactLabels implements ReadonlyMap<string, string> {
  readonly #pairs: readonly string[];

  constructor(entries: Iterable<readonly [string, string]>) {
    const pairs: string[] = [];
    for (const [key, value] of entries) pairs.push(intern(key), intern(value));
    this.#pairs = pairs;
  }

  get size(): number {
    return this.#pairs.length / 2;
  }

  get(key: string): string | undefined {
    for (let i = 0; i < this.#pairs.length; i += 2) if (this.#pairs[i] === key) return this.#pairs[i + 1];
    return undefined;
  }

  has(key: string): boolean {
    for (let i = 0; i < this.#pairs.length; i += 2) if (this.#pairs[i] === key) return true;
    return false;
  }

  *entries(): MapIterator<[string, string]> {
    for (let i = 0; i < this.#pairs.length; i += 2) yield [this.#pairs[i] ?? '', this.#pairs[i + 1] ?? ''];
  }

  *keys(): MapIterator<string> {
    for (let i = 0; i < this.#pairs.length; i += 2) yield this.#pairs[i] ?? '';
  }

  *values(): MapIterator<string> {
    for (let i = 1; i < this.#pairs.length; i += 2) yield this.#pairs[i] ?? '';
  }

  forEach(callback: (value: string, key: string, map: ReadonlyMap<string, string>) => void): void {
    for (const [key, value] of this.entries()) callback(value, key, this);
  }

  [Symbol.iterator](): MapIterator<[string, string]> {
    return this.entries();
  }
}
