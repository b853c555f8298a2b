import { Type, type Static } from '@sinclair/typebox';
import { StringEnum, type Problem } from '../../lib/schema.ts';
import { arrayAt, at, isRecord, stringAt } from '../../lib/json.ts';
import { pointer, type PatchOp } from '../../lib/patch.ts';
import type { NodeInfo, NodeView } from '../cluster.ts';
import { globMatcher, type NameMatcher } from '../glob.ts';
import {
  HOSTNAME_LABEL,
  makeRequirement,
  MatchBudget,
  MatchLimitExceeded,
  nodeConstraints,
  nodeFits,
  pinnedNames,
  REQUIRED_TERMS_PATH,
  type NodeConstraints,
  type Requirement,
  type Term,
} from '../nodeAffinity.ts';
import { compileLabelSelector, labelSelectorProblems, LabelSelectorSchema, type LabelSelector } from '../selector.ts';
import { defineRuleKind, fail, pass, ruleSchema, skip, type RuleInput, type RuleResult } from '../rule.ts';
import { bringsNewPodSpec, WORKLOAD_KINDS, workloadOf, type Workload } from '../workload.ts';
import picomatch from 'picomatch';
import { assertNever } from '../../lib/assert-never.ts';
import { countOf, formatCount } from '../../lib/format.ts';

/**
 * nodeDenylist: keep workloads off nodes that keep crashing them (incident 3:
 * only pods on one node crash-looped; the team hand-wrote nodeAffinity NotIn).
 * Validating: refuses pods (and pod templates) that can only land on listed
 * nodes. With `steer`, mutating too: adds the NotIn requirements itself.
 */
const Entry = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, description: 'A node name or glob (gke-pool-1-*).' })),
    selector: Type.Optional({ ...LabelSelectorSchema, description: 'A label selector over nodes, from the node watch.' }),
    reason: Type.Optional(Type.String({ minLength: 1, description: 'Shown to whoever is refused: "CrashLoopBackOff on this node, INC-1234".' })),
  },
  { additionalProperties: false },
);

const schema = ruleSchema('nodeDenylist', 'Nodes no workload may target; optionally steers pods away from them.', {
  nodes: Type.Array(Entry, { minItems: 1, description: 'The denylist: each entry a name (or glob) or a node label selector, with a reason.' }),
  daemonSets: Type.Optional(
    StringEnum(['exempt', 'check'] as const, { default: 'exempt', description: 'DaemonSets are pinned to every node by design: exempt unless check.' }),
  ),
  exemptNamespaces: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { description: 'Namespaces (globs) never judged; default [kube-system].' })),
  steer: Type.Optional(Type.Boolean({ default: false, description: 'Also add node affinity that keeps new pods off denylisted nodes.' })),
});
type Config = Static<typeof schema>;

interface CompiledEntry {
  readonly reason: string | undefined;
  /** An exact name, for a name entry without wildcards. */
  readonly exactName: string | undefined;
  readonly matchesName: NameMatcher | undefined;
  readonly selector: LabelSelector | undefined;
  readonly matchesLabels: ((labels: ReadonlyMap<string, string>) => boolean) | undefined;
}

interface Denylist {
  readonly entries: readonly CompiledEntry[];
  /** Namespaces never judged, compiled once with the rule. */
  readonly exemptNamespace: NameMatcher;
  /** The first entry that lists this node; a node the watch knows is judged by its labels too. */
  readonly entryFor: (name: string, nodes: NodeView) => CompiledEntry | undefined;
  readonly entryForNode: (node: NodeInfo) => CompiledEntry | undefined;
}

