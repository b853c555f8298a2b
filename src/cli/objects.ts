import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { LineCounter, parseAllDocuments } from 'yaml';
import { duplicateKeyError, yamlError } from '../config/validate.ts';
import { arrayAt, isRecord, stringAt } from '../lib/json.ts';

/** A Kubernetes object read from a file, with where it came from (for messages). */
export interface SourcedObject {
  readonly source: string;
  readonly object: Record<string, unknown>;
}

/** One clear line for a file that cannot be read as Kubernetes objects: exit status 2. */
export class InputError extends Error {
  override readonly name = 'InputError';
}

const YAML_OR_JSON = /\.(ya?ml|json)$/i;

async function filesUnder(path: string): Promise<string[]> {
  const info = await stat(path).catch(() => undefined);
  if (info === undefined) throw new InputError(`${path}: no such file or directory`);
  if (!info.isDirectory()) return [path];
  const entries = await readdir(path, { withFileTypes: true });
  const nested = await Promise.all(
    entries
      .filter((entry) => entry.isDirectory() || YAML_OR_JSON.test(entry.name))
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((entry) => filesUnder(join(path, entry.name))),
  );
  return nested.flat();
}

/**
 * Objects from YAML or JSON text: multi-document YAML (`helm template`), empty
 * documents and comments skipped, `kind: List` (and `PodList`, `kubectl get -o
 * yaml`) flattened into its items.
 */
export function objectsFromText(text: string, source: string): SourcedObject[] {
  const lineCounter = new LineCounter();
  // Integers as bigints, then back to numbers where that is exact: a bare 12345678901234567890 stays exact
  // (as a string, the way the API server re-encodes a quantity), not rounded by a float.
  // Duplicate keys by duplicateKeyError, in linear time (the parser's own check is quadratic in a map's size).
  const documents = parseAllDocuments(text, { lineCounter, prettyErrors: false, intAsBigInt: true, uniqueKeys: false });
  const out: SourcedObject[] = [];
  documents.forEach((document, index) => {
    if (document.errors.length > 0) throw new InputError(`not YAML or JSON: ${yamlError(text, source, lineCounter, document.errors)}`);
    const duplicate = duplicateKeyError(document.contents, lineCounter, source);
    if (duplicate !== undefined) throw new InputError(duplicate);
    const value: unknown = exactNumbers(document.toJS({ maxAliasCount: 100 }));
    if (value === null || value === undefined) return;
    const where = documents.length > 1 ? `${source}#${index + 1}` : source;
    if (!isRecord(value)) throw new InputError(`${where}: not a Kubernetes object (a ${Array.isArray(value) ? 'list' : typeof value})`);
    const kind = stringAt(value, 'kind');
    if (kind !== undefined && kind.endsWith('List') && Array.isArray(value['items'])) {
      arrayAt(value, 'items').forEach((item, i) => {
        if (isRecord(item)) out.push({ source: `${where} items[${i}]`, object: { ...item } });
      });
      return;
    }
    if (kind === undefined || stringAt(value, 'apiVersion') === undefined) throw new InputError(`${where}: not a Kubernetes object (no apiVersion and kind)`);
    out.push({ source: where, object: { ...value } });
  });
  return out;
}

/** Every object in the given files and directories; `-` reads standard input. */
export async function readObjects(paths: readonly string[], stdin: () => Promise<string>): Promise<SourcedObject[]> {
  const out: SourcedObject[] = [];
  for (const path of paths) {
    if (path === '-') {
      out.push(...objectsFromText(await stdin(), '<stdin>'));
      continue;
    }
    for (const file of await filesUnder(path)) out.push(...objectsFromText(await readFile(file, 'utf8'), file));
  }
  return out;
}

/** A document's bigints as numbers where they fit one exactly, else as their digits. */
function exactNumbers(value: unknown): unknown {
  if (typeof value === 'bigint') return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value.toString();
  if (Array.isArray(value)) return value.map(exactNumbers);
  if (isRecord(value)) {
    const out: Record<string, unknown> = {};
    for (const [key, entry] of Object.entries(value)) Object.defineProperty(out, key, { value: exactNumbers(entry), enumerable: true, writable: true, configurable: true });
    return out;
  }
  return value;
}
