import type { DocPath } from '../lib/schema.ts';
import { CLOSE_ARRAY, CLOSE_OBJECT, COMMA, escapedStringEnd, OPEN_ARRAY, OPEN_OBJECT, QUOTE, StringEnds } from './jsonText.ts';

/**
 * Most members podgate reads in one JSON object of a review. Kubernetes bounds an
 * object's bytes (annotations 256 KiB, a request 3 MiB), not how many entries its maps
 * hold, and V8 keeps a parsed object of more than about a thousand keys as a hash table
 * whose every walk (Object.keys, for…in) sorts all of them: 35-60 ms for 100,000
 * annotations here, once per walk. Real objects carry a few dozen labels; 10,000 keeps
 * a walk to a few milliseconds.
 */
export const OBJECT_MEMBER_LIMIT = 10_000;

/**
 * Deepest nesting a review may have: the API server decodes JSON with Go's limit of
 * 10,000 levels, and the review wraps the object in two more. JSON.parse takes about
 * half a second for the 2,000,000 levels an 8 MiB body can hold.
 */
export const NESTING_LIMIT = 10_010;

/** An object of the review body with more than `limit` members: where it is. */
export interface OversizedObject {
  /** From the body's top: ['request', 'object', 'metadata', 'annotations']. At most PATH_SHOWN tokens. */
  readonly path: DocPath;
  /** The path is deeper than shown. */
  readonly deeper: boolean;
  readonly limit: number;
}

/**
 * What podgate reads off a body's text before parsing it: nesting deeper than any API
 * server sends is refused before JSON.parse pays for it; an object past the member
 * limit is passed on so no rule walks it.
 */
export type BodyScan =
  | { readonly shape: 'ordinary' }
  | { readonly shape: 'tooDeep'; readonly limit: number }
  | { readonly shape: 'oversized'; readonly object: OversizedObject };

const ORDINARY: BodyScan = { shape: 'ordinary' };

/** A member takes at least five characters (`"":0,`). */
const MIN_MEMBER_CHARS = 5;
/** A path in a message stays short, however deep the object sits. */
const PATH_SHOWN = 12;
/** Longest key a path quotes. */
const KEY_SHOWN = 64;

/**
 * One pass over a body's text, before JSON.parse: whether it nests deeper than
 * NESTING_LIMIT (it stops there), and the first object with more than `limit` members.
 * Counting keys in the text costs a fraction of what V8 charges to enumerate them in the
 * parsed object. Duplicate keys count each time (JSON.parse keeps the last; no API
 * server sends them). Text that is not JSON gives some answer and JSON.parse then
 * refuses it; nothing here throws or loops on any input.
 */
export function scanBody(text: string, limit: number = OBJECT_MEMBER_LIMIT): BodyScan {
  if (tooShortToScan(text, limit)) return ORDINARY; // nearly every review: no scanner to make
  const scanner = new BodyScanner(text, limit);
  let scan = scanner.step(text.length);
  while (scan === undefined) scan = scanner.step(text.length);
  return scan;
}

/**
 * scanBody in steps of about `characters` each, so whoever drives it (the server, one step
 * per event-loop turn) is not held for the whole of an 8 MiB body: about 4 ns a character
 * here, 30-55 ms for the densest body. Its answer is scanBody's, however the text is cut.
 *
 * Per nesting level it keeps whether it is an object, where it opens, how many keys it
 * has and where its current key starts and ends; strings are cut, and array indexes
 * counted, only for the path of the one object it reports. The loop runs on local copies
 * of its state, with no call per character: it runs over megabytes (npm run bench, worst
 * cases).
 */
export class BodyScanner {
  readonly #text: string;
  readonly #limit: number;
  #result: BodyScan | undefined;
  #levels: Levels | undefined;
  #oversized: OversizedObject | undefined;
  #index = 0;
  #depth = 0;
  #expectKey = false;
  #strings: StringEnds | undefined;

  constructor(text: string, limit: number = OBJECT_MEMBER_LIMIT) {
    this.#text = text;
    this.#limit = limit;
    if (tooShortToScan(text, limit) || cannotHold(text, limit)) this.#result = ORDINARY;
  }

