import { CLOSE_ARRAY, CLOSE_OBJECT, COLON, COMMA, OPEN_ARRAY, OPEN_OBJECT, QUOTE, StringEnds } from './jsonText.ts';
import { NESTING_LIMIT } from './oversized.ts';
import { countOf } from '../lib/format.ts';

/**
 * JSON.parse in steps, for the few request bodies over 512 KiB: one JSON.parse of the
 * densest 8 MiB body holds the event loop 40-80 ms here, and every other review waits
 * behind it. The value is the one JSON.parse gives, built the same way: the text is
 * walked for its structure only, and every run of members up to `chunk` characters is
 * still parsed by JSON.parse (native, and the authority on what JSON is). Only a
 * container larger than `chunk` is built here, member run by member run.
 *
 * So no step costs more than its share of the scan plus one chunk's JSON.parse (and one
 * string, parsed whole: 7.5 MB of plain text in 11 ms). Text JSON.parse refuses is
 * refused here too, with a SyntaxError whose position is the body's.
 */
export class JsonInSteps {
  readonly #text: string;
  readonly #chunk: number;
  /** Per nesting level: 1 for an object; where it opens; where its current member starts; its current key. Level 0 is the body. */
  readonly #objects: number[] = [0];
  readonly #opens: number[] = [-1];
  readonly #memberStarts: number[] = [0];
  readonly #keyStarts: number[] = [-1];
  readonly #keyEnds: number[] = [-1];
  /** The levels built here, outermost first: always levels 0 … frames.length - 1. The body's is an array holding the one value. */
  readonly #frames: Frame[] = [newFrame(false, undefined, 0)];
  readonly #strings: StringEnds;
  #index = 0;
  #depth = 1;
  #expectKey = false;
  #done: { readonly value: unknown } | undefined;

  constructor(text: string, chunk: number = PARSE_CHUNK_CHARS) {
    this.#text = text;
    this.#chunk = Math.max(1, chunk);
    this.#strings = new StringEnds(text);
  }

