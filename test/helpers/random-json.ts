/** A seeded generator of JSON values: nested objects and arrays, strings with quotes, escapes and non-ASCII. */
export function randomValue(seed: number): unknown {
  let state = seed;
  const next = () => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state / 2147483648;
  };
  const pieces = ['a', '"', '\\', '{', '}', '[', ']', ',', ':', 'é', '\u2028', '😀', 'x'.repeat(40)];
  // Keys stay under the 64 characters a reported path quotes whole; values may be long.
  const text = (kinds = pieces.length) => Array.from({ length: Math.floor(next() * 6) }, () => pieces[Math.floor(next() * kinds)] ?? '').join('');
  const make = (depth: number): unknown => {
    const roll = next();
    if (depth > 5 || roll < 0.3) return roll < 0.15 ? text() : Math.floor(next() * 100);
    if (roll < 0.6) return Array.from({ length: Math.floor(next() * 5) }, () => make(depth + 1));
    const size = Math.floor(next() * 7);
    return Object.fromEntries(Array.from({ length: size }, (_, i) => [`${text(pieces.length - 1)}${i}`, make(depth + 1)]));
  };
  return make(0);
}
