import t from 'tap';
import { JsonInSteps } from '../../src/admission/jsonInSteps.ts';
import { randomValue } from '../helpers/random-json.ts';

type Outcome = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly error: unknown };

/** JsonInSteps driven to the end in steps of `sizes` characters, cycling. */
function parseInSteps(text: string, chunk: number, sizes: readonly number[] = [1 << 20]): Outcome {
  const parser = new JsonInSteps(text, chunk);
  try {
    for (let step = 0; ; step += 1) {
      const done = parser.step(sizes[step % sizes.length] ?? 1);
      if (done !== undefined) return { ok: true, value: done.value };
    }
  } catch (error) {
    return { ok: false, error };
  }
}

function nativeParse(text: string): Outcome {
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (error) {
    return { ok: false, error };
  }
}

/** Key order and values, as JSON.stringify writes them. */
const written = (outcome: Outcome) => (outcome.ok ? JSON.stringify(outcome.value) : 'refused');

/** A seeded document written compactly, indented, or with whitespace (JSON's four kinds) around every token. */
function randomText(seed: number): string {
  const value = randomValue(seed);
  if (seed % 3 === 0) return JSON.stringify(value);
  if (seed % 3 === 1) return JSON.stringify(value, null, seed % 2 === 0 ? 2 : '\t');
  return ` \r\n${JSON.stringify(value, null, '\n \t')}\t `;
}

t.test('every random document gives what JSON.parse gives, however small the chunks and steps', async (t) => {
  let differ = 0;
  for (let seed = 1; seed <= 400; seed += 1) {
    const text = randomText(seed);
    const expected = written(nativeParse(text));
    for (const chunk of [1, 4, 32]) {
      if (written(parseInSteps(text, chunk, [1 + (seed % 5), 3, 11])) !== expected) differ += 1;
    }
  }
  t.equal(differ, 0, 'no document parsed differently');
});

t.test('duplicate keys and "__proto__" behave as in JSON.parse, across chunks and built members', async (t) => {
  const text = '{"a":1,"__proto__":{"polluted":true},"b":[1,2,[3]],"a":{"x":[4,5]},"b":2,"0":"zero"}';
  for (const chunk of [1, 2, 1000]) {
    const outcome = parseInSteps(text, chunk, [2]);
    if (!outcome.ok) throw outcome.error;
    const value = outcome.value as Record<string, unknown>;
    t.equal(JSON.stringify(value), JSON.stringify(JSON.parse(text)), `chunk ${chunk}: same keys, order and values`);
    t.equal(Object.getPrototypeOf(value), Object.prototype, `chunk ${chunk}: the prototype is untouched`);
    t.ok(Object.hasOwn(value, '__proto__'), `chunk ${chunk}: "__proto__" is an own member`);
    t.equal(({} as Record<string, unknown>)['polluted'], undefined, 'nothing reaches Object.prototype');
  }
});

/** One random edit of a text: a character removed, doubled, or one of JSON's structural characters (or a stray one) put in. */
function mutate(text: string, seed: number): string {
  const at = (seed * 7919) % Math.max(1, text.length);
  const inserts = [',', ':', '[', ']', '{', '}', '"', ' ', '1', 'a', '\\', '\u00a0'];
  switch (seed % 3) {
    case 0: return text.slice(0, at) + text.slice(at + 1);
    case 1: return text.slice(0, at) + text.slice(at, at + 1) + text.slice(at);
    default: return text.slice(0, at) + (inserts[seed % inserts.length] ?? ',') + text.slice(at);
  }
}

t.test('a broken document is refused exactly when JSON.parse refuses it, with a SyntaxError', async (t) => {
  let disagree = 0;
  let refused = 0;
  let notSyntaxErrors = 0;
  const extras = ['', ' ', '[', ']', '{}', '[1,]', '[,1]', '{"a":1,}', '{"a" 1}', '{,"a":1}', '[1 2]', '1,2', '[[1] [2]]', '{"a":[1] "b":2}', '{"a"}', '{1:2}', '[1]]', '[[1]', '"a', '[{"a":1}, ]', '{"a":[0]x}'];
  const cases = [...extras, ...Array.from({ length: 1200 }, (_, i) => mutate(randomText(1 + (i % 400)), i + 1))];
  for (const text of cases) {
    const native = nativeParse(text);
    for (const chunk of [1, 3]) {
      const stepped = parseInSteps(text, chunk, [2, 5]);
      if (written(stepped) !== written(native)) {
        disagree += 1;
        if (disagree <= 3) t.fail(`${JSON.stringify(text.slice(0, 120))}: JSON.parse ${written(native).slice(0, 60)}, in steps ${written(stepped).slice(0, 60)}`);
      }
      if (!stepped.ok && !(stepped.error instanceof SyntaxError)) notSyntaxErrors += 1;
    }
    if (!native.ok) refused += 1;
  }
  t.equal(disagree, 0, 'no text is judged differently');
  t.equal(notSyntaxErrors, 0, 'every refusal is a SyntaxError');
  t.ok(refused > 400, `${refused} of ${cases.length} texts are not JSON`);
});

t.test('no JSON.parse call of a dense document reads much more than a chunk', async (t) => {
  const containers = Array.from({ length: 30_000 }, (_, i) => ({ name: `c-${i}`, image: 'busybox', resources: { requests: { cpu: '1m' } } }));
  const labels = Object.fromEntries(Array.from({ length: 50_000 }, (_, i) => [`k${i}.example.com/l`, `v${i}`]));
  const text = JSON.stringify({ request: { object: { metadata: { labels }, spec: { containers } } } });
  const chunk = 1 << 16;
  const native = JSON.parse;
  const lengths: number[] = [];
  JSON.parse = (input: string, reviver?: Parameters<typeof JSON.parse>[1]) => {
    lengths.push(input.length);
    return native(input, reviver) as unknown;
  };
  let outcome: Outcome;
  try {
    outcome = parseInSteps(text, chunk, [1 << 18]);
  } finally {
    JSON.parse = native;
  }
  t.equal(written(outcome), text, 'the document, whole');
  t.ok(text.length > 40 * chunk, `${text.length} characters`);
  t.ok(Math.max(...lengths) < 2 * chunk, `the longest of ${lengths.length} JSON.parse calls read ${Math.max(...lengths)} characters`);
});

t.test('a long string is one member: parsed whole, wherever the chunks fall', async (t) => {
  const text = JSON.stringify({ a: ['x'.repeat(5000), { b: 'y\\"'.repeat(2000) }], c: 'z' });
  t.equal(written(parseInSteps(text, 64, [100])), text);
});
