import { Type, type Static } from '@sinclair/typebox';
import { StringEnum, type Problem } from '../lib/schema.ts';
import { assertNever } from '../lib/assert-never.ts';

/** The set-based operators of label selectors; node selector requirements add Gt and Lt. */
const SET_OPERATORS = ['In', 'NotIn', 'Exists', 'DoesNotExist'] as const;
export type SetOperator = (typeof SET_OPERATORS)[number];

/**
 * A Kubernetes label selector (metav1.LabelSelector), with the apimachinery
 * semantics: matchLabels and every matchExpression must all hold; an empty
 * selector matches everything.
 * https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#resources-that-support-set-based-requirements
 */
export const LabelSelectorSchema = Type.Object(
  {
    matchLabels: Type.Optional(Type.Record(Type.String(), Type.String())),
    matchExpressions: Type.Optional(
      Type.Array(
        Type.Object(
          {
            key: Type.String({ minLength: 1 }),
            operator: StringEnum(SET_OPERATORS),
            values: Type.Optional(Type.Array(Type.String())),
          },
          { additionalProperties: false },
        ),
      ),
    ),
  },
  { additionalProperties: false, description: 'A Kubernetes label selector (matchLabels and matchExpressions).' },
);
export type LabelSelector = Static<typeof LabelSelectorSchema>;

export type LabelPredicate = (labels: ReadonlyMap<string, string>) => boolean;

/** A label value: 63 characters at most, alphanumeric at both ends, `-_.` inside (the API server's rule). */
function isLabelValue(value: string): boolean {
  return value.length <= 63 && /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/.test(value);
}

/** The problem with a configured label value (one podgate writes, or selects on), if it is not one. */
export function labelValueProblem(value: string, path: readonly (string | number)[]): Problem | undefined {
  if (isLabelValue(value)) return undefined;
  return { path: [...path], message: `"${value}" is not a valid label value (63 characters at most, letters, digits, - _ . inside, alphanumeric at both ends)` };
}

/** A DNS subdomain (RFC 1123), as a label key prefix must be. */
export function isDnsSubdomain(value: string): boolean {
  return value.length <= 253 && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(value);
}

/** A label key: an optional DNS-subdomain prefix and `/`, then a name like a non-empty label value. */
export function isLabelKey(key: string): boolean {
  const slash = key.lastIndexOf('/');
  const name = key.slice(slash + 1);
  return name !== '' && isLabelValue(name) && (slash < 0 || isDnsSubdomain(key.slice(0, slash)));
}

/** Why `key` is refused as a label (or annotation) key: the qualified-name rule the API server applies. */
export function keyMessage(key: string, what: 'label' | 'annotation'): string {
  return `"${key}" is not a valid ${what} key (an optional DNS-subdomain prefix and /, then up to 63 letters, digits, - _ . with alphanumeric ends)`;
}

/**
 * Problems the schema cannot express: keys and values the API server would refuse (a
 * selector sent to it in a watch would fail, one used here would never match), and
 * In/NotIn need values while Exists/DoesNotExist take none.
 */
export function labelSelectorProblems(selector: LabelSelector): Problem[] {
  const problems: Problem[] = [];
  const checkKey = (key: string, path: (string | number)[]) => {
    if (!isLabelKey(key)) problems.push({ path, message: keyMessage(key, 'label') });
  };
  const checkValue = (value: string, path: (string | number)[]) => {
    const problem = labelValueProblem(value, path);
    if (problem) problems.push(problem);
  };
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    checkKey(key, ['matchLabels', key]);
    checkValue(value, ['matchLabels', key]);
  }
  (selector.matchExpressions ?? []).forEach((expression, index) => {
    checkKey(expression.key, ['matchExpressions', index, 'key']);
    const count = expression.values?.length ?? 0;
    const path = ['matchExpressions', index, 'values'];
    const needsValues = expression.operator === 'In' || expression.operator === 'NotIn';
    if (needsValues && count === 0) problems.push({ path, message: `operator ${expression.operator} needs at least one value` });
    if (!needsValues && count > 0) problems.push({ path, message: `operator ${expression.operator} takes no values` });
    (expression.values ?? []).forEach((value, valueIndex) => { checkValue(value, [...path, valueIndex]); });
  });
  return problems;
}

/**
 * The selector in the API server's query syntax (`?labelSelector=`), as apimachinery
 * writes it: `k=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`, joined by commas. A
 * watch selected this way receives the same objects the predicate accepts.
 */
export function labelSelectorQuery(selector: LabelSelector): string {
  const parts = Object.entries(selector.matchLabels ?? {}).map(([key, value]) => `${key}=${value}`);
  for (const { key, operator, values = [] } of selector.matchExpressions ?? []) {
    switch (operator) {
      case 'In':
        parts.push(`${key} in (${values.join(',')})`);
        break;
      case 'NotIn':
        parts.push(`${key} notin (${values.join(',')})`);
        break;
      case 'Exists':
        parts.push(key);
        break;
      case 'DoesNotExist':
        parts.push(`!${key}`);
        break;
      default:
        assertNever(operator);
    }
  }
  return parts.join(',');
}

/** What the set-based operators ask of their values: a Set, or a few values compared in place. */
export interface ValueLookup {
  readonly size: number;
  has(value: string): boolean;
}

/**
 * The set-based label operators, as Kubernetes defines them for label selectors and
 * node selector requirements alike (k8s.io/apimachinery/pkg/labels): `value` is the
 * label's, undefined when the object does not carry it.
 */
export function setOperatorHolds(operator: SetOperator, values: ValueLookup, value: string | undefined): boolean {
  switch (operator) {
    case 'In':
      return value !== undefined && values.has(value);
    case 'NotIn':
      return value === undefined || !values.has(value);
    case 'Exists':
      return value !== undefined;
    case 'DoesNotExist':
      return value === undefined;
    default:
      return assertNever(operator);
  }
}

/**
 * Calls `visit` with each key whose value differs between two label maps (added, removed
 * or changed), until it returns false. Costs both maps' sizes, nothing more.
 */
export function forEachChangedLabel(before: ReadonlyMap<string, string>, after: ReadonlyMap<string, string>, visit: (key: string) => boolean): void {
  for (const [key, value] of before) if (after.get(key) !== value && !visit(key)) return;
  for (const key of after.keys()) if (!before.has(key) && !visit(key)) return;
}

export function compileLabelSelector(selector: LabelSelector): LabelPredicate {
  const required = Object.entries(selector.matchLabels ?? {});
  const expressions = (selector.matchExpressions ?? []).map((expression) => {
    const values: ReadonlySet<string> = new Set(expression.values ?? []);
    const { key, operator } = expression;
    return (labels: ReadonlyMap<string, string>) => setOperatorHolds(operator, values, labels.get(key));
  });
  // Loops rather than every() with a destructuring callback: no closure or iterator per call (this runs for every review).
  return (labels) => {
    for (const requirement of required) if (labels.get(requirement[0]) !== requirement[1]) return false;
    for (const holds of expressions) if (!holds(labels)) return false;
    return true;
  };
}
