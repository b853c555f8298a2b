import { arrayAt, at, isRecord, stringAt, stringMapAt } from '../lib/json.ts';
import type { NodeInfo } from './cluster.ts';
import { assertNever } from '../lib/assert-never.ts';
import { setOperatorHolds } from './selector.ts';

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
  /** The same values, looked up rather than scanned: a pod may list 60,000 host names. */
  readonly valueSet: ReadonlySet<string>;
  /** Gt and Lt: the one value as an integer, parsed once rather than once per node. */
  readonly bound: bigint | undefined;
}

export function makeRequirement(key: string, operator: Operator, values: readonly string[]): Requirement {
  const [only] = values;
  const bound = (operator === 'Gt' || operator === 'Lt') && values.length === 1 && only !== undefined ? integer(only) : undefined;
  return { key, operator, values, valueSet: new Set(values), bound };
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
    return [makeRequirement(key, operator, values)];
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

/** An int64 as the API server parses Gt/Lt values (strconv.ParseInt): at most 19 digits, so never a huge BigInt. */
function integer(text: string): bigint | undefined {
  if (!/^[+-]?\d{1,19}$/.test(text)) return undefined;
  const value = BigInt(text);
  return value >= -(2n ** 63n) && value < 2n ** 63n ? value : undefined;
}

/** One requirement against one value (undefined: the label or field is absent). */
export function requirementHolds(requirement: Requirement, value: string | undefined): boolean {
  switch (requirement.operator) {
    case 'In':
    case 'NotIn':
    case 'Exists':
    case 'DoesNotExist':
      return setOperatorHolds(requirement.operator, requirement.valueSet, value);
    case 'Gt':
    case 'Lt': {
      const left = value === undefined ? undefined : integer(value);
      const right = requirement.bound;
      if (left === undefined || right === undefined) return false;
      return requirement.operator === 'Gt' ? left > right : left < right;
    }
    default:
      return assertNever(requirement.operator);
  }
}

/**
 * A bound on the requirement checks one review may make. Matching costs nodes ×
 * requirements; a pod of 15,000 terms against 5,000 nodes would hold the event
 * loop for seconds. Past the limit, matching stops with MatchLimitExceeded and the
 * rule reports the pod as too complex to check.
 */
export class MatchBudget {
  #left: number;
  readonly limit: number;

  constructor(limit: number) {
    this.limit = limit;
    this.#left = limit;
  }

  spend(): void {
    this.#left -= 1;
    if (this.#left < 0) throw new MatchLimitExceeded(this.limit);
  }
}

export class MatchLimitExceeded extends Error {
  override readonly name = 'MatchLimitExceeded';
  readonly limit: number;
  constructor(limit: number) {
    super(`more than ${limit} node requirement checks`);
    this.limit = limit;
  }
}

const UNBOUNDED = new MatchBudget(Number.POSITIVE_INFINITY);

function termMatches(term: Term, node: NodeInfo, budget: MatchBudget = UNBOUNDED): boolean {
  if (term.matchExpressions.length === 0 && term.matchFields.length === 0) return false;
  for (const requirement of term.matchExpressions) {
    budget.spend();
    if (!requirementHolds(requirement, node.labels.get(requirement.key))) return false;
  }
  for (const requirement of term.matchFields) {
    budget.spend();
    if (requirement.key !== 'metadata.name' || !requirementHolds(requirement, node.name)) return false;
  }
  return true;
}

/** Whether the scheduler may place a pod with these constraints on `node` (taints and resources aside). */
export function nodeFits(constraints: NodeConstraints, node: NodeInfo, budget: MatchBudget = UNBOUNDED): boolean {
  if (constraints.nodeName !== undefined && constraints.nodeName !== node.name) return false;
  for (const [key, value] of constraints.nodeSelector) {
    budget.spend();
    if (node.labels.get(key) !== value) return false;
  }
  if (constraints.requiredTerms === undefined) return true;
  for (const term of constraints.requiredTerms) if (termMatches(term, node, budget)) return true;
  return false;
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
  const [first, ...others] = pins;
  if (first === undefined) return undefined;
  // Several pins in one term are ANDed: only names every pin allows remain (looked up, not scanned).
  return first.values.filter((name) => others.every((pin) => pin.valueSet.has(name)));
}

export const HOSTNAME_LABEL = 'kubernetes.io/hostname';