function compileEntries(config: Config): { denylist: Denylist; problems: Problem[] } {
  const problems: Problem[] = [];
  const entries = config.nodes.map((entry, index): CompiledEntry => {
    if ((entry.name === undefined) === (entry.selector === undefined)) {
      problems.push({ path: ['nodes', index], message: 'give either name or selector (one of them)' });
    }
    if (entry.selector) problems.push(...labelSelectorProblems(entry.selector).map((p) => ({ ...p, path: ['nodes', index, 'selector', ...p.path] })));
    const isGlob = entry.name !== undefined && picomatch.scan(entry.name).isGlob;
    return {
      reason: entry.reason,
      exactName: entry.name !== undefined && !isGlob ? entry.name : undefined,
      matchesName: entry.name !== undefined ? globMatcher([entry.name]) : undefined,
      selector: entry.selector,
      matchesLabels: entry.selector ? compileLabelSelector(entry.selector) : undefined,
    };
  });
  const entryForNode = (node: NodeInfo) => entries.find((e) => e.matchesName?.(node.name) === true || e.matchesLabels?.(node.labels) === true);
  const entryFor = (name: string, nodes: NodeView) => {
    const known = nodes.byName(name);
    return known ? entryForNode(known) : entries.find((e) => e.matchesName?.(name) === true);
  };
  const exemptNamespace = globMatcher(config.exemptNamespaces ?? ['kube-system']);
  return { denylist: { entries, entryFor, entryForNode, exemptNamespace }, problems };
}

const HINT = 'Remove the node pin or choose another node.';
/** The fix when the pod selects nodes (a nodeSelector, affinity) rather than naming one: change what selects them. */
const selectorHint = (fields: string) => `Change ${fields} so it admits a node that is not on the denylist.`;

/**
 * The work one review may make matching its node constraints against the node list,
 * in requirement checks (nodeAffinity.ts MatchBudget: trying a term and reading a
 * requirement cost more). A real pod needs a few per node (a steered one a few dozen:
 * steering adds a NotIn per listed node to every term). 800,000 is 10-40 ms here
 * whatever the shape, few terms tried over and over or 15,000 distinct ones (npm run
 * bench, worst cases). A pod that needs more is refused as too complex to check rather
 * than holding the event loop.
 */
const MATCH_LIMIT = 800_000;

function exempt(config: Config, exemptNamespace: NameMatcher, workload: Workload, namespace: string): boolean {
  if (exemptNamespace(namespace)) return true;
  if ((config.daemonSets ?? 'exempt') === 'check') return false;
  if (workload.kind === 'apps/DaemonSet') return true;
  return arrayAt(workload.podMetadata, 'ownerReferences').some((owner) => stringAt(owner, 'kind') === 'DaemonSet');
}

function reasonsNote(entries: readonly (CompiledEntry | undefined)[]): string | undefined {
  const reasons = [...new Set(entries.flatMap((entry) => (entry?.reason ? [entry.reason] : [])))];
  return reasons.length > 0 ? reasons.join('; ') : undefined;
}

function listed(names: readonly string[]): string {
  const shown = names.slice(0, 5).map((name) => `"${name}"`).join(', ');
  return names.length > 5 ? `${shown} and ${names.length - 5} more` : shown;
}

function validate(config: Config, denylist: Denylist, { request, object, cluster }: RuleInput): RuleResult {
  const workload = workloadOf(request, object);
  if (workload === undefined || !bringsNewPodSpec(request, workload) || exempt(config, denylist.exemptNamespace, workload, request.namespace ?? '')) return skip();
  const specPath = workload.podPath.length === 0 ? 'spec' : `${workload.podPath.join('.')}.spec`;
  const budget = new MatchBudget(MATCH_LIMIT);
  let constraints: NodeConstraints | undefined;
  try {
    constraints = nodeConstraints(workload.podSpec, budget);
    return judge(specPath, constraints, denylist, cluster.nodes, budget);
  } catch (error) {
    if (!(error instanceof MatchLimitExceeded)) throw error;
    const fields = constraints === undefined ? 'the required node affinity' : constrainingFields(specPath, constraints);
    return fail(
      [`${fields} ${countTerms(workload.podSpec)} needs more than ${formatCount(error.limit)} checks against the cluster's nodes, too many to tell in time whether they target the node denylist`],
      'Name the nodes with fewer, shorter node-selector terms.',
    );
  }
}

