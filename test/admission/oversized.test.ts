import t from 'tap';
import { BodyScanner, NESTING_LIMIT, OBJECT_MEMBER_LIMIT, scanBody, type BodyScan } from '../../src/admission/oversized.ts';
import { isRecord } from '../../src/lib/json.ts';
import { randomValue } from '../helpers/random-json.ts';

const entries = (count: number, make: (i: number) => [string, unknown] = (i) => [`k${i}`, 'v']) => Object.fromEntries(Array.from({ length: count }, (_, i) => make(i)));
const pathOf = (scan: BodyScan) => (scan.shape === 'oversized' ? scan.object.path : undefined);

t.test('finds the first object past the limit and names where it is, array indexes included', async (t) => {
  const body = JSON.stringify({ request: { object: { spec: { containers: [{ name: 'a' }, { name: 'b', resources: { limits: entries(4) } }] } } } });
  t.same(pathOf(scanBody(body, 3)), ['request', 'object', 'spec', 'containers', 1, 'resources', 'limits']);
  t.same(scanBody(body, 4), { shape: 'ordinary' }, 'exactly the limit is not past it');
});

t.test('strings cannot fool it: quotes, backslashes and braces inside keys and values, short and long', async (t) => {
  const tricky = (i: number): [string, unknown] => [`k"${i}\\`, `{"x":${'\\'.repeat(i % 3)}"}[`.repeat(1 + (i % 20))];
  const body = JSON.stringify({ a: { 'a "b" \\': entries(3, tricky) }, 'c{': { '}"': entries(4, tricky) } });
  t.same(pathOf(scanBody(body, 3)), ['c{', '}"']);
  t.same(scanBody(body, 4), { shape: 'ordinary' });
});

t.test('duplicate keys count each time; a body too short to hold an oversized object is not scanned', async (t) => {
  t.same(pathOf(scanBody('{"m":{"a":1,"a":1,"a":1,"a":1}}', 3)), ['m']);
  t.same(scanBody(JSON.stringify({ m: entries(OBJECT_MEMBER_LIMIT) })), { shape: 'ordinary' });
  t.same(pathOf(scanBody(JSON.stringify({ m: entries(OBJECT_MEMBER_LIMIT + 1) }))), ['m']);
});

t.test('nesting past the limit is refused before it is parsed, wherever the body hides it', async (t) => {
  const padding = 'x'.repeat(OBJECT_MEMBER_LIMIT * 5);
  const nested = (levels: number) => `{"pad":"${padding}","deep":${'['.repeat(levels - 1)}${']'.repeat(levels - 1)}}`;
  t.same(scanBody(nested(NESTING_LIMIT)), { shape: 'ordinary' });
  t.same(scanBody(nested(NESTING_LIMIT + 1)), { shape: 'tooDeep', limit: NESTING_LIMIT });
  const afterOversized = `{"m":${JSON.stringify(entries(OBJECT_MEMBER_LIMIT + 1))},"deep":${'['.repeat(NESTING_LIMIT)}${']'.repeat(NESTING_LIMIT)}}`;
  t.equal(scanBody(afterOversized).shape, 'tooDeep', 'an oversized object does not end the scan');
});

t.test('the path it reports stays short however deep and long the keys', async (t) => {
  let value: unknown = entries(4);
  for (let level = 0; level < 40; level += 1) value = { ['k'.repeat(500)]: value };
  const scan = scanBody(JSON.stringify(value), 3);
  if (scan.shape !== 'oversized') throw new Error(`expected oversized, got ${scan.shape}`);
  t.equal(scan.object.path.length, 12);
  t.equal(scan.object.deeper, true);
  t.ok(scan.object.path.every((key) => typeof key === 'string' && key.length <= 65), 'keys cut to 64 characters and an ellipsis');
});

t.test('text that is not JSON gets an answer, never an exception or a hang', async (t) => {
  for (const text of ['"unterminated \\', '}}}]]]', '{"a":' + '"\\'.repeat(100), '[' + ',"'.repeat(100), '{"a\\u00'.repeat(50)]) {
    t.doesNotThrow(() => scanBody(text, 1), JSON.stringify(text.slice(0, 20)));
  }
});

