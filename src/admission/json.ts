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
  let current = value;
  for (const key of path) current = field(current, key);
  return current;
}

export function stringAt(value: unknown, ...path: readonly string[]): string | undefined {
  const found = at(value, ...path);
  return typeof found === 'string' ? found : undefined;
}

export function arrayAt(value: unknown, ...path: readonly string[]): readonly unknown[] {
  const found = at(value, ...path);
  return Array.isArray(found) ? found : [];
}

/**
 * A string-to-string map (labels, annotations, nodeSelector) as a Map, keeping
 * only own entries whose values are strings. A Map cannot be confused with
 * prototype properties, whatever keys the object carries.
 */
export function stringMapAt(value: unknown, ...path: readonly string[]): ReadonlyMap<string, string> {
  const found = at(value, ...path);
  const map = new Map<string, string>();
  if (!isRecord(found)) return map;
  // for…in over own keys, not Object.entries: this runs several times per review, and entries() allocates a pair per key.
  for (const key in found) {
    const entry = Object.hasOwn(found, key) ? found[key] : undefined;
    if (typeof entry === 'string') map.set(key, entry);
  }
  return map;
}

/** Structural equality of two JSON values (object key order ignored). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((item, index) => jsonEqual(item, b[index]));
  if (!isRecord(a) || !isRecord(b)) return false;
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((key) => Object.hasOwn(b, key) && jsonEqual(a[key], b[key]));
}
