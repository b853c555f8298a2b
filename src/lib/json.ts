/**
 * Narrowing helpers for JSON that came from outside (an AdmissionReview body,
 * a YAML file). Everything is `unknown` until one of these says otherwise.
 *
 * Lookups go through `Object.hasOwn` on purpose: a reviewed object is attacker
 * controlled, and `labels['constructor']` on a plain object would otherwise
 * return `Object`'s constructor instead of "no such label".
 */
export type JsonRecord = { readonly [key: string]: unknown };

export function isRecord(value: unknown): value is JsonRecord {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The own property `key` of `value`, or undefined when `value` is no object or lacks it. */
export function field(value: unknown, key: string): unknown {
  return isRecord(value) && Object.hasOwn(value, key) ? value[key] : undefined;
}

/** Follows a path of own properties: at(pod, 'spec', 'containers'). */
export function at(value: unknown, ...path: readonly string[]): unknown {
  return atPath(value, path);
}

/** `at` with the path as one array: no array built per call when the path is a constant. */
export function atPath(value: unknown, path: readonly string[]): unknown {
  let current = value;
  for (const key of path) current = field(current, key);
  return current;
}

export function stringAt(value: unknown, ...path: readonly string[]): string | undefined {
  const found = atPath(value, path);
  return typeof found === 'string' ? found : undefined;
}

const NO_ITEMS: readonly unknown[] = Object.freeze([]);

export function arrayAt(value: unknown, ...path: readonly string[]): readonly unknown[] {
  const found = atPath(value, path);
  return Array.isArray(found) ? found : NO_ITEMS;
}

/**
 * A string-to-string map (labels, annotations, nodeSelector) read as a Map:
 * only own entries whose values are strings. A Map view cannot be confused with
 * prototype properties, whatever keys the object carries.
 *
 * A view over the object, not a copy: this runs several times per review on
 * pods with a dozen labels, and most callers read two or three keys. Reviewed
 * objects are never mutated (patches copy), so the view cannot go stale.
 */
export function stringMapAt(value: unknown, ...path: readonly string[]): ReadonlyMap<string, string> {
  const found = atPath(value, path);
  return isRecord(found) ? new StringRecordView(found) : EMPTY_STRING_MAP;
}

const EMPTY_STRING_MAP: ReadonlyMap<string, string> = new Map();

class StringRecordView implements ReadonlyMap<string, string> {
  readonly #record: JsonRecord;

  constructor(record: JsonRecord) {
    this.#record = record;
  }

  get(key: string): string | undefined {
    if (!Object.hasOwn(this.#record, key)) return undefined;
    const value = this.#record[key];
    return typeof value === 'string' ? value : undefined;
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  get size(): number {
    let size = 0;
    for (const key in this.#record) if (this.get(key) !== undefined) size += 1;
    return size;
  }

  *entries(): MapIterator<[string, string]> {
    for (const key in this.#record) {
      const value = this.get(key);
      if (value !== undefined) yield [key, value];
    }
  }

  *keys(): MapIterator<string> {
    for (const [key] of this.entries()) yield key;
  }

  *values(): MapIterator<string> {
    for (const [, value] of this.entries()) yield value;
  }

  [Symbol.iterator](): MapIterator<[string, string]> {
    return this.entries();
  }

  forEach(callback: (value: string, key: string, map: ReadonlyMap<string, string>) => void, thisArg?: unknown): void {
    for (const [key, value] of this.entries()) callback.call(thisArg, value, key, this);
  }
}

/** Structural equality of two JSON values (object key order ignored). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((item, index) => jsonEqual(item, b[index]));
  if (!isRecord(a) || !isRecord(b)) return false;
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((key) => Object.hasOwn(b, key) && jsonEqual(a[key], b[key]));
}

/** Longest JSON a message quotes from a reviewed object: a message never grows with the input. */
const QUOTED_CHARS = 60;

/** A value from an object as a message quotes it: JSON, cut short with `…` past a few dozen characters. */
export function quoted(value: unknown): string {
  const text = (JSON.stringify(value) as string | undefined) ?? String(value); // undefined for undefined and functions
  return text.length <= QUOTED_CHARS ? text : `${text.slice(0, QUOTED_CHARS)}…`;
}
