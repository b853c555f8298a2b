import t from 'tap';
import { compareQuantities, parseQuantity } from '../../src/policy/quantity.ts';

/** [text, numerator, denominator] after reduction: the exact value. */
const valid: [string, bigint, bigint][] = [
  ['0', 0n, 1n],
  ['1', 1n, 1n],
  ['500m', 1n, 2n],
  ['0.5', 1n, 2n],
  ['.5', 1n, 2n],
  ['1.', 1n, 1n],
  ['+2', 2n, 1n],
  ['-1', -1n, 1n],
  ['-1.5Gi', -1610612736n, 1n],
  ['1Gi', 1073741824n, 1n],
  ['1.5Gi', 1610612736n, 1n],
  ['4Gi', 4294967296n, 1n],
  ['1Ki', 1024n, 1n],
  ['1Mi', 1048576n, 1n],
  ['1Ti', 1099511627776n, 1n],
  ['1Pi', 1125899906842624n, 1n],
  ['1Ei', 1152921504606846976n, 1n],
  ['1k', 1000n, 1n],
  ['1M', 1000000n, 1n],
  ['1G', 1000000000n, 1n],
  ['1T', 10n ** 12n, 1n],
  ['1P', 10n ** 15n, 1n],
  ['1E', 10n ** 18n, 1n],
  ['1e3', 1000n, 1n],
  ['1E3', 1000n, 1n],
  ['1e+3', 1000n, 1n],
  ['1e-3', 1n, 1000n],
  ['2.5e2', 250n, 1n],
  ['100u', 1n, 10000n],
  ['5n', 1n, 200000000n],
  ['0.1n', 1n, 1000000000n], // finer than a nano-unit: rounded up, as the API server does
  ['-0.1n', -1n, 1000000000n],
  ['007', 7n, 1n],
  ['12345678901234567890', 12345678901234567890n, 1n],
];

const invalid = ['', ' ', '1 Gi', ' 1', '1 ', '1GI', '1gi', 'Mi', 'm', '.', '1.1.1', '1e', '1e1.5', '1K', '1Kb', '2 cores', '0x10', 'one', '--1', '+-1', '1i', '.5i', '1E-', '1e1000001'];

function gcd(a: bigint, b: bigint): bigint {
  let [x, y] = [a < 0n ? -a : a, b];
  while (y !== 0n) [x, y] = [y, x % y];
  return x;
}

t.test('valid quantities and their exact values', async (t) => {
  for (const [text, numerator, denominator] of valid) {
    const q = parseQuantity(text);
    if (q === undefined) {
      t.fail(`${text} should parse`);
      continue;
    }
    const divisor = gcd(q.numerator, q.denominator) || 1n;
    t.same([q.numerator / divisor, q.denominator / divisor], [numerator, denominator], text);
    t.equal(q.text, text);
  }
});

t.test('what Kubernetes rejects, podgate rejects', async (t) => {
  for (const text of invalid) t.equal(parseQuantity(text), undefined, JSON.stringify(text));
});

t.test('comparison is exact across notations', async (t) => {
  const q = (text: string) => parseQuantity(text) ?? t.fail(text);
  const cases: [string, string, -1 | 0 | 1][] = [
    ['500m', '0.5', 0],
    ['1Gi', '1073741824', 0],
    ['1Gi', '1G', 1],
    ['1000M', '1G', 0],
    ['3999Mi', '4Gi', -1],
    ['4096Mi', '4Gi', 0],
    ['1999m', '2', -1],
    ['1e3', '1k', 0],
    ['-1', '0', -1],
    ['0.000000001', '1n', 0],
  ];
  for (const [a, b, expected] of cases) {
    const [left, right] = [q(a), q(b)];
    if (typeof left === 'object' && typeof right === 'object') t.equal(compareQuantities(left, right), expected, `${a} vs ${b}`);
  }
});
