import { jsonEqual } from './json.ts';

/**
 * RFC 6902 JSON Patch operations as podgate emits them. Rules only ever need
 * add / replace / remove (and `test` to guard a replace), so the type says so.
 */
export type PatchOp =
  | { readonly op: 'add'; readonly path: string; readonly value: unknown }
  | { readonly op: 'replace'; readonly path: string; readonly value: unknown }
  | { readonly op: 'remove'; readonly path: string }
  | { readonly op: 'test'; readonly path: string; readonly value: unknown };

/**
 * Escapes one reference token of a JSON Pointer (RFC 6901 §3): `~` becomes `~0`
 * and `/` becomes `~1`, so `podgate.io/environment` is `podgate.io~1environment`.
 */
function escapePointerToken(token: string): string {
  return token.replaceAll('~', '~0').replaceAll('/', '~1');
}

/** Builds a JSON Pointer from unescaped tokens: pointer(['metadata', 'labels', 'a/b']). */
export function pointer(tokens: readonly (string | number)[]): string {
  return tokens.map((t) => `/${escapePointerToken(String(t))}`).join('');
}

/**
 * Applies a patch and returns the patched document, leaving `document` and the
 * patch's values untouched: only the objects and arrays on each operation's path
 * are copied (shallowly), the rest is shared. The mutating phase applies each
 * rule's patch so the next rule sees it; copying the whole pod for that cost
 * more than every rule together.
 *
 * Throws, naming the operation, when a path does not resolve or a `test` fails
 * (a rule's bug, settled by its failurePolicy). Keys are set as own properties,
 * so a `__proto__` key stays a key.
 */
export function applyPatchCopying(document: unknown, patch: readonly PatchOp[]): unknown {
  const fresh = new Set<object>();
  let root = document;
  for (const op of patch) root = applyOne(root, op, fresh);
  return root;
}

type Container = Record<string, unknown> | unknown[];

function applyOne(root: unknown, op: PatchOp, fresh: Set<object>): unknown {
  const tokens = parsePointer(op.path);
  const last = tokens.pop();
  if (last === undefined) {
    if (op.op === 'remove') throw new PatchError(op, 'cannot remove the whole document');
    if (op.op === 'test') return testValue(root, op);
    return op.value;
  }
  const newRoot = writable(root, op, fresh);
  let parent = newRoot;
  for (const token of tokens) {
    const child = writable(readChild(parent, token, op), op, fresh);
    writeChild(parent, token, child);
    parent = child;
  }
  applyAt(parent, last, op);
  return newRoot;
}

function applyAt(parent: Container, token: string, op: PatchOp): void {
  if (Array.isArray(parent)) {
    const index = token === '-' && op.op === 'add' ? parent.length : arrayIndex(token, op);
    const limit = op.op === 'add' ? parent.length : parent.length - 1;
    if (index > limit) throw new PatchError(op, `index ${token} is out of bounds`);
    if (op.op === 'add') parent.splice(index, 0, op.value);
    else if (op.op === 'replace') parent[index] = op.value;
    else if (op.op === 'remove') parent.splice(index, 1);
    else testValue(parent[index], op);
    return;
  }
  const exists = Object.hasOwn(parent, token);
  if (op.op !== 'add' && !exists) throw new PatchError(op, 'the path does not exist');
  if (op.op === 'add' || op.op === 'replace') writeChild(parent, token, op.value);
  else if (op.op === 'remove') Reflect.deleteProperty(parent, token);
  else testValue(parent[token], op);
}

/** The container itself if this patch already copied it, else a shallow copy of it. */
function writable(value: unknown, op: PatchOp, fresh: Set<object>): Container {
  if (typeof value !== 'object' || value === null) throw new PatchError(op, 'the path runs through a value that is not an object or array');
  if (fresh.has(value)) return value as Container;
  const copy: Container = Array.isArray(value) ? [...(value as unknown[])] : { ...(value as Record<string, unknown>) };
  fresh.add(copy);
  return copy;
}

function readChild(parent: Container, token: string, op: PatchOp): unknown {
  if (Array.isArray(parent)) {
    const index = arrayIndex(token, op);
    if (index >= parent.length) throw new PatchError(op, `index ${token} is out of bounds`);
    return parent[index];
  }
  if (!Object.hasOwn(parent, token)) throw new PatchError(op, 'the path does not exist');
  return parent[token];
}

function writeChild(parent: Container, token: string, value: unknown): void {
  if (Array.isArray(parent)) parent[Number(token)] = value;
  else Object.defineProperty(parent, token, { value, writable: true, enumerable: true, configurable: true });
}

function arrayIndex(token: string, op: PatchOp): number {
  if (!/^(0|[1-9]\d*)$/.test(token)) throw new PatchError(op, `"${token}" is not an array index`);
  return Number(token);
}

function testValue(actual: unknown, op: PatchOp): unknown {
  if (op.op === 'test' && !jsonEqual(actual, op.value)) throw new PatchError(op, 'the value differs');
  return actual;
}

/** The unescaped reference tokens of a JSON Pointer (RFC 6901): the inverse of pointer(). */
export function parsePointer(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw new Error(`JSON Pointer ${JSON.stringify(path)} does not start with "/"`);
  return path.slice(1).split('/').map((token) => token.replaceAll('~1', '/').replaceAll('~0', '~'));
}

class PatchError extends Error {
  override readonly name = 'PatchError';
  constructor(op: PatchOp, reason: string) {
    super(`JSON Patch ${op.op} ${op.path}: ${reason}`);
  }
}