function follow(value: unknown, path: readonly (string | number)[]): unknown {
  let current = value;
  for (const key of path) current = Array.isArray(current) && typeof key === 'number' ? current[key] : isRecord(current) && typeof key === 'string' ? current[key] : undefined;
  return current;
}

function largestObject(value: unknown): number {
  if (Array.isArray(value)) return Math.max(0, ...value.map(largestObject));
  if (!isRecord(value)) return 0;
  return Math.max(Object.keys(value).length, ...Object.values(value).map(largestObject));
}

t.test('on random documents it finds an oversized object exactly when there is one, and its path leads to it', async (t) => {
  let oversized = 0;
  for (let seed = 1; seed <= 400; seed += 1) {
    const value = randomValue(seed);
    const text = JSON.stringify(value);
    const limit = 3;
    const scan = scanBody(text, limit);
    const expected = largestObject(value) > limit;
    if ((scan.shape === 'oversized') !== expected) t.fail(`seed ${seed}: scan says ${scan.shape}, the largest object has ${largestObject(value)} members`);
    if (scan.shape === 'oversized') {
      oversized += 1;
      const found = follow(value, scan.object.path);
      if (!isRecord(found) || Object.keys(found).length <= limit) t.fail(`seed ${seed}: the path ${JSON.stringify(scan.object.path)} does not lead to an object past the limit`);
    }
  }
  t.ok(oversized > 20, `${oversized} of 400 documents had an oversized object`);
});

/** BodyScanner driven in steps of `sizes` characters, cycling; how many steps it took. */
function scanInSteps(text: string, limit: number, sizes: readonly number[]): { scan: BodyScan; steps: number } {
  const scanner = new BodyScanner(text, limit);
  for (let steps = 1; ; steps += 1) {
    const scan = scanner.step(sizes[steps % sizes.length] ?? 1);
    if (scan !== undefined) return { scan, steps };
  }
}

t.test('scanned in steps, however small and wherever they cut (inside strings, escapes, keys), the answer is the one-pass answer', async (t) => {
  let differ = 0;
  let cut = 0;
  for (let seed = 1; seed <= 400; seed += 1) {
    const text = JSON.stringify(randomValue(seed));
    const { scan, steps } = scanInSteps(text, 3, [1 + (seed % 7), 1, 13, 2]);
    if (steps > 1) cut += 1;
    if (JSON.stringify(scan) !== JSON.stringify(scanBody(text, 3))) differ += 1;
  }
  t.equal(differ, 0, 'no document scanned differently in steps');
  t.ok(cut > 100, `${cut} of 400 documents took more than one step (the rest are settled before the loop: too short, or too few quotes)`);

  const padding = 'x'.repeat(OBJECT_MEMBER_LIMIT * 5);
  const deep = `{"pad":"${padding}","m":${JSON.stringify(entries(OBJECT_MEMBER_LIMIT + 1))},"deep":${'['.repeat(NESTING_LIMIT)}${']'.repeat(NESTING_LIMIT)}}`;
  const stepped = scanInSteps(deep, OBJECT_MEMBER_LIMIT, [1000]);
  t.same(stepped.scan, { shape: 'tooDeep', limit: NESTING_LIMIT }, 'nesting found across steps, after an oversized object');
  t.ok(stepped.steps > 50, `${stepped.steps} steps of 1,000 characters (a string is read whole)`);
  const oversized = scanInSteps(`{"a":{"b":${JSON.stringify(entries(OBJECT_MEMBER_LIMIT + 1))}}}`, OBJECT_MEMBER_LIMIT, [997]);
  t.same(oversized.scan.shape === 'oversized' ? oversized.scan.object.path : oversized.scan.shape, ['a', 'b']);
});

t.test('a scanner that has answered keeps answering the same, without scanning again', async (t) => {
  const scanner = new BodyScanner(`{"m":${JSON.stringify(entries(OBJECT_MEMBER_LIMIT + 1))}}`);
  let first = scanner.step(100);
  while (first === undefined) first = scanner.step(100_000);
  t.equal(scanner.step(1), first, 'the same answer object');
  t.same(new BodyScanner('{"short":1}').step(1), { shape: 'ordinary' }, 'a body too short to hold an oversized object answers at the first step');
});
