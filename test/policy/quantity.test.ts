import t from 'tap';
import { compareQuantities, parseQuantity, type Quantity } from '../../src/policy/quantity.ts';

/** The exact value as a fraction numerator / denominator (for values of a sane size). */
const fraction = (q: Quantity): [bigint, bigint] => (q.exponent >= 0 ? [q.mantissa * 10n ** BigInt(q.exponent), 1n] : [q.mantissa, 10n ** BigInt(-q.exponent)]);

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
  ['8Ei', 9223372036854775807n, 1n], // 2^63: above what Kubernetes keeps for a binary suffix, capped to 2^63 - 1
  ['9Ei', 9223372036854775807n, 1n],
  ['7.5Ei', 8646911284551352320n, 1n], // under the cap: exact
  ['-9Ei', -9223372036854775807n, 1n],
  ['9E', 9n * 10n ** 18n, 1n], // a decimal suffix is not capped
  ['1e-12', 1n, 1000000000n],
];

const invalid = ['', ' ', '1 Gi', ' 1', '1 ', '1GI', '1gi', 'Mi', 'm', '.', '1.1.1', '1e', '1e1.5', '1K', '1Kb', '2 cores', '0x10', 'one', '--1', '+-1', '1i', '.5i', '1E-', '1e2147483648', '1e-2147483648', `1e${'9'.repeat(400)}`];

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
    const [top, bottom] = fraction(q);
    const divisor = gcd(top, bottom) || 1n;
    t.same([top / divisor, bottom / divisor], [numerator, denominator], text);
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

t.test('an exponent anywhere in the int32 range, as Kubernetes takes it, costs next to nothing', async (t) => {
  const huge = parseQuantity('1e2147483647');
  const tiny = parseQuantity('1e-2147483647');
  const small = parseQuantity('5n');
  if (huge === undefined || tiny === undefined || small === undefined) throw new Error('should parse');
  t.same([huge.mantissa, huge.exponent], [1n, 2147483647], 'kept as mantissa and exponent, not multiplied out');
  t.same([tiny.mantissa, tiny.exponent], [1n, -9], 'a value under a nano-unit rounds up to one');
  t.equal(compareQuantities(huge, small), 1);
  t.equal(compareQuantities(tiny, small), -1);
  t.equal(compareQuantities(parseQuantity('10e2147483646') ?? huge, huge), 0, 'the same value written two ways');
  t.equal(compareQuantities(parseQuantity('-1e2147483647') ?? huge, tiny), -1);
  t.equal(compareQuantities(parseQuantity('12e-1') ?? huge, parseQuantity('1200m') ?? huge), 0);
});
