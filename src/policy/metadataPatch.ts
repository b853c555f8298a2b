import { at, isRecord } from '../lib/json.ts';
import { pointer, type PatchOp } from '../lib/patch.ts';

/**
 * JSON Patch operations that add entries to `metadata.labels` or
 * `metadata.annotations` of the object at `base`. Adding `/metadata/labels/x`
 * fails when the map is absent, so a missing map is added whole.
 */
export function addToMetadataMap(object: unknown, base: readonly string[], map: 'labels' | 'annotations', entries: Readonly<Record<string, string>>): PatchOp[] {
  const keys = Object.keys(entries);
  if (keys.length === 0) return [];
  if (!isRecord(at(object, ...base, 'metadata', map))) return [{ op: 'add', path: pointer([...base, 'metadata', map]), value: { ...entries } }];
  return keys.map((key) => ({ op: 'add', path: pointer([...base, 'metadata', map, key]), value: entries[key] }));
}
