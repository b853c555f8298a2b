import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { parsePointer } from './patch.ts';

/**
 * One Ajv instance for every schema podgate compiles. Schemas are compiled once,
 * when a module first asks for a validator, never per request.
 *
 * No `coerceTypes`, no `removeAdditional`, no `useDefaults`: a validator must
 * never change what it validates (the reviewed object is forwarded as is).
 */
// verbose: each error carries its schema, so an unknown field can be answered with the closest known one.
const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true, verbose: true });
/**
 * The same, stopping at the first error: for input from clients (an AdmissionReview),
 * where collecting every error of a 200,000-entry array costs memory in proportion to
 * the attacker's input. Policy files, written by their authors, get every error.
 */
const firstErrorAjv = new Ajv({ allErrors: false, strict: true, allowUnionTypes: true });

/** A type guard for `schema`, compiled once, that reports every error (for policy files). */
export function compileValidator<S extends TSchema>(schema: S): ValidateFunction<Static<S>> {
  return ajv.compile<Static<S>>(schema);
}

/** A type guard for `schema`, compiled once, that stops at the first error (for client input). */
export function compileFirstErrorValidator<S extends TSchema>(schema: S): ValidateFunction<Static<S>> {
  return firstErrorAjv.compile<Static<S>>(schema);
}

/** `{ type: 'string', enum: [...] }`, which gives one readable error instead of an anyOf of consts. */
export function StringEnum<const T extends readonly string[]>(values: T, options: { description?: string; default?: T[number] } = {}) {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });
}

/** A path inside a document: property names and array indexes, unescaped. */
export type DocPath = readonly (string | number)[];

/** One thing wrong with a document, at a path. */
export interface Problem {
  readonly path: DocPath;
  readonly message: string;
  /** Point at the key of the last path token rather than its value (an unknown field). */
  readonly atKey?: boolean;
}