  /** Reads on for about `characters` more; the value once the text is done. Throws a SyntaxError for text that is not JSON. */
  step(characters: number): { readonly value: unknown } | undefined {
    if (this.#done !== undefined) return this.#done;
    const text = this.#text;
    const length = text.length;
    const stepEnd = Math.min(length, this.#index + Math.max(1, characters));
    let index = this.#index;
    for (; index < stepEnd; index += 1) {
      const code = text.charCodeAt(index);
      if (code === QUOTE) index = this.#string(index);
      else if (code === COMMA) this.#comma(index);
      else if (code === OPEN_OBJECT || code === OPEN_ARRAY) this.#open(index, code === OPEN_OBJECT);
      else if (code === CLOSE_OBJECT || code === CLOSE_ARRAY) this.#close(index, code === CLOSE_OBJECT);
    }
    this.#index = index;
    if (index < length) return undefined;
    return (this.#done = { value: this.#end() });
  }

  #string(quote: number): number {
    const end = this.#strings.end(quote + 1);
    if (this.#expectKey) {
      const top = this.#depth - 1;
      this.#keyStarts[top] = quote;
      this.#keyEnds[top] = end;
      this.#expectKey = false;
    }
    return end;
  }

  #comma(at: number): void {
    const top = this.#depth - 1;
    this.#memberStarts[top] = at + 1;
    this.#expectKey = this.#objects[top] === 1;
    if (top === this.#frames.length - 1) this.#frameComma(this.#topFrame(), at);
    else this.#promoteIfLarge(at);
  }

  #open(at: number, object: boolean): void {
    const level = this.#depth;
    if (level > NESTING_LIMIT) throw new SyntaxError(`JSON nests deeper than ${NESTING_LIMIT} levels at position ${at}`);
    this.#objects[level] = object ? 1 : 0;
    this.#opens[level] = at;
    this.#memberStarts[level] = at + 1;
    this.#keyStarts[level] = -1;
    this.#depth = level + 1;
    this.#expectKey = object;
    this.#promoteIfLarge(at);
  }

  #close(at: number, object: boolean): void {
    const top = this.#depth - 1;
    if (top === 0 || (this.#objects[top] === 1) !== object) throw new SyntaxError(`Unexpected '${object ? '}' : ']'}' in JSON at position ${at}`);
    this.#depth = top;
    this.#expectKey = false;
    if (top !== this.#frames.length - 1) return; // a small member: parsed with the run that holds it
    const frame = this.#topFrame();
    this.#finishRun(frame, at);
    this.#frames.pop();
    const parent = this.#topFrame();
    // Attached once whole: the parent's members after it are parsed only from here on, so the order is the text's.
    attach(parent, frame.key, valueOf(frame));
    parent.afterChild = true;
    parent.runStart = at + 1;
  }

  /** Once the unparsed text of the innermost built level passes a chunk, every level open inside it is built too. */
  #promoteIfLarge(at: number): void {
    if (at - this.#topFrame().runStart < this.#chunk) return;
    for (let level = this.#frames.length; level < this.#depth; level += 1) this.#build(level);
  }

  /** Makes level `level` (open, inside the innermost built one) a built container: what precedes it is parsed, and it is attached. */
  #build(level: number): void {
    const text = this.#text;
    const parent = this.#topFrame();
    const memberStart = this.#memberStarts[level - 1] ?? 0;
    const open = this.#opens[level] ?? 0;
    // A member after a built one with no ',' between: the whitespace check from memberStart (still before the built one) refuses it.
    if (memberStart > parent.runStart) this.#parseRun(parent, parent.runStart, memberStart - 1, false);
    let key: string | undefined;
    if (parent.kind === 'array') {
      expectWhitespace(text, memberStart, open);
    } else {
      const keyStart = this.#keyStarts[level - 1] ?? -1;
      const keyEnd = this.#keyEnds[level - 1] ?? -1;
      if (keyStart < memberStart) throw new SyntaxError(`Expected a property name in JSON at position ${open}`);
      expectWhitespace(text, memberStart, keyStart);
      expectColon(text, keyEnd + 1, open);
      key = parseKey(text, keyStart, keyEnd);
    }
    this.#frames.push(newFrame(this.#objects[level] === 1, key, open + 1));
  }

  #frameComma(frame: Frame, at: number): void {
    frame.sawComma = true;
    if (frame.afterChild) {
      expectWhitespace(this.#text, frame.runStart, at);
      frame.afterChild = false;
      frame.runStart = at + 1;
    } else if (at - frame.runStart >= this.#chunk) {
      this.#parseRun(frame, frame.runStart, at, false);
      frame.runStart = at + 1;
    }
  }

  /** The members left when a built container closes at `end` (or the text ends). */
  #finishRun(frame: Frame, end: number): void {
    if (frame.afterChild) expectWhitespace(this.#text, frame.runStart, end);
    else if (this.#parseRun(frame, frame.runStart, end, true) === 0 && frame.sawComma) throw new SyntaxError(`Unexpected '${this.#text[end] ?? 'end'}' after ',' in JSON at position ${end}`);
  }

  /** Parses the members in [from, to) into the frame; how many it held. Outside a container's last run, there is at least one. */
  #parseRun(frame: Frame, from: number, to: number, last: boolean): number {
    const object = frame.kind === 'object';
    let parsed: unknown;
    try {
      parsed = JSON.parse(`${object ? '{' : '['}${this.#text.slice(from, to)}${object ? '}' : ']'}`);
    } catch (error) {
      throw new SyntaxError(atBodyPosition(error, from - 1), { cause: error });
    }
    const count = append(frame, parsed);
    if (count === 0 && !last) throw new SyntaxError(`Unexpected ',' in JSON at position ${to}`);
    return count;
  }

  #end(): unknown {
    if (this.#depth > 1) throw new SyntaxError(`Unterminated JSON: ${countOf(this.#depth - 1, 'level')} left open at the end`);
    const body = this.#frames[0] as Frame;
    this.#finishRun(body, this.#text.length); // a ',' at the top leaves more than one value
    const values = valueOf(body) as unknown[];
    if (values.length !== 1) throw new SyntaxError(values.length === 0 ? 'Unexpected end of JSON input' : 'Unexpected non-whitespace character after JSON');
    return values[0];
  }

  #topFrame(): Frame {
    return this.#frames[this.#frames.length - 1] as Frame;
  }
}

/** Characters per JSON.parse of one run of members. */
export const PARSE_CHUNK_CHARS = 1 << 18;

/** A container built here, and how far its text is parsed. */
type Frame = ArrayFrame | ObjectFrame;

interface FrameProgress {
  /** Its key in the parent, if the parent is an object. */
  readonly key: string | undefined;
  /** Where the members not parsed yet start. */
  runStart: number;
  /** A built member ended at runStart: only whitespace may come before the next ',' or the close. */
  afterChild: boolean;
  sawComma: boolean;
}

/** Its elements as parsed, run by run (a built member is a part of its own), joined when it closes: a push per element costs twice the parse. */
interface ArrayFrame extends FrameProgress {
  readonly kind: 'array';
  readonly parts: unknown[][];
}

interface ObjectFrame extends FrameProgress {
  readonly kind: 'object';
  readonly value: Record<string, unknown>;
}

function newFrame(object: boolean, key: string | undefined, runStart: number): Frame {
  const progress = { key, runStart, afterChild: false, sawComma: false };
  return object ? { kind: 'object', value: {}, ...progress } : { kind: 'array', parts: [], ...progress };
}

function valueOf(frame: Frame): unknown[] | Record<string, unknown> {
  switch (frame.kind) {
    case 'array': return ([] as unknown[]).concat(...frame.parts); // native and fast, unlike flat(); parts are few: about two per chunk of text
    case 'object': return frame.value;
  }
}

function parseKey(text: string, quote: number, closingQuote: number): string {
  try {
    return JSON.parse(text.slice(quote, closingQuote + 1)) as string;
  } catch (error) {
    throw new SyntaxError(atBodyPosition(error, quote), { cause: error });
  }
}

function attach(parent: Frame, key: string | undefined, value: unknown): void {
  switch (parent.kind) {
    case 'array': parent.parts.push([value]); return;
    case 'object': setMember(parent.value, key ?? '', value);
  }
}

/** Moves what one run parsed into the frame, in order; how many members it held. */
function append(frame: Frame, parsed: unknown): number {
  switch (frame.kind) {
    case 'array': {
      const values = parsed as unknown[];
      if (values.length > 0) frame.parts.push(values);
      return values.length;
    }
    case 'object': {
      const members = parsed as Record<string, unknown>;
      const keys = Object.keys(members);
      for (const key of keys) setMember(frame.value, key, members[key]);
      return keys.length;
    }
  }
}

/** As JSON.parse sets a member: a later duplicate replaces the value in place, and "__proto__" is a key like any other. */
function setMember(object: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(object, key, { value, writable: true, enumerable: true, configurable: true });
  else object[key] = value;
}

function expectWhitespace(text: string, from: number, to: number): void {
  for (let at = from; at < to; at += 1) {
    if (!isWhitespace(text.charCodeAt(at))) throw new SyntaxError(`Unexpected '${text[at] ?? ''}' in JSON at position ${at}`);
  }
}

function expectColon(text: string, from: number, to: number): void {
  let at = from;
  while (at < to && isWhitespace(text.charCodeAt(at))) at += 1;
  if (at >= to || text.charCodeAt(at) !== COLON) throw new SyntaxError(`Expected ':' after property name in JSON at position ${at}`);
  expectWhitespace(text, at + 1, to);
}

/** JSON's whitespace: space, tab, line feed, carriage return (not JavaScript's \s). */
function isWhitespace(code: number): boolean {
  return code === 0x20 || code === 0x09 || code === 0x0a || code === 0x0d;
}

/** JSON.parse's message for a run, with its position moved to the body's (the run was parsed from `offset` on). */
function atBodyPosition(error: unknown, offset: number): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/ at position (\d+)(?: \(line \d+ column \d+\))?/, (_match, position: string) => ` at position ${offset + Number(position)}`);
}
