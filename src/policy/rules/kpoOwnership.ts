import { stringMapAt } from '../../admission/json.ts';
import { missingAirflow, type Airflow } from '../airflow.ts';
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
 * may change or remove the environment label; on a pod that belongs to an
 * environment, identities of no environment (controllers, admins) may change
 * anything but its labels.
 */
const schema = ruleSchema('kpoOwnership', "Stops one environment from modifying, relabelling or deleting another environment's KPO pods.", {});

function validate(airflow: Airflow, { request }: RuleInput): RuleResult {
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
  }
  if (owner !== undefined && actor !== undefined && actor !== owner) {
    const verb = request.operation === 'DELETE' ? 'delete' : 'modify';
    findings.push(`it belongs to environment ${owner}, and ${user} (environment ${actor}) may not ${verb} it`);
    hints.push(
      `The likely cause: a ${actor} task re-attached to ${owner}'s pod because both environments run the same DAG with the same labels. Pause the DAG in one environment, and set ${airflow.environmentKey} in the operator's labels so each environment only finds its own pods.`,
    );
  }
  const tags = { environment: actor ?? 'none', owner: owner ?? 'none', operation: request.operation };
  return findings.length === 0 ? pass() : fail(findings, hints.join(' '), { tags });
}

function environmentLabelChange(airflow: Airflow, owner: string | undefined, next: string | undefined): string | undefined {
  if (next === owner) return undefined;
  if (next === undefined) return `the update removes its label ${airflow.environmentKey}="${owner ?? ''}"`;
  return owner === undefined ? `the update sets its label ${airflow.environmentKey} to "${next}"` : `the update changes its label ${airflow.environmentKey} from "${owner}" to "${next}"`;
}

/** Keys whose value differs between the two label maps (added, removed or changed): the first three, then a count. */
function changedLabels(before: ReadonlyMap<string, string>, after: ReadonlyMap<string, string>): string[] {
  const changed: string[] = [];
  let more = 0;
  const note = (key: string) => {
    if (changed.length < 3) changed.push(key);
    else more += 1;
  };
  for (const [key, value] of before) if (after.get(key) !== value) note(key);
  for (const key of after.keys()) if (!before.has(key)) note(key);
  return more > 0 ? [...changed, `${more} more`] : changed;
}

export const kpoOwnership = defineRuleKind({
  kind: 'kpoOwnership',
  schema,
  build(_config, { airflow }) {
    if (airflow === undefined) return missingAirflow('kpoOwnership');
    // The engine calls it for Pod UPDATEs and DELETEs only (kinds, operations).
    return { kinds: ['Pod'], operations: ['UPDATE', 'DELETE'], validate: (input) => validate(airflow, input) };
  },
});
