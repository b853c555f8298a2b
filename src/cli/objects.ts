import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { LineCounter, parseAllDocuments } from 'yaml';
import { yamlError } from '../config/validate.ts';
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
  const documents = parseAllDocuments(text, { lineCounter, prettyErrors: false });
  const out: SourcedObject[] = [];
  documents.forEach((document, index) => {
    if (document.errors.length > 0) throw new InputError(`not YAML or JSON: ${yamlError(text, source, lineCounter, document.errors)}`);
    const value: unknown = document.toJS({ maxAliasCount: 100 });
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
