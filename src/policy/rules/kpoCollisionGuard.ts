import { Type } from '@sinclair/typebox';
import { stringAt, stringMapAt } from '../../lib/json.ts';
import { injectedKeys, kpoIdentity, KPO_TASK_LABELS, KPO_UNSELECTED_LABELS, missingAirflow, type Airflow } from '../airflow.ts';
import type { KpoPod } from '../cluster.ts';
import { forEachChangedLabel } from '../selector.ts';
import { CheckActionSchema, defineRuleKind, fail, pass, ruleSchema, skip, type Check, type RuleInput, type RuleResult } from '../rule.ts';

/**
 * kpoCollisionGuard (validating): refuse the second pod of a cross-environment
 * collision (incident 1). KubernetesPodOperator finds "its" pod with a label
 * selector: the operator's labels plus dag/task/run/map_index (not try_number),
 * `already_checked!=True`, `!airflow-worker`. If a live pod of another
 * environment matches that selector, the task either fails ("More than one pod
 * running with labels …") or re-attaches to the other environment's pod and
 * deletes it at cleanup.
 */
const schema = ruleSchema('kpoCollisionGuard', "Refuses a KPO pod whose operator lookup would also match another environment's live pod.", {
  whileUnsynced: Type.Optional(
    CheckActionSchema('warn', 'Before the pod watch has listed: warn (default: admit with a warning), deny (fail closed), audit (admit, and log it) or admit silently.'),
  ),
});

const UNSELECTED: ReadonlySet<string> = new Set(KPO_UNSELECTED_LABELS);

/**
 * The selector KPO will look this pod up by (its equality part): the pod's labels but
 * those KPO leaves out of it and those podgate added. Read through the pod's own label
 * map, not copied: a pod may carry 50,000 labels, and a cached pod at most a few dozen.
 */
interface Lookup {
  readonly size: number;
  readonly get: (key: string) => string | undefined;
}

function lookupOf(airflow: Airflow, labels: ReadonlyMap<string, string>, injected: ReadonlySet<string>): Lookup {
  const selected = (key: string) => !UNSELECTED.has(key) && !injected.has(key) && key !== airflow.injectedKey;
  let size = 0;
  for (const key of labels.keys()) if (selected(key)) size += 1;
  return { size, get: (key) => (selected(key) ? labels.get(key) : undefined) };
}

/**
 * Whether the lookup finds `pod`: every selector label on it with the same value. Costs
 * the cached pod's label count, never the new pod's: a complete cached pod with fewer
 * labels than the selector cannot hold them all; otherwise each of its labels is
 * compared, and a partial one (the cache cut its labels short) matches unless one of
 * the labels it kept contradicts the selector.
 */
function matchesLookup(pod: KpoPod, lookup: Lookup): boolean {
  if (pod.labels.get('already_checked') === 'True' || pod.labels.has('airflow-worker')) return false;
  if (pod.partialLabels !== true && lookup.size > pod.labels.size) return false;
  let matched = 0;
  for (const [key, value] of pod.labels) {
    const wanted = lookup.get(key);
    if (wanted === undefined) continue;
    if (wanted !== value) return false;
    matched += 1;
  }
  return pod.partialLabels === true || matched === lookup.size;
}

/**
 * The other direction: whether the lookup of `pod`'s own operator would find the new pod
 * (labels `new`): every label of its selector (its labels but those KPO leaves out and
 * those podgate added to it) on the new pod. Costs the cached pod's few labels. A partial
 * cached pod whose kept labels all match counts as a match, the safe side.
 */
function lookupOfCachedFinds(pod: KpoPod, labels: ReadonlyMap<string, string>): boolean {
  if (pod.labels.get('already_checked') === 'True' || pod.labels.has('airflow-worker')) return false;
  const injected = pod.injectedLabels ?? [];
  for (const [key, value] of pod.labels) {
    if (UNSELECTED.has(key) || injected.includes(key)) continue;
    if (labels.get(key) !== value) return false;
  }
  return true;
}

/** At most three pods by name, then how many more: the message does not grow with the cluster. */
function podList(pods: readonly KpoPod[]): string {
  const named = pods.slice(0, 3).map((pod) => `${pod.namespace}/${pod.name}`).join(', ');
  return pods.length > 3 ? `${named} and ${pods.length - 3} more` : named;
}

function describeTask(labels: ReadonlyMap<string, string>): string {
  return KPO_TASK_LABELS.flatMap((key) => (labels.has(key) ? [`${key}=${labels.get(key) ?? ''}`] : [])).join(', ');
}

