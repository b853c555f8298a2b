import { stringMapAt } from '../../admission/json.ts';
import { missingAirflow, type Airflow } from '../airflow.ts';
import { defineRuleKind, fail, pass, ruleSchema, skip, type RuleInput, type RuleResult } from '../rule.ts';

/**
 * kpoOwnership (validating, UPDATE and DELETE): one environment may not modify,
 * relabel or delete another environment's KubernetesPodOperator pod. This is
 * what stops the cleanup of a task that re-attached to the other environment's
 * pod from deleting that running pod (incident 1). Identities that match no
 * environment (controllers, the kubelet, admins) are not restricted, but only
 * exempt identities may change or remove the environment label.
 */
const schema = ruleSchema('kpoOwnership', "Stops one environment from modifying, relabelling or deleting another environment's KPO pods.", {});

function validate(airflow: Airflow, { request }: RuleInput): RuleResult {
  const before = stringMapAt(request.oldObject, 'metadata', 'labels');
  if (!airflow.isKpoPod(before)) return skip();
  const owner = before.get(airflow.environmentKey);
  const user = request.userInfo.username ?? '(no username)';
  const actor = airflow.environmentOf(request.userInfo);
  const findings: string[] = [];
  const hints: string[] = [];

  if (request.operation === 'UPDATE' && !airflow.isExempt(request.userInfo)) {
    const after = stringMapAt(request.object, 'metadata', 'labels').get(airflow.environmentKey);
    if (after !== owner) {
      findings.push(
        after === undefined
          ? `the update removes its label ${airflow.environmentKey}="${owner ?? ''}"`
          : `the update ${owner === undefined ? 'sets' : 'changes'} its label ${airflow.environmentKey} ${owner === undefined ? '' : `from "${owner}" `}to "${after}"`,
      );
      hints.push('The environment label records which Airflow installation created the pod; only the identities exempted in the policy may change it.');
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

export const kpoOwnership = defineRuleKind({
  kind: 'kpoOwnership',
  schema,
  build(_config, { airflow }) {
    if (airflow === undefined) return missingAirflow('kpoOwnership');
    // The engine calls it for Pod UPDATEs and DELETEs only (kinds, operations).
    return { kinds: ['Pod'], operations: ['UPDATE', 'DELETE'], validate: (input) => validate(airflow, input) };
  },
});
