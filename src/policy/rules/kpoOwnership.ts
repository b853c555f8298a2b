import { quoted, stringAt, stringMapAt } from '../../lib/json.ts';
import { missingAirflow, type Airflow } from '../airflow.ts';
import { groupKind } from '../workload.ts';
import { forEachChangedLabel } from '../selector.ts';
import { defineRuleKind, fail, pass, ruleSchema, skip, type RuleInput, type RuleResult } from '../rule.ts';

/**
 * kpoOwnership (validating, UPDATE and DELETE): one environment may not modify,
 * relabel or delete another environment's KubernetesPodOperator pod. This is
 * what stops the cleanup of a task that re-attached to the other environment's
 * pod from deleting that running pod (incident 1).
 *
 * An UPDATE is judged when the old *or* the new object is a KPO pod, or either
 * carries the environment label: a pod cannot shed its owner by first hiding
 * (adding `airflow-worker`, removing `kubernetes_pod_operator`) and then being
 * relabelled, nor be made a KPO pod of another environment. Only exempt identities
 * may change or remove the environment label or podgate's injected-labels annotation
 * (which labels podgate added: the collision check reads it); on a pod that belongs to an
 * environment, identities of no environment (controllers, admins) may change
 * anything but its labels.
 *
 * Subresources are judged the same way: pods/status (the status strategy keeps label
 * changes) and pods/ephemeralcontainers carry the pod; an eviction deletes the pod
 * without a DELETE review, so pods/eviction is judged as a delete of the pod the cache
 * knows by that name. The kubelet, controllers and autoscalers are identities of no
 * environment: their status updates and evictions pass.
 */
const schema = ruleSchema('kpoOwnership', "Stops one environment from modifying, relabelling or deleting another environment's KPO pods.", {});

function validate(airflow: Airflow, input: RuleInput): RuleResult {
  const { request } = input;
  if (groupKind(request.kind) === 'policy/Eviction') return judgeEviction(airflow, input);
  if (request.operation === 'CREATE') return skip();
  const before = stringMapAt(request.oldObject, 'metadata', 'labels');
  const after = request.operation === 'UPDATE' ? stringMapAt(request.object, 'metadata', 'labels') : undefined;
  const owner = before.get(airflow.environmentKey);
  const wasKpo = airflow.isKpoPod(before);
  const isKpo = after !== undefined && airflow.isKpoPod(after);
  if (!wasKpo && !isKpo && owner === undefined && after?.get(airflow.environmentKey) === undefined) return skip();
  if (airflow.isExempt(request.userInfo)) return pass();

  const user = request.userInfo.username ?? '(no username)';
  const actor = airflow.environmentOf(request.userInfo);
  const findings: string[] = [];
  const hints: string[] = [];
  if (after !== undefined) {
    const relabel = environmentLabelChange(airflow, owner, after.get(airflow.environmentKey));
    if (relabel !== undefined) {
      findings.push(relabel);
      hints.push('The environment label records which Airflow installation created the pod; only the identities exempted in the policy may change it.');
    } else if (owner !== undefined && actor === undefined && (wasKpo || isKpo)) {
      const changed = changedLabels(before, after);
      if (changed.length > 0) {
        findings.push(`the update changes its labels (${changed.join(', ')}), and ${user} is of no environment`);
        hints.push(`The labels of a KubernetesPodOperator pod decide which task's lookup finds it; only environment ${owner}'s identities (or an exempt one) may change them.`);
      }
    }
    const record = injectedRecordChange(airflow, request.oldObject, request.object);
    if (record !== undefined) {
      findings.push(record);
      hints.push(`podgate lists in ${airflow.injectedKey} the labels it added itself, so the collision check knows which labels the operator's lookup selects on (editing it can hide a collision); only the identities exempted in the policy may change it.`);
    }
  }
  if (owner !== undefined && actor !== undefined && actor !== owner) {
    const verb = request.operation === 'DELETE' ? 'delete' : 'modify';
    findings.push(`it belongs to environment ${owner}, and ${user} (environment ${actor}) may not ${verb} it`);
    hints.push(reattachHint(airflow, actor, owner));
  }
  if (findings.length === 0) return pass();
  // Counted as a cross-environment attempt only when it is one: an environment's own identity
  // removing its own pod's label is refused, but is not another environment reaching in.
  const environment = actor ?? 'none';
  const owned = owner ?? 'none';
  if (environment === owned) return fail(findings, hints.join(' '));
  return fail(findings, hints.join(' '), { counter: { counter: 'crossEnvironment', environment, owner: owned, operation: request.operation } });
}

