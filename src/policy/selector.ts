import { Type, type Static } from '@sinclair/typebox';
import { StringEnum, type Problem } from '../config/ajv.ts';
import { assertNever } from '../lib/assert-never.ts';

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
            operator: StringEnum(['In', 'NotIn', 'Exists', 'DoesNotExist'] as const),
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

/** Problems the schema cannot express: In/NotIn need values, Exists/DoesNotExist take none. */
export function labelSelectorProblems(selector: LabelSelector): Problem[] {
  const problems: Problem[] = [];
  (selector.matchExpressions ?? []).forEach((expression, index) => {
    const count = expression.values?.length ?? 0;
    const path = ['matchExpressions', index, 'values'];
    const needsValues = expression.operator === 'In' || expression.operator === 'NotIn';
    if (needsValues && count === 0) problems.push({ path, message: `operator ${expression.operator} needs at least one value` });
    if (!needsValues && count > 0) problems.push({ path, message: `operator ${expression.operator} takes no values` });
  });
  return problems;
}

export function compileLabelSelector(selector: LabelSelector): LabelPredicate {
  const required = Object.entries(selector.matchLabels ?? {});
  const expressions = (selector.matchExpressions ?? []).map((expression) => {
    const values = new Set(expression.values ?? []);
    const key = expression.key;
    switch (expression.operator) {
      case 'In':
        return (labels: ReadonlyMap<string, string>) => {
          const value = labels.get(key);
          return value !== undefined && values.has(value);
        };
      case 'NotIn':
        return (labels: ReadonlyMap<string, string>) => {
          const value = labels.get(key);
          return value === undefined || !values.has(value);
        };
      case 'Exists':
        return (labels: ReadonlyMap<string, string>) => labels.has(key);
      case 'DoesNotExist':
        return (labels: ReadonlyMap<string, string>) => !labels.has(key);
      default:
        return assertNever(expression.operator);
    }
  });
  return (labels) => required.every(([key, value]) => labels.get(key) === value) && expressions.every((holds) => holds(labels));
}