function judge(specPath: string, constraints: NodeConstraints, denylist: Denylist, nodes: NodeView, budget: MatchBudget): RuleResult {
  if (constraints.nodeName !== undefined) {
    const entry = denylist.entryFor(constraints.nodeName, nodes);
    if (entry === undefined) return pass();
    return fail([`${specPath}.nodeName "${constraints.nodeName}" is on the node denylist`], HINT, { ...noteOf([entry]) });
  }
  const selects = constraints.nodeSelector.size > 0 || constraints.requiredTerms !== undefined;
  if (!selects) return pass();
  if (!nodes.synced) return judgeByNames(specPath, constraints, denylist, nodes);
  return judgeAgainstNodes(specPath, constraints, denylist, nodes, budget);
}

/** Counted in the pod spec itself: the constraints may be too large to have been read whole. */
function countTerms(podSpec: unknown): string {
  const terms = arrayAt(podSpec, ...REQUIRED_TERMS_PATH);
  let requirements = 0;
  for (const term of terms) requirements += arrayAt(term, 'matchExpressions').length + arrayAt(term, 'matchFields').length;
  return `(${countOf(terms.length, 'term')}, ${countOf(requirements, 'requirement')})`;
}

function noteOf(entries: readonly (CompiledEntry | undefined)[]): { note?: string } {
  const note = reasonsNote(entries);
  return note === undefined ? {} : { note };
}

function constrainingFields(specPath: string, constraints: NodeConstraints): string {
  const fields = [
    ...(constraints.nodeSelector.size > 0 ? [`${specPath}.nodeSelector`] : []),
    ...(constraints.requiredTerms !== undefined ? [`the required node affinity`] : []),
  ];
  return fields.join(' with ');
}

/** With the node list: the pod targets the denylist when every node it could land on is listed. */
function judgeAgainstNodes(specPath: string, constraints: NodeConstraints, denylist: Denylist, nodes: NodeView, budget: MatchBudget): RuleResult {
  const candidates = [...nodes.all()].filter((node) => nodeFits(constraints, node, budget));
  if (candidates.length === 0) return pass(); // unschedulable anyway (or nodes yet to come): not ours to judge
  const entries = candidates.map((node) => denylist.entryForNode(node));
  if (entries.some((entry) => entry === undefined)) return pass();
  const finding = `${constrainingFields(specPath, constraints)} can only be met by nodes on the denylist (${listed(candidates.map((node) => node.name))})`;
  return fail([finding], selectorHint(constrainingFields(specPath, constraints)), noteOf(entries));
}

/** Before the node watch has synced: judge the names the pod spells out. */
function judgeByNames(specPath: string, constraints: NodeConstraints, denylist: Denylist, nodes: NodeView): RuleResult {
  const findings: string[] = [];
  const fields: string[] = [];
  const entries: (CompiledEntry | undefined)[] = [];
  const hostname = constraints.nodeSelector.get(HOSTNAME_LABEL);
  if (hostname !== undefined) {
    const entry = denylist.entryFor(hostname, nodes);
    if (entry) {
      findings.push(`${specPath}.nodeSelector ${HOSTNAME_LABEL} "${hostname}" is on the node denylist`);
      fields.push(`${specPath}.nodeSelector`);
      entries.push(entry);
    }
  }
  const pins = (constraints.requiredTerms ?? []).map(pinnedNames);
  if (pins.length > 0 && pins.every((names) => names !== undefined)) {
    const names = [...new Set(pins.flat())];
    const named = names.map((name) => denylist.entryFor(name, nodes));
    if (names.length > 0 && named.every((entry) => entry !== undefined)) {
      findings.push(`the required node affinity names only nodes on the denylist (${listed(names)})`);
      fields.push('the required node affinity');
      entries.push(...named);
    }
  }
  return findings.length > 0 ? fail(findings, selectorHint(fields.join(' and ')), noteOf(entries)) : pass();
}

// --- steering -------------------------------------------------------------------------------

type Negation = { readonly field: 'matchExpressions' | 'matchFields'; readonly requirement: Requirement };