function validate(unsynced: Check, airflow: Airflow, { request, object, cluster }: RuleInput): RuleResult {
  const labels = stringMapAt(object, 'metadata', 'labels');
  if (!airflow.isKpoPod(labels)) return skip();
  if (request.operation === 'UPDATE' && !lookupLabelsChange(stringMapAt(request.oldObject, 'metadata', 'labels'), labels)) return skip();
  // A creator of no environment, with no label, is no environment's: it collides with every environment's pods.
  const environment = airflow.environmentOf(request.userInfo) ?? labels.get(airflow.environmentKey);
  const namespace = request.namespace ?? '';
  const identity = kpoIdentity(namespace, labels);
  if (identity === undefined) return skip();

  if (!cluster.kpoPods.synced) {
    return fail(
      [
        cluster.kpoPods.watched === false
          ? 'the collision check could not run: podgate runs without a watch of the cluster’s pods (offline), so it knows no live KubernetesPodOperator pods'
          : 'the collision check could not run: podgate has not finished listing the live KubernetesPodOperator pods yet',
      ],
      // Only the wording follows the check's action (what the reader is told to do); fold.ts decides what it does.
      unsynced.action === 'deny' ? 'Retry in a moment.' : 'The pod was admitted unchecked.',
      { check: unsynced },
    );
  }

  const sameTask = cluster.kpoPods.withIdentity(identity);
  if (sameTask.length === 0) return pass(); // the common case: no other pod of this task instance
  const name = stringAt(object, 'metadata', 'name');
  const others = sameTask.filter((pod) => {
    const owner = pod.labels.get(airflow.environmentKey);
    return pod.name !== name && owner !== undefined && owner !== environment;
  });
  if (others.length === 0) return pass(); // only this pod itself, or its own environment's
  const lookup = lookupOf(airflow, labels, injectedKeys(airflow, object));
  const task = describeTask(labels);
  const fix = environment === undefined ? 'Create KubernetesPodOperator pods with an identity of one of airflow.environments' : `Set ${airflow.environmentKey}: "${environment}" in the operator's labels (labels= or an Airflow cluster policy) so each environment only looks up its own pods`;
  const counted = (other: string) => ({ counter: { counter: 'kpoCollision', environment: environment ?? 'none', other } as const });

  // This pod's lookup finds another environment's live pod.
  const found = others.filter((pod) => matchesLookup(pod, lookup));
  const [first] = found;
  if (first !== undefined) {
    const other = first.labels.get(airflow.environmentKey) ?? '';
    return fail(
      [`the operator's lookup for this task (${task}) also matches live pod ${podList(found)} of environment ${other}; KubernetesPodOperator would find both and fail ("More than one pod running with labels"), or re-attach to ${other}'s pod and delete it`],
      `Pause the DAG in one environment, or ${lowerFirst(fix)}.`,
      counted(other),
    );
  }
  // Another environment's live pod's lookup finds this one: that environment's KPO would be the one to fail.
  const finders = others.filter((pod) => lookupOfCachedFinds(pod, labels));
  const [finder] = finders;
  if (finder === undefined) return pass();
  const other = finder.labels.get(airflow.environmentKey) ?? '';
  return fail(
    [`the lookup of environment ${other}'s live pod ${podList(finders)} for this task (${task}) would also find this pod; ${other}'s KubernetesPodOperator would find both and fail ("More than one pod running with labels"), or re-attach to this pod and delete it`],
    `Pause the DAG in one environment, or have environment ${other} set ${airflow.environmentKey} in its operator's labels so its lookups only find its own pods.`,
    counted(other),
  );
}

/** Whether an UPDATE changes what a lookup can match: any label but those KPO leaves out of its selector. */
function lookupLabelsChange(before: ReadonlyMap<string, string>, after: ReadonlyMap<string, string>): boolean {
  let changed = false;
  forEachChangedLabel(before, after, (key) => {
    changed = !UNSELECTED.has(key);
    return !changed;
  });
  return changed;
}

function lowerFirst(text: string): string {
  return text.charAt(0).toLowerCase() + text.slice(1);
}

export const kpoCollisionGuard = defineRuleKind({
  kind: 'kpoCollisionGuard',
  schema,
  build(config, { airflow }) {
    if (airflow === undefined) return missingAirflow('kpoCollisionGuard');
    // Pod CREATEs, and UPDATEs that change a label a lookup selects on.
    const unsynced: Check = { name: 'whileUnsynced', action: config.whileUnsynced ?? 'warn' };
    // An audit replays each live KPO pod as a CREATE by no environment: the pod's own label says whose it is, and the other live pods are the index.
    const judge = (input: RuleInput) => validate(unsynced, airflow, input);
    return { kinds: ['Pod'], operations: ['CREATE', 'UPDATE'], watches: ['kpoPods'], validate: judge, audit: judge };
  },
});
