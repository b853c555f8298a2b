/**
 * Where each string of a text ends. A short string is read a character at a time; a
 * longer one's closing quote is found with indexOf (native), checked against the next
 * backslash, itself searched for again only once passed (so many long strings do not
 * each search the rest of the text for one).
 */
export class StringEnds {
  readonly #text: string;
  #nextBackslash = -1;

  constructor(text: string) {
    this.#text = text;
  }

  /** The closing quote of the string whose content starts at `start` (the text's length if it has none). */
  end(start: number): number {
    const text = this.#text;
    const length = text.length;
    const stop = Math.min(length, start + SHORT_STRING);
    let end = start;
    for (; end < stop; end += 1) {
      const code = text.charCodeAt(end);
      if (code === QUOTE) return end;
      if (code === BACKSLASH) return escapedStringEnd(text, end);
    }
    if (end === length) return length;
    if (this.#nextBackslash < end) this.#nextBackslash = indexOrEnd(text, '\\', end);
    const quote = indexOrEnd(text, '"', end);
    return this.#nextBackslash < quote ? escapedStringEnd(text, this.#nextBackslash) : quote;
  }
}

/** Strings up to this long are read a character at a time; longer ones with indexOf. */
const SHORT_STRING = 32;

/** The closing quote of a string, read a character at a time from `from` inside it (the text's length if none). */
export function escapedStringEnd(text: string, from: number): number {
  let at = from;
  while (at < text.length) {
    const code = text.charCodeAt(at);
    if (code === QUOTE) return at;
    at += code === BACKSLASH ? 2 : 1;
  }
  return text.length;
}

function indexOrEnd(text: string, search: string, from: number): number {
  const found = text.indexOf(search, from);
  return found === -1 ? text.length : found;
}

/** The characters of JSON's structure, as charCodeAt gives them. */
export const QUOTE = 0x22;
export const BACKSLASH = 0x5c;
export const OPEN_OBJECT = 0x7b;
export const CLOSE_OBJECT = 0x7d;
export const OPEN_ARRAY = 0x5b;
export const CLOSE_ARRAY = 0x5d;
export const COMMA = 0x2c;
export const COLON = 0x3a;