/** The requirements that keep a pod off every listed node, as far as they can be written. */
function steeringRequirements(denylist: Denylist, nodes: NodeView): Negation[] {
  const out: Negation[] = [];
  const byName = (name: string): Negation => ({ field: 'matchFields', requirement: makeRequirement('metadata.name', 'NotIn', [name]) });
  for (const entry of denylist.entries) {
    if (entry.exactName !== undefined) out.push(byName(entry.exactName));
    const single = entry.selector ? negatedSingleRequirement(entry.selector) : undefined;
    if (single) out.push({ field: 'matchExpressions', requirement: single });
    else if (entry.exactName === undefined && nodes.synced) {
      // A glob or a compound selector cannot be written as one requirement: name the nodes it lists today.
      for (const node of nodes.all()) if (denylist.entryForNode(node) === entry) out.push(byName(node.name));
    }
  }
  const seen = new Set<string>();
  return out.filter((negation) => {
    const key = JSON.stringify(negation);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** `podgate.io/quarantine: "true"` becomes `podgate.io/quarantine NotIn [true]` (which also admits nodes without the label). */
function negatedSingleRequirement(selector: LabelSelector): Requirement | undefined {
  const labels = Object.entries(selector.matchLabels ?? {});
  const expressions = selector.matchExpressions ?? [];
  if (labels.length + expressions.length !== 1) return undefined;
  const [label] = labels;
  if (label) return makeRequirement(label[0], 'NotIn', [label[1]]);
  const [expression] = expressions;
  if (expression === undefined) return undefined;
  const values = expression.values ?? [];
  switch (expression.operator) {
    case 'In':
      return makeRequirement(expression.key, 'NotIn', values);
    case 'NotIn':
      return makeRequirement(expression.key, 'In', values);
    case 'Exists':
      return makeRequirement(expression.key, 'DoesNotExist', []);
    case 'DoesNotExist':
      return makeRequirement(expression.key, 'Exists', []);
    default:
      return assertNever(expression.operator);
  }
}

const sameRequirement = (a: Requirement, b: Requirement) =>
  a.key === b.key && a.operator === b.operator && a.valueSet.size === b.valueSet.size && a.values.every((v) => b.valueSet.has(v));

function asJson(requirement: Requirement): Record<string, unknown> {
  return requirement.values.length > 0 || requirement.operator === 'In' || requirement.operator === 'NotIn'
    ? { key: requirement.key, operator: requirement.operator, values: [...requirement.values] }
    : { key: requirement.key, operator: requirement.operator };
}

function missingFrom(term: Term, negations: readonly Negation[]): Negation[] {
  return negations.filter(({ field, requirement }) => !term[field].some((existing) => sameRequirement(existing, requirement)));
}

function steeredTerms(terms: readonly Term[] | undefined, negations: readonly Negation[]): Term[] {
  const add = (term: Term): Term => ({
    matchExpressions: [...term.matchExpressions, ...negations.filter((n) => n.field === 'matchExpressions').map((n) => n.requirement)],
    matchFields: [...term.matchFields, ...negations.filter((n) => n.field === 'matchFields').map((n) => n.requirement)],
  });
  if (terms === undefined) return [add({ matchExpressions: [], matchFields: [] })];
  // An empty term matches no node; filling it would make it match: leave it empty.
  return terms.map((term) => (term.matchExpressions.length + term.matchFields.length === 0 ? term : add(term)));
}

function steeringPatch(podSpec: unknown, specPointer: readonly string[], negations: readonly Negation[]): PatchOp[] {
  const fresh = (list: readonly Negation[]) => {
    const term: Record<string, unknown> = {};
    const expressions = list.filter((n) => n.field === 'matchExpressions').map((n) => asJson(n.requirement));
    const fields = list.filter((n) => n.field === 'matchFields').map((n) => asJson(n.requirement));
    if (expressions.length > 0) term['matchExpressions'] = expressions;
    if (fields.length > 0) term['matchFields'] = fields;
    return term;
  };
  const required = { nodeSelectorTerms: [fresh(negations)] };
  const affinity = at(podSpec, 'affinity');
  if (!isRecord(affinity)) return [{ op: 'add', path: pointer([...specPointer, 'affinity']), value: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: required } } }];
  const nodeAffinity = at(affinity, 'nodeAffinity');
  if (!isRecord(nodeAffinity)) return [{ op: 'add', path: pointer([...specPointer, 'affinity', 'nodeAffinity']), value: { requiredDuringSchedulingIgnoredDuringExecution: required } }];
  if (!isRecord(at(nodeAffinity, 'requiredDuringSchedulingIgnoredDuringExecution'))) {
    return [{ op: 'add', path: pointer([...specPointer, 'affinity', 'nodeAffinity', 'requiredDuringSchedulingIgnoredDuringExecution']), value: required }];
  }
  const constraints = nodeConstraints(podSpec);
  const ops: PatchOp[] = [];
  (constraints.requiredTerms ?? []).forEach((term, index) => {
    if (term.matchExpressions.length + term.matchFields.length === 0) return;
    const missing = missingFrom(term, negations);
    const termPath = [...specPointer, ...REQUIRED_TERMS_PATH, index];
    for (const field of ['matchExpressions', 'matchFields'] as const) {
      const values = missing.filter((n) => n.field === field).map((n) => asJson(n.requirement));
      if (values.length === 0) continue;
      const existing = at(arrayAt(podSpec, ...REQUIRED_TERMS_PATH)[index], field);
      if (Array.isArray(existing)) for (const value of values) ops.push({ op: 'add', path: pointer([...termPath, field, '-']), value });
      else ops.push({ op: 'add', path: pointer([...termPath, field]), value: values });
    }
  });
  return ops;
}

function mutate(config: Config, denylist: Denylist, { request, object, cluster }: RuleInput): RuleResult {
  const workload = workloadOf(request, object);
  // Only new Pods are steered: patching a controller's template would fight `helm upgrade`'s three-way merge.
  if (workload?.kind !== 'Pod' || request.operation !== 'CREATE' || exempt(config, denylist.exemptNamespace, workload, request.namespace ?? '')) return skip();
  const budget = new MatchBudget(MATCH_LIMIT);
  let constraints: NodeConstraints;
  try {
    constraints = nodeConstraints(workload.podSpec, budget);
  } catch (error) {
    if (error instanceof MatchLimitExceeded) return pass(); // too complex to steer; the validating check refuses it as too complex to check
    throw error;
  }
  if (constraints.nodeName !== undefined) return skip(); // already bound: the validating check decides
  if (constraints.requiredTerms !== undefined && constraints.requiredTerms.length === 0) return skip(); // invalid: the API server will say so
  const negations = steeringRequirements(denylist, cluster.nodes);
  if (negations.length === 0) return pass();
  const terms = constraints.requiredTerms;
  if (terms !== undefined && terms.every((term) => missingFrom(term, negations).length === 0 || term.matchExpressions.length + term.matchFields.length === 0)) return pass();

  if (cluster.nodes.synced) {
    // Never turn a schedulable pod into an unschedulable one; if only listed nodes fit, the validating check refuses it with a reason.
    const steered = { ...constraints, requiredTerms: steeredTerms(terms, negations) };
    const nodes = [...cluster.nodes.all()];
    try {
      if (nodes.some((node) => nodeFits(constraints, node, budget)) && !nodes.some((node) => nodeFits(steered, node, budget))) return pass();
    } catch (error) {
      if (error instanceof MatchLimitExceeded) return pass(); // too complex to steer; the validating check refuses it as too complex to check
      throw error;
    }
  }
  return pass(steeringPatch(workload.podSpec, [...workload.podPath, 'spec'], negations));
}

export const nodeDenylist = defineRuleKind({
  kind: 'nodeDenylist',
  schema,
  build(config) {
    const { denylist, problems } = compileEntries(config);
    if (problems.length > 0) return { problems };
    return {
      kinds: WORKLOAD_KINDS,
      watches: ['nodes'],
      validate: (input) => validate(config, denylist, input),
      audit: (input) => validate(config, denylist, input),
      ...(config.steer ? { mutate: (input: RuleInput) => mutate(config, denylist, input) } : {}),
    };
  },
});
