import { Type, type Static } from '@sinclair/typebox';
import { at, jsonEqual, stringMapAt } from '../../lib/json.ts';
import type { UserInfo } from '../../admission/review.ts';
import { workloadOf, WORKLOAD_KINDS } from '../workload.ts';
import { injectedAnnotation, injectedKeys, missingAirflow, type Airflow } from '../airflow.ts';
import { labelValueProblem } from '../selector.ts';
import { addToMetadataMap } from '../metadataPatch.ts';
import { CheckActionSchema, defineRuleKind, fail, pass, ruleSchema, skip, type Check, type RuleInput, type RuleResult } from '../rule.ts';

/**
 * kpoEnvironment (mutating): label every KubernetesPodOperator pod with the
 * environment that created it and the cluster id (incident 1: two Airflow
 * installations' identical pods could not be told apart), refuse a pod whose
 * environment label names another environment than its creator's, and report
 * when the operator's own lookups are not scoped to its environment.
 */

const schema = ruleSchema('kpoEnvironment', "Labels KPO pods with their creator's environment and the cluster id; refuses a label naming another environment.", {
  scopedLookups: Type.Optional(
    CheckActionSchema(
      'warn',
      "When the operator's labels lack the environment label (podgate had to add it), KPO's lookups are not scoped to one environment: deny, warn (default), audit or admit silently.",
    ),
  ),
  unknownCreator: Type.Optional(CheckActionSchema('warn', 'A KPO pod whose creator matches no environment: deny, warn (default: admit with a warning), audit or admit.')),
  unknownCreatorLabel: Type.Optional(Type.String({ minLength: 1, maxLength: 63, description: 'Label such pods with this environment value instead of leaving them unlabelled.' })),
});
type Config = Static<typeof schema>;

/** The two checks whose severity the rule's parameters set; every other finding takes the rule's action. */
interface Checks {
  readonly scopedLookups: Check;
  readonly unknownCreator: Check;
}

function checksOf(config: Config): Checks {
  return {
    scopedLookups: { name: 'scopedLookups', action: config.scopedLookups ?? 'warn' },
    unknownCreator: { name: 'unknownCreator', action: config.unknownCreator ?? 'warn' },
  };
}

function labelsToAdd(airflow: Airflow, labels: ReadonlyMap<string, string>, environment: string): Record<string, string> {
  const add: Record<string, string> = {};
  if (!labels.has(airflow.environmentKey)) add[airflow.environmentKey] = environment;
  if (!labels.has(airflow.clusterIdKey)) add[airflow.clusterIdKey] = airflow.clusterId;
  return add;
}

function labelPatch(airflow: Airflow, object: unknown, add: Record<string, string>) {
  const keys = Object.keys(add);
  if (keys.length === 0) return [];
  return [...addToMetadataMap(object, [], 'labels', add), ...addToMetadataMap(object, [], 'annotations', injectedAnnotation(airflow, object, keys))];
}

function mutate(config: Config, checks: Checks, airflow: Airflow, { request, object }: RuleInput): RuleResult {
  const labels = stringMapAt(object, 'metadata', 'labels');
  if (!airflow.isKpoPod(labels)) return skip();
  const user = request.userInfo.username ?? '(no username)';
  const environment = airflow.environmentOf(request.userInfo);

  if (environment === undefined) {
    const foreign = foreignClaim(config, airflow, labels, request.userInfo);
    if (foreign !== undefined) return foreign;
    const label = config.unknownCreatorLabel;
    const patch = label === undefined ? [] : labelPatch(airflow, object, labelsToAdd(airflow, labels, label));
    return fail(
      [`its creator ${user} matches no environment in the policy, so podgate cannot tell which Airflow installation it belongs to`],
      "Create KubernetesPodOperator pods with your Airflow installation's service account, or ask your platform team to add this identity to one of the environments (airflow.environments) in podgate's policy.",
      { patch, check: checks.unknownCreator },
    );
  }

  const claimed = labels.get(airflow.environmentKey);
  const wrongClaim = claimCheck(airflow, labels, environment, user);
  if (wrongClaim !== undefined) return wrongClaim;

  const add = labelsToAdd(airflow, labels, environment);
  const patch = labelPatch(airflow, object, add);
  // The operator's lookups are scoped only if it set the label itself (not podgate, now or on an earlier invocation).
  const injectedBefore = injectedKeys(airflow, object).has(airflow.environmentKey);
  if (claimed !== undefined || injectedBefore) return pass(patch);
  return fail(
    [`its labels do not include ${airflow.environmentKey}, so KubernetesPodOperator's lookups of this task's pod are not scoped to environment ${environment} (podgate added the label to the pod)`],
    `Add ${airflow.environmentKey}: "${environment}" to the operator's labels (labels= or an Airflow cluster policy), so another environment running the same DAG never finds or deletes this pod.`,
    { patch, check: checks.scopedLookups },
  );
}

