/**
 * Kubernetes resource quantities, parsed by the grammar of
 * k8s.io/apimachinery/pkg/api/resource (quantity.go) and held as exact
 * fractions, so `500m` equals `0.5` and `1Gi` equals `1073741824` with no
 * floating point in between.
 *
 *   <quantity>        ::= <signedNumber><suffix>
 *   <signedNumber>    ::= <number> | <sign><number>
 *   <number>          ::= <digits> | <digits>.<digits> | <digits>. | .<digits>
 *   <suffix>          ::= <binarySI> | <decimalExponent> | <decimalSI>
 *   <binarySI>        ::= Ki | Mi | Gi | Ti | Pi | Ei
 *   <decimalSI>       ::= n | u | m | "" | k | M | G | T | P | E
 *   <decimalExponent> ::= "e" <signedInteger> | "E" <signedInteger>
 *
 * Like the API server, a value finer than a nano-unit is rounded up (away
 * from zero) to the next nano-unit: "if you want some resources, you should
 * get some resources".
 */
export interface Quantity {
  /** As written, for messages. */
  readonly text: string;
  /** The value is numerator / denominator; the denominator is a positive power of ten. */
  readonly numerator: bigint;
  readonly denominator: bigint;
}

const GRAMMAR = /^([+-]?)(\d+(?:\.\d*)?|\.\d+)(?:([eE])([+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$/;
const DECIMAL_EXPONENTS: Readonly<Record<string, number>> = { n: -9, u: -6, m: -3, '': 0, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };
const BINARY_EXPONENTS: Readonly<Record<string, number>> = { Ki: 10, Mi: 20, Gi: 30, Ti: 40, Pi: 50, Ei: 60 };
const NANO = 10n ** 9n;
/** Exponents beyond this are not quantities anyone means, and would make the bigints huge. */
const MAX_EXPONENT = 1000;

/** The quantity, or undefined when Kubernetes would refuse the string. */
export function parseQuantity(text: string): Quantity | undefined {
  const parts = GRAMMAR.exec(text);
  if (parts === null) return undefined;
  const [, sign = '', number = '', exponentMark, exponentDigits, suffix = ''] = parts;
  const [whole = '', fraction = ''] = number.split('.');
  let numerator = BigInt(`${whole}${fraction}` || '0');
  let denominator = 10n ** BigInt(fraction.length);

  const scale = (power: bigint, exponent: number): void => {
    if (exponent >= 0) numerator *= power ** BigInt(exponent);
    else denominator *= power ** BigInt(-exponent);
  };
  if (exponentMark !== undefined) {
    const exponent = Number(exponentDigits);
    if (Math.abs(exponent) > MAX_EXPONENT) return undefined;
    scale(10n, exponent);
  } else if (Object.hasOwn(BINARY_EXPONENTS, suffix)) {
    scale(2n, BINARY_EXPONENTS[suffix] ?? 0);
  } else {
    scale(10n, DECIMAL_EXPONENTS[suffix] ?? 0);
  }
  if (sign === '-') numerator = -numerator;
  return roundUpToNano({ text, numerator, denominator });
}

function roundUpToNano(quantity: Quantity): Quantity {
  const { numerator, denominator } = quantity;
  if (denominator <= NANO) return quantity;
  const divisor = denominator / NANO; // both are powers of ten
  const magnitude = numerator < 0n ? -numerator : numerator;
  const rounded = (magnitude + divisor - 1n) / divisor;
  return { text: quantity.text, numerator: numerator < 0n ? -rounded : rounded, denominator: NANO };
}

/** -1, 0 or 1 as a is less than, equal to or greater than b. */
export function compareQuantities(a: Quantity, b: Quantity): -1 | 0 | 1 {
  const left = a.numerator * b.denominator;
  const right = b.numerator * a.denominator;
  return left < right ? -1 : left > right ? 1 : 0;
}
