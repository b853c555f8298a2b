import { arrayAt, at, isRecord, stringAt, stringMapAt } from '../lib/json.ts';
import type { NodeInfo } from './cluster.ts';
import { assertNever } from '../lib/assert-never.ts';
import { setOperatorHolds, type ValueLookup } from './selector.ts';

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
  readonly valueSet: ValueLookup;
  /** Gt and Lt: the one value as an integer, parsed once rather than once per node. */
  readonly bound: bigint | undefined;
}

export function makeRequirement(key: string, operator: Operator, values: readonly string[]): Requirement {
  const [only] = values;
  const bound = (operator === 'Gt' || operator === 'Lt') && values.length === 1 && only !== undefined ? integer(only) : undefined;
  return { key, operator, values, valueSet: values.length <= FEW_VALUES ? new FewValues(values) : new Set(values), bound };
}

/**
 * Up to this many values are compared in place: a Set per requirement cost more to
 * build than its lookups saved, and 15,000 one-value terms built 15,000 of them.
 */
const FEW_VALUES = 8;

class FewValues implements ValueLookup {
  readonly #values: readonly string[];
  /** Distinct values, as a Set counts them (steering compares requirements by it). */
  readonly size: number;

  constructor(values: readonly string[]) {
    this.#values = values;
    this.size = values.filter((value, index) => values.indexOf(value) === index).length; // at most FEW_VALUES²
  }

  has(value: string): boolean {
    return this.#values.includes(value);
  }
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

/** Each requirement read costs the budget PARSE_COST and VALUE_COST a value: a pod of 80,000 terms costs more to read than to check. */
function requirements(value: unknown, budget: MatchBudget): Requirement[] {
  const out: Requirement[] = [];
  if (!Array.isArray(value)) return out;
  for (const entry of value as readonly unknown[]) {
    budget.spend(PARSE_COST);
    const key = stringAt(entry, 'key');
    const operator = at(entry, 'operator');
    if (key === undefined || !isOperator(operator)) continue;
    const listed = arrayAt(entry, 'values');
    budget.spend(listed.length * VALUE_COST);
    // Copied only if the list holds something other than strings (the API server would refuse it anyway).
    const values = listed.every((item) => typeof item === 'string') ? listed : listed.filter((item): item is string => typeof item === 'string');
    out.push(makeRequirement(key, operator, values));
  }
  return out;
}

export const REQUIRED_TERMS_PATH = ['affinity', 'nodeAffinity', 'requiredDuringSchedulingIgnoredDuringExecution', 'nodeSelectorTerms'] as const;

/** Reading the constraints spends `budget` too (MatchLimitExceeded past it): the budget bounds a review's whole work on node affinity. */
export function nodeConstraints(podSpec: unknown, budget: MatchBudget = UNBOUNDED): NodeConstraints {
  const required = at(podSpec, 'affinity', 'nodeAffinity', 'requiredDuringSchedulingIgnoredDuringExecution');
  const terms = isRecord(required)
    ? arrayAt(required, 'nodeSelectorTerms').map((term) => {
        budget.spend(TERM_COST);
        return { matchExpressions: requirements(at(term, 'matchExpressions'), budget), matchFields: requirements(at(term, 'matchFields'), budget) };
      })
    : undefined;
  // Copied into a Map once: nodeFits walks the selector for every node, and a walk of the parsed object
  // enumerates all its keys first (a 2,000-entry selector against 5,000 nodes held podgate 1.5 s).
  return { nodeName: stringAt(podSpec, 'nodeName') || undefined, nodeSelector: new Map(stringMapAt(podSpec, 'nodeSelector')), requiredTerms: terms };
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

  spend(units = 1): void {
    this.#left -= units;
    if (this.#left < 0) throw new MatchLimitExceeded(this.limit);
  }
}

/**
 * What the budget charges, in requirement checks against a node (one unit: ~25 ns here
 * when few requirements are tried over and over). Trying a term on a node costs
 * TERM_COST more, since thousands of distinct terms each miss the cache (~200 ns a
 * term); reading a requirement from the pod costs PARSE_COST (~1.5 µs with its term)
 * and VALUE_COST per value.
 * So the budget holds a review to about the same time whatever its shape (npm run
 * bench, worst cases: "near the budget" and "past the check budget").
 */
const TERM_COST = 8;
const PARSE_COST = 60;
/** Each value of a requirement: copied, and hashed into its Set (~300 ns): a 99,000-name list cost 35 ms to read. */
const VALUE_COST = 12;

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
  budget.spend(TERM_COST);
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