/**
 * The labels a pod's creator cannot claim: another environment than its own, another
 * cluster. Checked by both webhooks: when the mutating call fails open (a restart, a
 * timeout), the validating one still refuses the claim.
 */
function claimCheck(airflow: Airflow, labels: ReadonlyMap<string, string>, environment: string, user: string): RuleResult | undefined {
  const claimed = labels.get(airflow.environmentKey);
  if (claimed !== undefined && claimed !== environment) {
    return fail(
      [`label ${airflow.environmentKey}="${claimed}" names environment ${claimed}, but its creator ${user} is environment ${environment}`],
      `A DAG copied from another environment keeps that environment's labels; set ${airflow.environmentKey} to "${environment}" in the operator's labels, or remove it.`,
      { counter: { counter: 'crossEnvironment', environment, owner: claimed, operation: 'CREATE' } },
    );
  }
  const claimedCluster = labels.get(airflow.clusterIdKey);
  if (claimedCluster !== undefined && claimedCluster !== airflow.clusterId) {
    return fail(
      [`label ${airflow.clusterIdKey}="${claimedCluster}" names another cluster; this is cluster ${airflow.clusterId}`],
      `Set ${airflow.clusterIdKey} to "${airflow.clusterId}" in the operator's labels, or remove it and let podgate set it.`,
    );
  }
  return undefined;
}

/**
 * An environment label on a pod (or pod template) whose creator matches no environment:
 * only the label podgate itself gives such pods (unknownCreatorLabel) may stay. Exempt
 * identities may set any; controllers stamp pods out of templates that were judged when
 * their creator wrote them (validateClaims), so their pods keep what the template says.
 */
function foreignClaim(config: Config, airflow: Airflow, labels: ReadonlyMap<string, string>, user: UserInfo): RuleResult | undefined {
  const claimed = labels.get(airflow.environmentKey);
  if (claimed === undefined || claimed === config.unknownCreatorLabel || airflow.isExempt(user) || airflow.isController(user)) return undefined;
  const name = user.username ?? '(no username)';
  return fail(
    [`label ${airflow.environmentKey}="${claimed}" claims environment ${claimed}, but its creator ${name} matches no environment in the policy`],
    `Only environment ${claimed}'s identities may create pods labelled so: remove the label, or ask your platform team to add ${name} to environment ${claimed} in the podgate policy.`,
    { counter: { counter: 'crossEnvironment', environment: 'none', owner: claimed, operation: 'CREATE' } },
  );
}

/**
 * The validating webhook's half: the claims alone (labelling and the scoping report are
 * the mutating webhook's), on Pod CREATEs and on controllers whose pod template brings
 * KPO pods: on CREATE, and on an UPDATE that changes the template's labels.
 */
function validateClaims(config: Config, airflow: Airflow, { request, object }: RuleInput): RuleResult {
  const workload = workloadOf(request, object);
  if (workload === undefined) return skip();
  if (workload.kind === 'Pod' ? request.operation !== 'CREATE' : !templateLabelsChange(request, workload.podPath)) return skip();
  const labels = workload.podLabels;
  if (!airflow.isKpoPod(labels)) return skip();
  const environment = airflow.environmentOf(request.userInfo);
  if (environment === undefined) return foreignClaim(config, airflow, labels, request.userInfo) ?? pass();
  return claimCheck(airflow, labels, environment, request.userInfo.username ?? '(no username)') ?? pass();
}