/** `rules[2].limits.cpu`: the way a person names a place in a policy file. */
export function formatPath(path: DocPath): string {
  let out = '';
  for (const token of path) {
    if (typeof token === 'number') out += `[${token}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(token)) out += out === '' ? token : `.${token}`;
    else out += `[${preview(token)}]`;
  }
  return out === '' ? '(top level)' : out;
}

/** ajv's instancePath as a document path: array indexes become numbers. */
function decodePointer(instancePath: string): DocPath {
  return parsePointer(instancePath).map((token) => (/^(0|[1-9][0-9]*)$/.test(token) ? Number(token) : token));
}

/** Ajv's error in the words of a policy author (ajv's own read `must NOT have fewer than 1 items`). */
function describe(error: ErrorObject, value: unknown, suggest: boolean): string {
  const params = error.params as Record<string, unknown>;
  const limit = Number(params['limit']);
  switch (error.keyword) {
    case 'required':
      return `missing required field "${String(params['missingProperty'])}"`;
    case 'additionalProperties':
      return `unknown field${suggest ? didYouMean(String(params['additionalProperty']), Object.keys(propertiesOf(error.parentSchema))) : ''}`;
    case 'enum': {
      const allowed = Array.isArray(params['allowedValues']) ? params['allowedValues'].map(String).join(', ') : '';
      return `${preview(value)} is not one of: ${allowed}`;
    }
    case 'const':
      return `must be ${JSON.stringify(params['allowedValue'])}, found ${preview(value)}`;
    case 'type':
      return typeMessage(String(params['type']), value);
    case 'minItems':
      return limit === 1 ? 'must not be empty: give at least one entry, or leave the field out' : `must have at least ${limit} entries, found ${Array.isArray(value) ? value.length : 0}`;
    case 'maxItems':
      return `must have at most ${limit} entries, found ${Array.isArray(value) ? value.length : 0}`;
    case 'minLength':
      return limit === 1 ? 'must not be empty' : `must be at least ${limit} characters long`;
    case 'maxLength':
      return `must be at most ${limit} characters long, found ${typeof value === 'string' ? value.length : 0}`;
    case 'minimum':
      return `must be at least ${limit}, found ${preview(value)}`;
    case 'maximum':
      return `must be at most ${limit}, found ${preview(value)}`;
    case 'pattern':
      return `${preview(value)} does not match ${String(params['pattern'])}`;
    default:
      return error.message ?? `fails ${error.keyword}`;
  }
}

function typeMessage(expected: string, value: unknown): string {
  const wanted = expected === 'integer' ? 'a whole number' : expected === 'object' ? 'a map' : expected === 'array' ? 'a list' : `a ${expected}`;
  // YAML reads true and yes-like words as booleans: a label or annotation value "true" must be quoted.
  const quote = expected === 'string' && typeof value === 'boolean' ? ` (quote it: "${String(value)}")` : '';
  return `must be ${wanted}, found ${describeType(value)}${quote}`;
}

function propertiesOf(schema: unknown): Record<string, unknown> {
  if (typeof schema !== 'object' || schema === null || !('properties' in schema)) return {};
  const { properties } = schema;
  return typeof properties === 'object' && properties !== null ? (properties as Record<string, unknown>) : {};
}

/** `; did you mean "containers"?` when one known field is a typo away (edit distance at most 2, and under half the name). */
function didYouMean(name: string, known: readonly string[]): string {
  let best: { field: string; distance: number } | undefined;
  for (const field of known) {
    const distance = editDistance(name.toLowerCase(), field.toLowerCase());
    if (distance <= 2 && distance < Math.max(2, field.length / 2) && (best === undefined || distance < best.distance)) best = { field, distance };
  }
  return best === undefined ? '' : `; did you mean "${best.field}"?`;
}

/** Levenshtein distance, for field names (a few dozen characters; longer names are not compared). */
function editDistance(a: string, b: string): number {
  if (a.length > 64 || b.length > 64) return Infinity;
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i += 1) {
    const current = [i];
    for (let j = 1; j <= b.length; j += 1) current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1)));
    previous = current;
  }
  return previous[b.length] ?? Infinity;
}

function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'string') return `string ${preview(value)}`;
  return typeof value;
}

/** Longest string quoted in a message: a message never grows with the input it describes. */
const PREVIEW_CHARS = 60;

/** A value as a message quotes it: short scalars as JSON, long strings cut, objects and arrays by their type. */
function preview(value: unknown): string {
  if (typeof value === 'string') {
    return value.length <= PREVIEW_CHARS ? JSON.stringify(value) : `${JSON.stringify(value.slice(0, PREVIEW_CHARS))}… (${value.length} characters)`;
  }
  if (value === null || typeof value === 'number' || typeof value === 'boolean') return String(value);
  return Array.isArray(value) ? 'an array' : typeof value === 'object' ? 'an object' : typeof value;
}

function valueAt(root: unknown, path: DocPath): unknown {
  let current = root;
  for (const token of path) {
    if (typeof current !== 'object' || current === null) return undefined;
    current = Object.hasOwn(current, token) ? (current as Record<string | number, unknown>)[token] : undefined;
  }
  return current;
}

const MAX_SUGGESTIONS = 100;

/**
 * Ajv's errors as problems a person can act on, one per place, in document order.
 * Errors from the branches of an `anyOf` that did not apply are noise and dropped
 * when a more specific error exists at the same place.
 */
export function schemaProblems(errors: readonly ErrorObject[] | null | undefined, root: unknown, base: DocPath = []): Problem[] {
  const seen = new Set<string>();
  const problems: Problem[] = [];
  for (const error of errors ?? []) {
    if (error.keyword === 'anyOf' || error.keyword === 'oneOf' || error.keyword === 'if') continue;
    const local = decodePointer(error.instancePath);
    // Suggestions for the first problems only: a report lists about a hundred, and each costs an edit distance per known field.
    const message = describe(error, valueAt(root, local), problems.length < MAX_SUGGESTIONS);
    const unknownField = error.keyword === 'additionalProperties' ? [String((error.params as Record<string, unknown>)['additionalProperty'])] : [];
    const path = [...base, ...local, ...unknownField];
    const key = `${formatPath(path)}\u0000${message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    problems.push(unknownField.length > 0 ? { path, message, atKey: true } : { path, message });
  }
  return problems;
}

/**
 * A copy of `document` without the values at `paths`, so what is left can still be
 * checked for the problems a schema cannot see (one pass reports both). Undefined when a
 * path ends in a list entry (removing it would renumber the entries after it) or at the
 * top.
 */
export function withoutPaths(document: unknown, paths: readonly DocPath[]): unknown {
  const copy: unknown = structuredClone(document);
  for (const path of paths) {
    const last = path.at(-1);
    if (last === undefined || typeof last === 'number') return undefined;
    const parent = valueAt(copy, path.slice(0, -1));
    if (typeof parent === 'object' && parent !== null && !Array.isArray(parent)) Reflect.deleteProperty(parent, last);
  }
  return copy;
}

/**
 * The problems found in what `withoutPaths` left that say nothing about the removed
 * values: not at, inside, or above one of them (without `annotations.a`, a map the rule
 * needs non-empty looks empty, which is not the author's mistake).
 */
export function apartFrom(problems: readonly Problem[], removed: readonly DocPath[]): Problem[] {
  const prefix = (short: DocPath, long: DocPath) => short.length <= long.length && short.every((token, i) => token === long[i]);
  return problems.filter((problem) => !removed.some((path) => prefix(problem.path, path) || prefix(path, problem.path)));
}