/** An eviction names the pod; the pod itself comes from the cache of live KPO pods. */
function judgeEviction(airflow: Airflow, { request, cluster }: RuleInput): RuleResult {
  const name = request.name ?? '';
  const owner = cluster.kpoPods.byName(request.namespace ?? '', name)?.labels.get(airflow.environmentKey);
  if (owner === undefined) return skip();
  const actor = airflow.environmentOf(request.userInfo);
  if (actor === undefined || actor === owner || airflow.isExempt(request.userInfo)) return pass();
  const user = request.userInfo.username ?? '(no username)';
  return fail([`pod ${name} belongs to environment ${owner}, and ${user} (environment ${actor}) may not evict it`], reattachHint(airflow, actor, owner), {
    counter: { counter: 'crossEnvironment', environment: actor, owner, operation: 'DELETE' },
  });
}

function reattachHint(airflow: Airflow, actor: string, owner: string): string {
  return `The likely cause: a ${actor} task re-attached to ${owner}'s pod because both environments run the same DAG with the same labels. Pause the DAG in one environment, and set ${airflow.environmentKey} in the operator's labels so each environment only finds its own pods.`;
}

function environmentLabelChange(airflow: Airflow, owner: string | undefined, next: string | undefined): string | undefined {
  if (next === owner) return undefined;
  if (next === undefined) return `the update removes its label ${airflow.environmentKey}="${owner ?? ''}"`;
  return owner === undefined ? `the update sets its label ${airflow.environmentKey} to "${next}"` : `the update changes its label ${airflow.environmentKey} from "${owner}" to "${next}"`;
}

/**
 * The injected-labels annotation is podgate's record of which labels it added at CREATE (no
 * webhook of podgate's writes it later): an edit that removes the environment key from it
 * makes an unscoped environment's pod look scoped, and the collision check would then let
 * another environment's pod of the same task in. Its owner may not edit it either.
 */
function injectedRecordChange(airflow: Airflow, before: unknown, after: unknown): string | undefined {
  const was = stringAt(before, 'metadata', 'annotations', airflow.injectedKey);
  const now = stringAt(after, 'metadata', 'annotations', airflow.injectedKey);
  if (was === now) return undefined;
  if (now === undefined) return `the update removes its annotation ${airflow.injectedKey} (it was ${quoted(was)})`;
  return was === undefined ? `the update sets its annotation ${airflow.injectedKey} to ${quoted(now)}` : `the update changes its annotation ${airflow.injectedKey} from ${quoted(was)} to ${quoted(now)}`;
}

/** Keys whose value differs between the two label maps (added, removed or changed): the first three, then a count. */
function changedLabels(before: ReadonlyMap<string, string>, after: ReadonlyMap<string, string>): string[] {
  const changed: string[] = [];
  let more = 0;
  forEachChangedLabel(before, after, (key) => {
    if (changed.length < 3) changed.push(key);
    else more += 1;
    return true;
  });
  return more > 0 ? [...changed, `${more} more`] : changed;
}

export const kpoOwnership = defineRuleKind({
  kind: 'kpoOwnership',
  schema,
  build(_config, { airflow }) {
    if (airflow === undefined) return missingAirflow('kpoOwnership');
    // Pod UPDATEs and DELETEs, and evictions (a CREATE of pods/eviction, whose object is an Eviction).
    return {
      kinds: ['Pod', 'policy/Eviction'],
      operations: ['CREATE', 'UPDATE', 'DELETE'],
      subresources: ['status', 'ephemeralcontainers', 'eviction'],
      watches: ['kpoPods'],
      validate: (input) => validate(airflow, input),
    };
  },
});