/**
 * The audit's half, for a live KPO pod, whose creator the object does not record: what its
 * labels say. A pod without the environment label was created before podgate labelled pods
 * or while its mutating webhook failed open; one whose label podgate added (its
 * injected-labels annotation lists it) comes from an operator whose lookups are not scoped.
 */
function auditLivePod(checks: Checks, airflow: Airflow, environments: ReadonlySet<string>, { object }: RuleInput): RuleResult {
  const labels = stringMapAt(object, 'metadata', 'labels');
  if (!airflow.isKpoPod(labels)) return skip();
  const claimed = labels.get(airflow.environmentKey);
  if (claimed === undefined) {
    return fail(
      [`it has no ${airflow.environmentKey} label (it was created before podgate labelled KubernetesPodOperator pods, or while podgate's mutating webhook failed open), so no one can tell which Airflow installation's it is and it collides with every environment's pods of the same task`],
      "It goes when its task ends; if new pods keep arriving unlabelled, look at podgate's mutating webhook (the API server's webhook metrics, podgate_admission_requests_total).",
    );
  }
  if (!environments.has(claimed)) {
    return fail(
      [`label ${airflow.environmentKey}="${claimed}" names no environment in the policy (${listed(environments)})`],
      `Add environment ${claimed} to airflow.environments in podgate's policy, or find out who labels pods so.`,
    );
  }
  const claimedCluster = labels.get(airflow.clusterIdKey);
  if (claimedCluster !== undefined && claimedCluster !== airflow.clusterId) {
    return fail([`label ${airflow.clusterIdKey}="${claimedCluster}" names another cluster; this is cluster ${airflow.clusterId}`], `Set ${airflow.clusterIdKey} to "${airflow.clusterId}" in the operator's labels, or remove it and let podgate set it.`);
  }
  if (!injectedKeys(airflow, object).has(airflow.environmentKey)) return pass();
  return fail(
    [`environment ${claimed}'s operator does not set ${airflow.environmentKey} in its labels (podgate added it to this pod), so KubernetesPodOperator's lookups of this task's pod are not scoped to environment ${claimed}`],
    `Add ${airflow.environmentKey}: "${claimed}" to the operator's labels in environment ${claimed} (the podgate_airflow cluster policy does it for every task), so another environment running the same DAG never finds or deletes its pods.`,
    { check: checks.scopedLookups },
  );
}

/** At most five names, then how many more: a message does not grow with the policy. */
function listed(names: ReadonlySet<string>): string {
  const all = [...names];
  return all.length > 5 ? `${all.slice(0, 5).join(', ')} and ${all.length - 5} more` : all.join(', ');
}

function templateLabelsChange(request: RuleInput['request'], podPath: readonly string[]): boolean {
  if (request.operation === 'CREATE') return true;
  return request.operation === 'UPDATE' && !jsonEqual(at(request.object, ...podPath, 'metadata', 'labels'), at(request.oldObject, ...podPath, 'metadata', 'labels'));
}

export const kpoEnvironment = defineRuleKind({
  kind: 'kpoEnvironment',
  schema,
  build(config, { airflow }) {
    if (airflow === undefined) return missingAirflow('kpoEnvironment');
    const labelProblem = config.unknownCreatorLabel === undefined ? undefined : labelValueProblem(config.unknownCreatorLabel, ['unknownCreatorLabel']);
    if (labelProblem) return { problems: [labelProblem] };
    const checks = checksOf(config);
    // The values a live pod's environment label may have: an environment's, or the one given to pods of unknown creators.
    const known: ReadonlySet<string> = new Set([...airflow.environments, ...(config.unknownCreatorLabel === undefined ? [] : [config.unknownCreatorLabel])]);
    // Labels Pods on CREATE (patching a controller's template would fight `helm upgrade`); judges the claims of Pods and of the controllers that stamp them out.
    return {
      kinds: WORKLOAD_KINDS,
      operations: ['CREATE', 'UPDATE'],
      mutate: { kinds: ['Pod'], operations: ['CREATE'], evaluate: (input) => mutate(config, checks, airflow, input) },
      validate: (input) => validateClaims(config, airflow, input),
      audit: { kinds: ['Pod'], operations: ['CREATE'], evaluate: (input) => auditLivePod(checks, airflow, known, input) },
    };
  },
});
