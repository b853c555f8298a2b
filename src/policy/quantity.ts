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
 * from zero) to the next nano-unit, and a binary-suffixed value above 2^63 - 1
 * is capped to it.
 */
export interface Quantity {
  /** As written, for messages. */
  readonly text: string;
  /**
   * The value is mantissa × 10^exponent, exactly. An exponent is kept as a number, not
   * multiplied out: Kubernetes takes any int32 exponent (`1e2000000000`), and a bigint of
   * two billion digits would take the event loop with it.
   */
  readonly mantissa: bigint;
  readonly exponent: number;
}

const GRAMMAR = /^([+-]?)(\d+(?:\.\d*)?|\.\d+)(?:([eE])([+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$/;
const DECIMAL_EXPONENTS: Readonly<Record<string, number>> = { n: -9, u: -6, m: -3, '': 0, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };
const BINARY_EXPONENTS: Readonly<Record<string, number>> = { Ki: 10, Mi: 20, Gi: 30, Ti: 40, Pi: 50, Ei: 60 };
/** Kubernetes parses the exponent of `1e<n>` as an int32. */
const MAX_EXPONENT = 2 ** 31 - 1;
/** The largest binary-suffixed value Kubernetes keeps; larger ones are capped to it (`9Ei` is 2^63 - 1). */
const MAX_BINARY = 2n ** 63n - 1n;
const NANO_EXPONENT = -9;

/** The quantity, or undefined when Kubernetes would refuse the string. */
export function parseQuantity(text: string): Quantity | undefined {
  const parts = GRAMMAR.exec(text);
  if (parts === null) return undefined;
  const [, sign = '', number = '', exponentMark, exponentDigits = '', suffix = ''] = parts;
  const [whole = '', fraction = ''] = number.split('.');
  let mantissa = BigInt(`${whole}${fraction}` || '0');
  let exponent = -fraction.length;
  if (exponentMark !== undefined) {
    const written = Number(exponentDigits);
    if (!Number.isSafeInteger(written) || Math.abs(written) > MAX_EXPONENT) return undefined;
    exponent += written;
  } else if (Object.hasOwn(BINARY_EXPONENTS, suffix)) {
    mantissa *= 2n ** BigInt(BINARY_EXPONENTS[suffix] ?? 0);
    if (exceeds(mantissa, exponent, MAX_BINARY)) [mantissa, exponent] = [MAX_BINARY, 0];
  } else {
    exponent += DECIMAL_EXPONENTS[suffix] ?? 0;
  }
  if (sign === '-') mantissa = -mantissa;
  return roundUpToNano({ text, mantissa, exponent });
}

/** Whether mantissa × 10^exponent (exponent ≤ 0, from a fraction) is above `limit`. */
function exceeds(mantissa: bigint, exponent: number, limit: bigint): boolean {
  return mantissa > limit * 10n ** BigInt(-exponent);
}

/**
 * Like the API server, a non-zero value finer than a nano-unit is rounded up (away from zero)
 * to the next nano-unit: "if you want some resources, you should get some resources".
 */
function roundUpToNano(quantity: Quantity): Quantity {
  return roundUpTo(quantity, NANO_EXPONENT);
}

/**
 * CPU as the API server stores it: no finer than a milli-CPU, rounded up (`0.1m` is kept
 * as `1m`). Pods and templates arrive in a review already rounded so; objects read from
 * files (podgate review) are rounded here to be judged alike.
 */
export function roundUpToMilli(quantity: Quantity): Quantity {
  return roundUpTo(quantity, -3);
}

/** The value rounded up (away from zero) to a multiple of 10^unit. */
function roundUpTo(quantity: Quantity, unit: number): Quantity {
  const { mantissa, exponent } = quantity;
  if (exponent >= unit || mantissa === 0n) return quantity;
  const magnitude = mantissa < 0n ? -mantissa : mantissa;
  const shift = unit - exponent;
  // A value under one unit (its digits all below it) becomes exactly one, without dividing by a huge power of ten.
  const rounded = shift > magnitude.toString().length ? 1n : (magnitude + 10n ** BigInt(shift) - 1n) / 10n ** BigInt(shift);
  return { text: quantity.text, mantissa: mantissa < 0n ? -rounded : rounded, exponent: unit };
}

/** -1, 0 or 1 as a is less than, equal to or greater than b. */
export function compareQuantities(a: Quantity, b: Quantity): -1 | 0 | 1 {
  const [signA, signB] = [signOf(a.mantissa), signOf(b.mantissa)];
  if (signA !== signB) return signA < signB ? -1 : 1;
  if (signA === 0) return 0;
  const magnitude = compareMagnitudes(a.mantissa * BigInt(signA), a.exponent, b.mantissa * BigInt(signB), b.exponent);
  return signA > 0 ? magnitude : ((-magnitude) as -1 | 0 | 1);
}

function signOf(value: bigint): -1 | 0 | 1 {
  return value < 0n ? -1 : value > 0n ? 1 : 0;
}

/** Compares two positive values m × 10^e. */
function compareMagnitudes(mantissaA: bigint, exponentA: number, mantissaB: bigint, exponentB: number): -1 | 0 | 1 {
  // A value with L digits times 10^e lies in [10^(L-1+e), 10^(L+e)): different orders of magnitude settle it.
  const orderA = mantissaA.toString().length + exponentA;
  const orderB = mantissaB.toString().length + exponentB;
  if (orderA !== orderB) return orderA < orderB ? -1 : 1;
  // The same order: the exponents differ by no more than the mantissas' lengths, so scaling is cheap.
  const shift = exponentA - exponentB;
  const left = shift > 0 ? mantissaA * 10n ** BigInt(shift) : mantissaA;
  const right = shift < 0 ? mantissaB * 10n ** BigInt(-shift) : mantissaB;
  return left < right ? -1 : left > right ? 1 : 0;
}

/** The value as a JavaScript number (approximate): for sizes in messages and tests. */
export function quantityValue(quantity: Quantity): number {
  return Number(quantity.mantissa) * 10 ** quantity.exponent;
}