  /** Scans on for about `characters` more (a string is read to its end); the answer once the text is done. */
  step(characters: number): BodyScan | undefined {
    if (this.#result !== undefined) return this.#result;
    const text = this.#text;
    const limit = this.#limit;
    const levels = (this.#levels ??= new Levels());
    const { objects, counts, keyStarts, keyEnds, opens } = levels;
    const length = text.length;
    const stepEnd = Math.min(length, this.#index + Math.max(1, characters));
    let oversized = this.#oversized;
    let depth = this.#depth;
    let expectKey = this.#expectKey;
    const strings = (this.#strings ??= new StringEnds(text));
    let index = this.#index;
    for (; index < stepEnd; index += 1) {
      const code = text.charCodeAt(index);
      if (code === QUOTE) {
        const start = index + 1;
        const end = strings.end(start);
        if (expectKey && depth > 0) {
          expectKey = false;
          const top = depth - 1;
          keyStarts[top] = start;
          keyEnds[top] = end;
          const count = (counts[top] ?? 0) + 1;
          counts[top] = count;
          if (count === limit + 1) oversized ??= oversizedAt(text, levels, depth, limit);
        }
        index = end;
      } else if (code === COMMA) {
        expectKey = depth > 0 && objects[depth - 1] === 1;
      } else if (code === OPEN_OBJECT || code === OPEN_ARRAY) {
        if (depth === NESTING_LIMIT) return this.#finish({ shape: 'tooDeep', limit: NESTING_LIMIT });
        objects[depth] = code === OPEN_OBJECT ? 1 : 0;
        counts[depth] = 0;
        opens[depth] = index;
        depth += 1;
        expectKey = code === OPEN_OBJECT;
      } else if (code === CLOSE_OBJECT || code === CLOSE_ARRAY) {
        if (depth > 0) depth -= 1;
        expectKey = false;
      }
    }
    if (index >= length) return this.#finish(oversized === undefined ? ORDINARY : { shape: 'oversized', object: oversized });
    this.#oversized = oversized;
    this.#depth = depth;
    this.#expectKey = expectKey;
    this.#index = index;
    return undefined;
  }

  #finish(result: BodyScan): BodyScan {
    this.#result = result;
    this.#levels = undefined; // 170 KB: not kept while the review is parsed and judged
    return result;
  }
}

/** Below this size neither an oversized object nor nesting that costs JSON.parse more than a few milliseconds fits. */
function tooShortToScan(text: string, limit: number): boolean {
  return text.length <= limit * MIN_MEMBER_CHARS;
}

/**
 * Whether the text has too few quotes for more than `limit` keys (each key has two) and
 * too few brackets to nest past the limit: counted with indexOf, which skips what lies
 * between at native speed. A body of a million numbers, or one long string, is then
 * settled without the character loop.
 */
function cannotHold(text: string, limit: number): boolean {
  const opens = occurrences(text, '{', NESTING_LIMIT);
  return occurrences(text, '"', 2 * limit + 2) < 2 * limit + 2 && opens + occurrences(text, '[', NESTING_LIMIT - opens) < NESTING_LIMIT;
}

/** How many times `search` occurs in the text, counting no further than `most`. */
function occurrences(text: string, search: string, most: number): number {
  let count = 0;
  for (let at = text.indexOf(search); at !== -1 && count < most; at = text.indexOf(search, at + 1)) count += 1;
  return count;
}

function oversizedAt(text: string, levels: Levels, depth: number, limit: number): OversizedObject {
  const path: (string | number)[] = [];
  // Level 0 is the body itself; each later one sits under its parent's current key or index.
  const shown = Math.min(depth, PATH_SHOWN + 1);
  for (let level = 0; level < shown - 1; level += 1) {
    const inside = levels.opens[level + 1] ?? 0;
    path.push(levels.objects[level] === 1 ? keyAt(text, levels.keyStarts[level] ?? 0, levels.keyEnds[level] ?? 0) : elementsBefore(text, (levels.opens[level] ?? 0) + 1, inside));
  }
  return { path, deeper: depth > shown, limit };
}

/**
 * The index of the array element that starts at `end`, counting the array's own commas
 * from `start`: arrays keep no count while scanning (a body of 1,900,000 numbers has as
 * many commas), so the few on the reported path are counted here. The ranges counted
 * for one path do not overlap: at most one more pass over the text.
 */
function elementsBefore(text: string, start: number, end: number): number {
  let index = 0;
  let nested = 0;
  for (let at = start; at < end; at += 1) {
    const code = text.charCodeAt(at);
    if (code === QUOTE) at = escapedStringEnd(text, at + 1);
    else if (code === OPEN_OBJECT || code === OPEN_ARRAY) nested += 1;
    else if (code === CLOSE_OBJECT || code === CLOSE_ARRAY) nested -= 1;
    else if (code === COMMA && nested === 0) index += 1;
  }
  return index;
}

function keyAt(text: string, start: number, end: number): string {
  const raw = text.slice(start, Math.min(end, start + KEY_SHOWN * 6));
  let key: string;
  try {
    key = JSON.parse(`"${raw}"`) as string;
  } catch {
    key = raw; // cut inside an escape
  }
  return key.length > KEY_SHOWN ? `${key.slice(0, KEY_SHOWN)}…` : key;
}

/** Per nesting level, up to the limit (about 170 KB in all): whether it is an object, where it opens, its key count, its current key. */
class Levels {
  readonly objects = new Uint8Array(NESTING_LIMIT);
  readonly opens = new Uint32Array(NESTING_LIMIT);
  readonly counts = new Uint32Array(NESTING_LIMIT);
  readonly keyStarts = new Uint32Array(NESTING_LIMIT);
  readonly keyEnds = new Uint32Array(NESTING_LIMIT);
}
