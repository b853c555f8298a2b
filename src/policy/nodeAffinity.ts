import { arrayAt, at, isRecord, stringAt, stringMapAt } from '../admission/json.ts';
import type { NodeInfo } from './cluster.ts';

/**
 * Node selection with the scheduler's semantics
 * (k8s.io/component-helpers/scheduling/corev1/nodeaffinity):
 * - `nodeSelector`: every key must be present with that value;
 * - required node affinity: the terms are ORed, the requirements of a term ANDed;
 *   an empty term, or an empty list of terms, matches no node;
 * - operators In, NotIn, Exists, DoesNotExist, Gt, Lt (integers); `matchFields`
 *   only knows `metadata.name`.
 * https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#node-affinity
 */
export type Operator = 'In' | 'NotIn' | 'Exists' | 'DoesNotExist' | 'Gt' | 'Lt';

export interface Requirement {
  readonly key: string;
  readonly operator: Operator;
  readonly values: readonly string[];
}

export interface Term {
  readonly matchExpressions: readonly Requirement[];
  readonly matchFields: readonly Requirement[];
}

/** The node constraints of a pod spec, narrowed from JSON. */
export interface NodeConstraints {
  readonly nodeName: string | undefined;
  readonly nodeSelector: ReadonlyMap<string, string>;
  /** Undefined when the pod has no required node affinity at all. */
  readonly requiredTerms: readonly Term[] | undefined;
}

const OPERATORS: ReadonlySet<string> = new Set(['In', 'NotIn', 'Exists', 'DoesNotExist', 'Gt', 'Lt']);
const isOperator = (value: unknown): value is Operator => typeof value === 'string' && OPERATORS.has(value);

function requirements(value: unknown): Requirement[] {
  return (Array.isArray(value) ? value : []).flatMap((entry) => {
    const key = stringAt(entry, 'key');
    const operator = at(entry, 'operator');
    if (key === undefined || !isOperator(operator)) return [];
    const values = arrayAt(entry, 'values').filter((v): v is string => typeof v === 'string');
    return [{ key, operator, values }];
  });
}

export const REQUIRED_TERMS_PATH = ['affinity', 'nodeAffinity', 'requiredDuringSchedulingIgnoredDuringExecution', 'nodeSelectorTerms'] as const;

export function nodeConstraints(podSpec: unknown): NodeConstraints {
  const required = at(podSpec, 'affinity', 'nodeAffinity', 'requiredDuringSchedulingIgnoredDuringExecution');
  const terms = isRecord(required)
    ? arrayAt(required, 'nodeSelectorTerms').map((term) => ({ matchExpressions: requirements(at(term, 'matchExpressions')), matchFields: requirements(at(term, 'matchFields')) }))
    : undefined;
  return { nodeName: stringAt(podSpec, 'nodeName') || undefined, nodeSelector: stringMapAt(podSpec, 'nodeSelector'), requiredTerms: terms };
}

function integer(text: string): bigint | undefined {
  return /^[+-]?\d+$/.test(text) ? BigInt(text) : undefined;
}

/** One requirement against one value (undefined: the label or field is absent). */
export function requirementHolds(requirement: Requirement, value: string | undefined): boolean {
  switch (requirement.operator) {
    case 'In':
      return value !== undefined && requirement.values.includes(value);
    case 'NotIn':
      return value === undefined || !requirement.values.includes(value);
    case 'Exists':
      return value !== undefined;
    case 'DoesNotExist':
      return value === undefined;
    case 'Gt':
    case 'Lt': {
      const [bound] = requirement.values;
      const left = value === undefined ? undefined : integer(value);
      const right = bound === undefined || requirement.values.length !== 1 ? undefined : integer(bound);
      if (left === undefined || right === undefined) return false;
      return requirement.operator === 'Gt' ? left > right : left < right;
    }
  }
}

export function termMatches(term: Term, node: NodeInfo): boolean {
  if (term.matchExpressions.length === 0 && term.matchFields.length === 0) return false;
  return (
    term.matchExpressions.every((requirement) => requirementHolds(requirement, node.labels.get(requirement.key))) &&
    term.matchFields.every((requirement) => requirement.key === 'metadata.name' && requirementHolds(requirement, node.name))
  );
}

/** Whether the scheduler may place a pod with these constraints on `node` (taints and resources aside). */
export function nodeFits(constraints: NodeConstraints, node: NodeInfo): boolean {
  if (constraints.nodeName !== undefined && constraints.nodeName !== node.name) return false;
  for (const [key, value] of constraints.nodeSelector) if (node.labels.get(key) !== value) return false;
  return constraints.requiredTerms === undefined || constraints.requiredTerms.some((term) => termMatches(term, node));
}

/**
 * Node names a term can only ever match, read from the term alone: a
 * `metadata.name In` field or a `kubernetes.io/hostname In` expression. Undefined
 * when the term would also match nodes not named in it.
 */
export function pinnedNames(term: Term): readonly string[] | undefined {
  const pins = [
    ...term.matchFields.filter((r) => r.key === 'metadata.name' && r.operator === 'In'),
    ...term.matchExpressions.filter((r) => r.key === HOSTNAME_LABEL && r.operator === 'In'),
  ];
  if (pins.length === 0) return undefined;
  // Several pins in one term are ANDed: only names every pin allows remain.
  return pins.map((pin) => pin.values).reduce((kept, values) => kept.filter((name) => values.includes(name)));
}

export const HOSTNAME_LABEL = 'kubernetes.io/hostname';
