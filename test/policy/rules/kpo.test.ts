import t from 'tap';
import jsonpatch from 'fast-json-patch';
import { auditObject } from '../../../src/engine/audit.ts';
import { decide } from '../../../src/engine/decide.ts';
import { EMPTY_CLUSTER, type ClusterState, type KpoPod } from '../../../src/policy/cluster.ts';
import { staticKpoPods } from '../../../src/kube/kpoIndex.ts';
import { compilePolicy } from '../../../src/policy/registry.ts';
import type { Policy } from '../../../src/policy/policy.ts';
import { makeController, makeRequest } from '../../helpers/builders.ts';
import { AIRFLOW_SECTION, ALPHA, kpoLabels, makeKpoPod, PRODUCTION } from '../../helpers/kpo.ts';

type Json = Record<string, unknown>;

function policy(rules: Json[], airflow: Json = AIRFLOW_SECTION): Policy {
  const result = compilePolicy({ apiVersion: 'podgate.io/v1alpha1', kind: 'Policy', airflow, rules });
  if (!result.ok) throw new Error(JSON.stringify(result.problems));
  return result.policy;
}
const labelRule = (extra: Json = {}) => ({ name: 'environment-labels', kind: 'kpoEnvironment', ...extra });
const collisionRule = { name: 'kpo-collisions', kind: 'kpoCollisionGuard' };
const ownershipRule = { name: 'kpo-ownership', kind: 'kpoOwnership' };

const apply = (object: Json, patch: readonly unknown[]) => jsonpatch.applyPatch(structuredClone(object), structuredClone(patch) as jsonpatch.Operation[], true, false).newDocument;
const labelsOf = (pod: Json) => (pod['metadata'] as { labels?: Record<string, string> }).labels;

/** The pod as both webhooks leave it: mutate, apply the patch, validate. */
function admit(pod: Json, who: { username: string; groups: string[]; extra?: Record<string, string[]> }, rules: Json[], cluster: ClusterState = EMPTY_CLUSTER) {
  const p = policy(rules);
  const mutation = decide('mutate', makeRequest(pod, who), p, cluster);
  const patched = mutation.allowed ? apply(pod, mutation.patch) : pod;
  const validation = mutation.allowed ? decide('validate', makeRequest(patched, who), p, cluster) : mutation;
  return { mutation, validation, patched };
}

t.test('kpoEnvironment: labels a KPO pod with its creator’s environment and the cluster id', async (t) => {
  const pod = makeKpoPod();
  const { mutation, patched } = admit(pod, ALPHA, [labelRule()]);
  t.equal(mutation.allowed, true);
  t.same(labelsOf(patched), { ...labelsOf(pod), 'podgate.io/environment': 'alpha', 'podgate.io/cluster-id': 'gke-shared-1' });
  t.same((patched['metadata'] as Json)['annotations'], { 'podgate.io/injected-labels': 'podgate.io/environment,podgate.io/cluster-id' });
  t.same(mutation.warnings, [
    'Pod airflow/export-action-log-4devg7t1: its labels do not include podgate.io/environment, so KubernetesPodOperator\'s lookups of this task\'s pod are not scoped to environment alpha (podgate added the label to the pod) (rule environment-labels). Add podgate.io/environment: "alpha" to the operator\'s labels (labels= or an Airflow cluster policy), so another environment running the same DAG never finds or deletes this pod.',
  ]);
  const again = decide('mutate', makeRequest(patched, ALPHA), policy([labelRule()]), EMPTY_CLUSTER);
  t.same([again.patch, again.warnings], [[], []], 'reinvocation: no patch, no second warning');

  const prod = admit(makeKpoPod(), PRODUCTION, [labelRule()]);
  t.equal(labelsOf(prod.patched)?.['podgate.io/environment'], 'production', 'recognised by the IAM role in userInfo.extra');
});

t.test('kpoEnvironment: a service account is recognised by its namespace only in the exact system:serviceaccount:<ns>:<name> form', async (t) => {
  const environmentLabel = (username: string) => labelsOf(admit(makeKpoPod(), { username, groups: [] }, [labelRule()]).patched)?.['podgate.io/environment'];
  t.equal(environmentLabel('system:serviceaccount:airflow-alpha:airflow-worker'), 'alpha');
  for (const username of ['system:serviceaccount:airflow-alpha', 'system:serviceaccount:airflow-alpha:', 'system:serviceaccount::airflow-worker', 'system:serviceaccount:airflow-alpha:worker:extra', 'system:serviceaccounts:airflow-alpha:airflow-worker', 'x-system:serviceaccount:airflow-alpha:airflow-worker']) {
    t.equal(environmentLabel(username), undefined, username);
  }
});

t.test('kpoEnvironment: a pod without any labels map gets one', async (t) => {
  const pod = makeKpoPod();
  const labels = labelsOf(pod) ?? {};
  const p = policy([labelRule()], { ...AIRFLOW_SECTION, kpoPods: { matchLabels: {} } });
  delete (pod['metadata'] as Json)['labels'];
  const decision = decide('mutate', makeRequest(pod, ALPHA), p, EMPTY_CLUSTER);
  t.same(labelsOf(apply(pod, decision.patch)), { 'podgate.io/environment': 'alpha', 'podgate.io/cluster-id': 'gke-shared-1' });
  t.ok(Object.keys(labels).length > 0);
});

t.test('kpoEnvironment: the operator set the label itself: no patch for it, no warning; a mismatch is refused', async (t) => {
  const scoped = makeKpoPod({ operatorLabels: { 'podgate.io/environment': 'alpha', 'podgate.io/cluster-id': 'gke-shared-1' } });
  const ok = decide('mutate', makeRequest(scoped, ALPHA), policy([labelRule()]), EMPTY_CLUSTER);
  t.same([ok.allowed, ok.patch, ok.warnings], [true, [], []]);

  const copied = makeKpoPod({ operatorLabels: { 'podgate.io/environment': 'alpha' } });
  const denied = decide('mutate', makeRequest(copied, PRODUCTION), policy([labelRule()]), EMPTY_CLUSTER);
  t.equal(
    denied.denial?.message,
    'Pod airflow/export-action-log-4devg7t1: label podgate.io/environment="alpha" names environment alpha, but its creator mwaa-service is environment production (rule environment-labels). A DAG copied from another environment keeps that environment\'s labels; set podgate.io/environment to "production" in the operator\'s labels, or remove it.',
  );
  const otherCluster = decide('mutate', makeRequest(makeKpoPod({ operatorLabels: { 'podgate.io/cluster-id': 'eks-1' } }), ALPHA), policy([labelRule()]), EMPTY_CLUSTER);
  t.match(otherCluster.denial?.message, /label podgate\.io\/cluster-id="eks-1" names another cluster; this is cluster gke-shared-1/);
});

t.test('kpoEnvironment: scopedLookups and unknownCreator severities', async (t) => {
  const strict = decide('mutate', makeRequest(makeKpoPod(), ALPHA), policy([labelRule({ scopedLookups: 'deny' })]), EMPTY_CLUSTER);
  t.equal(strict.allowed, false, 'scopedLookups: deny once Airflow sets the label');
  const quiet = decide('mutate', makeRequest(makeKpoPod(), ALPHA), policy([labelRule({ scopedLookups: 'admit' })]), EMPTY_CLUSTER);
  t.same([quiet.allowed, quiet.warnings.length, quiet.patch.length > 0], [true, 0, true]);

  const admin = { username: 'jane@example.com', groups: ['system:authenticated'] };
  const unknown = decide('mutate', makeRequest(makeKpoPod(), admin), policy([labelRule()]), EMPTY_CLUSTER);
  t.same([unknown.allowed, unknown.patch], [true, []], 'admitted unlabelled by default');
  t.match(unknown.warnings[0], /its creator jane@example\.com matches no environment in the policy/);
  const refused = decide('mutate', makeRequest(makeKpoPod(), admin), policy([labelRule({ unknownCreator: 'deny' })]), EMPTY_CLUSTER);
  t.equal(refused.allowed, false);
  t.match(refused.allowed ? '' : refused.denial.message, /Create KubernetesPodOperator pods with your Airflow installation's service account, or ask your platform team to add this identity to one of the environments \(airflow\.environments\) in podgate's policy\.$/, 'the developer is told who to ask, not to edit the policy');
  const fixed = decide('mutate', makeRequest(makeKpoPod(), admin), policy([labelRule({ unknownCreator: 'admit', unknownCreatorLabel: 'unattributed' })]), EMPTY_CLUSTER);
  t.equal(labelsOf(apply(makeKpoPod(), fixed.patch))?.['podgate.io/environment'], 'unattributed');
  t.same(fixed.warnings, []);
  const worker = makeKpoPod();
  (labelsOf(worker) ?? {})['airflow-worker'] = '42';
  t.same(decide('mutate', makeRequest(worker, ALPHA), policy([labelRule()]), EMPTY_CLUSTER).patch, [], 'KubernetesExecutor worker pods are not KPO pods');
});

const live = (pod: Json, extra: Record<string, string> = {}): KpoPod => {
  const metadata = pod['metadata'] as { name: string; namespace: string; labels: Record<string, string> };
  return { name: metadata.name, namespace: metadata.namespace, labels: new Map(Object.entries({ ...metadata.labels, ...extra })) };
};

t.test('the incident replayed: alpha’s pod labelled; production’s identical pod refused until alpha’s is checked or gone', async (t) => {
  const rules = [labelRule(), collisionRule, ownershipRule];
  const alphaTask = admit(makeKpoPod({ suffix: '4devg7t1' }), ALPHA, rules);
  t.equal(alphaTask.validation.allowed, true, 'alpha first: admitted');
  const alphaPod = alphaTask.patched;
  const cluster = (pods: KpoPod[]): ClusterState => ({ ...EMPTY_CLUSTER, kpoPods: staticKpoPods(pods) });

  const prod = admit(makeKpoPod({ suffix: 'x8k2m9qa' }), PRODUCTION, rules, cluster([live(alphaPod)]));
  t.equal(prod.validation.allowed, false);
  t.equal(
    prod.validation.denial?.message,
    'Pod airflow/export-action-log-x8k2m9qa: the operator\'s lookup for this task (dag_id=foo-bar-dag-id, task_id=foo-bar-task-id, run_id=scheduled__2023-03-08T0130000000-77fa57adf) also matches live pod airflow/export-action-log-4devg7t1 of environment alpha; KubernetesPodOperator would find both and fail ("More than one pod running with labels"), or re-attach to alpha\'s pod and delete it (rule kpo-collisions). Pause the DAG in one environment, or set podgate.io/environment: "production" in the operator\'s labels (labels= or an Airflow cluster policy) so each environment only looks up its own pods.',
  );
  const retry = admit(makeKpoPod({ suffix: 'q7w1e3r5', tryNumber: 2 }), PRODUCTION, rules, cluster([live(alphaPod)]));
  t.equal(retry.validation.allowed, false, 'the retry (try_number 2) is still refused while alpha’s pod is live');
  const checked = admit(makeKpoPod({ suffix: 'q7w1e3r5', tryNumber: 2 }), PRODUCTION, rules, cluster([live(alphaPod, { already_checked: 'True' })]));
  t.equal(checked.validation.allowed, true, 'allowed once alpha’s pod is already_checked');
  t.equal(admit(makeKpoPod({ suffix: 'q7w1e3r5', tryNumber: 2 }), PRODUCTION, rules, cluster([])).validation.allowed, true, 'allowed once it is gone');

  const scoped = admit(makeKpoPod({ suffix: 'z1', operatorLabels: { 'podgate.io/environment': 'production' } }), PRODUCTION, rules, cluster([live(alphaPod)]));
  t.same([scoped.validation.allowed, scoped.mutation.warnings], [true, []], "with the label in the operator's labels, lookups are scoped: no collision, no warning");
  const otherTask = admit(makeKpoPod({ suffix: 'z2', taskId: 'another-task' }), PRODUCTION, rules, cluster([live(alphaPod)]));
  t.equal(otherTask.validation.allowed, true, 'another task is no collision');
  const mapped = admit(makeKpoPod({ suffix: 'z3', mapIndex: 3 }), PRODUCTION, rules, cluster([live(makeKpoPod({ mapIndex: 2 }), { 'podgate.io/environment': 'alpha' })]));
  t.equal(mapped.validation.allowed, true, 'another map index is no collision');
});

t.test('a cached pod whose labels the cache cut short counts a lookup label it lacks as there', async (t) => {
  const rules = [labelRule(), collisionRule];
  const cluster = (pod: KpoPod): ClusterState => ({ ...EMPTY_CLUSTER, kpoPods: staticKpoPods([pod]) });
  const alphaPod = live(makeKpoPod({ suffix: '4devg7t1' }), { 'podgate.io/environment': 'alpha' });
  // Production's operator selects on a label alpha's cached pod does not show.
  const prodTask = () => makeKpoPod({ suffix: 'x8k2m9qa', operatorLabels: { team: 'data' } });
  t.equal(admit(prodTask(), PRODUCTION, rules, cluster(alphaPod)).validation.allowed, true, 'a complete cached pod without team=data does not match the lookup');
  t.equal(admit(prodTask(), PRODUCTION, rules, cluster({ ...alphaPod, partialLabels: true })).validation.allowed, false, 'a partial one might carry it: refused, the safe side');
  const manyClashes = staticKpoPods(Array.from({ length: 50 }, (_, i) => live(makeKpoPod({ suffix: `p${i}` }), { 'podgate.io/environment': 'alpha' })));
  const message = admit(makeKpoPod({ suffix: 'x8k2m9qa' }), PRODUCTION, rules, { ...EMPTY_CLUSTER, kpoPods: manyClashes }).validation.denial?.message ?? '';
  t.match(message, /also matches live pod airflow\/export-action-log-p0, airflow\/export-action-log-p1, airflow\/export-action-log-p2 and 47 more of environment alpha/, 'fifty clashing pods: three named, the rest counted');
});

t.test('collision guard before the pod watch has synced', async (t) => {
  const rules = [labelRule(), collisionRule];
  const listing: ClusterState = { ...EMPTY_CLUSTER, kpoPods: { synced: false, withIdentity: () => [], byName: () => undefined } };
  const open = admit(makeKpoPod(), PRODUCTION, rules, listing);
  t.equal(open.validation.allowed, true, 'fails open by default');
  t.match(open.validation.warnings[0], /the collision check could not run: podgate has not finished listing the live KubernetesPodOperator pods yet/);
  const offline = admit(makeKpoPod(), PRODUCTION, rules, EMPTY_CLUSTER);
  t.match(offline.validation.warnings[0], /the collision check could not run: podgate runs without a watch of the cluster’s pods \(offline\), so it knows no live KubernetesPodOperator pods \(rule kpo-collisions\)\. The pod was admitted unchecked\.$/, 'offline (no watch at all), it says so rather than "not finished listing"');
  const closed = admit(makeKpoPod(), PRODUCTION, [labelRule(), { ...collisionRule, whileUnsynced: 'deny' }], listing);
  t.equal(closed.validation.allowed, false, 'or closed, as the policy says');
  t.match(closed.validation.denial?.message, /listing the live KubernetesPodOperator pods yet \(rule kpo-collisions\)\. Retry in a moment\.$/);
  const audited = admit(makeKpoPod(), PRODUCTION, [labelRule(), { ...collisionRule, whileUnsynced: 'audit' }]).validation;
  t.same([audited.allowed, audited.warnings], [true, []], 'audit: admitted without a word to the client');
  t.match(audited.reports.find((report) => report.rule === 'kpo-collisions'), { status: 'fail', action: 'audit', check: 'whileUnsynced' }, 'but reported, naming the check');
  const silent = admit(makeKpoPod(), PRODUCTION, [labelRule(), { ...collisionRule, whileUnsynced: 'admit' }]).validation;
  t.match(silent.reports.find((report) => report.rule === 'kpo-collisions'), { status: 'pass' }, 'admit: not even reported');
  t.same(silent.warnings, []);
});

t.test('kpoOwnership: one environment may not modify, relabel or delete the other’s pods', async (t) => {
  const p = policy([ownershipRule]);
  const alphaPod = makeKpoPod({ operatorLabels: { 'podgate.io/environment': 'alpha' } });
  const checked = structuredClone(alphaPod);
  (labelsOf(checked) ?? {})['already_checked'] = 'True';

  const prodDelete = decide('validate', makeRequest(alphaPod, { ...PRODUCTION, operation: 'DELETE' }), p, EMPTY_CLUSTER);
  t.equal(
    prodDelete.denial?.message,
    "Pod airflow/export-action-log-4devg7t1: it belongs to environment alpha, and mwaa-service (environment production) may not delete it (rule kpo-ownership). The likely cause: a production task re-attached to alpha's pod because both environments run the same DAG with the same labels. Pause the DAG in one environment, and set podgate.io/environment in the operator's labels so each environment only finds its own pods.",
  );
  t.equal(decide('validate', makeRequest(checked, { ...PRODUCTION, operation: 'UPDATE', oldObject: alphaPod }), p, EMPTY_CLUSTER).allowed, false, 'production patching alpha’s pod');
  t.equal(decide('validate', makeRequest(checked, { ...ALPHA, operation: 'UPDATE', oldObject: alphaPod }), p, EMPTY_CLUSTER).allowed, true, 'alpha’s own already_checked PATCH');
  t.equal(decide('validate', makeRequest(alphaPod, { ...ALPHA, operation: 'DELETE' }), p, EMPTY_CLUSTER).allowed, true, 'alpha’s own delete');
  const gc = { username: 'system:serviceaccount:kube-system:generic-garbage-collector', groups: ['system:serviceaccounts'] };
  t.equal(decide('validate', makeRequest(alphaPod, { ...gc, operation: 'DELETE' }), p, EMPTY_CLUSTER).allowed, true, 'controllers are not restricted');

  const relabelled = structuredClone(alphaPod);
  (labelsOf(relabelled) ?? {})['podgate.io/environment'] = 'production';
  t.match(decide('validate', makeRequest(relabelled, { ...ALPHA, operation: 'UPDATE', oldObject: alphaPod }), p, EMPTY_CLUSTER).denial?.message, /the update changes its label podgate\.io\/environment from "alpha" to "production"/);
  const unlabelled = structuredClone(alphaPod);
  delete (labelsOf(unlabelled) ?? {})['podgate.io/environment'];
  t.match(decide('validate', makeRequest(unlabelled, { ...gc, operation: 'UPDATE', oldObject: alphaPod }), p, EMPTY_CLUSTER).denial?.message, /the update removes its label podgate\.io\/environment="alpha"/, 'even for identities of no environment');
  const admin = { username: 'kubernetes-admin', groups: ['system:masters', 'system:authenticated'] };
  t.equal(decide('validate', makeRequest(unlabelled, { ...admin, operation: 'UPDATE', oldObject: alphaPod }), p, EMPTY_CLUSTER).allowed, true, 'exempt identities may');
});

t.test('policy problems in the airflow section and rules without it', async (t) => {
  const bad = compilePolicy({
    apiVersion: 'podgate.io/v1alpha1',
    kind: 'Policy',
    airflow: { clusterId: 'gke shared', labelPrefix: 'Podgate_IO', environments: [{ name: 'prod!', usernames: ['x'] }, { name: 'prod!', usernames: ['y'] }, { name: 'alpha' }] },
    rules: [],
  });
  t.same(bad, {
    ok: false,
    problems: [
      { path: ['airflow', 'clusterId'], message: '"gke shared" is not a valid label value (63 characters at most, letters, digits, - _ . inside, alphanumeric at both ends)' },
      { path: ['airflow', 'environments', 0, 'name'], message: '"prod!" is not a valid label value (63 characters at most, letters, digits, - _ . inside, alphanumeric at both ends)' },
      { path: ['airflow', 'environments', 1, 'name'], message: '"prod!" is not a valid label value (63 characters at most, letters, digits, - _ . inside, alphanumeric at both ends)' },
      { path: ['airflow', 'environments', 1, 'name'], message: 'duplicate environment "prod!"' },
      { path: ['airflow', 'environments', 2], message: 'environment "alpha" has no usernames, groups, serviceAccountNamespaces or extra to recognise its pods\' creator by' },
      { path: ['airflow', 'labelPrefix'], message: '"Podgate_IO" is not a DNS subdomain, as a label key prefix must be' },
    ],
  });
  const orphan = compilePolicy({ apiVersion: 'podgate.io/v1alpha1', kind: 'Policy', rules: [labelRule()] });
  t.same(orphan, { ok: false, problems: [{ path: ['rules', 0, 'kind'], message: 'kpoEnvironment needs the airflow section at the top of the policy (clusterId and environments)' }] });
});


t.test('the validating webhook re-checks the environment claim: a mutating call that failed open lets no wrong label in', async (t) => {
  const p = policy([labelRule()]);
  const claimsProduction = makeKpoPod({ operatorLabels: { 'podgate.io/environment': 'production' } });
  const validated = decide('validate', makeRequest(claimsProduction, ALPHA), p, EMPTY_CLUSTER);
  t.equal(
    validated.denial?.message,
    'Pod airflow/export-action-log-4devg7t1: label podgate.io/environment="production" names environment production, but its creator system:serviceaccount:airflow-alpha:airflow-worker is environment alpha (rule environment-labels). A DAG copied from another environment keeps that environment\'s labels; set podgate.io/environment to "alpha" in the operator\'s labels, or remove it.',
  );
  const ownLabel = makeKpoPod({ operatorLabels: { 'podgate.io/environment': 'alpha' } });
  t.same([decide('validate', makeRequest(ownLabel, ALPHA), p, EMPTY_CLUSTER).allowed, decide('validate', makeRequest(ownLabel, ALPHA), p, EMPTY_CLUSTER).warnings], [true, []], 'its own label passes, without repeating the mutating warnings');
  const otherCluster = makeKpoPod({ operatorLabels: { 'podgate.io/cluster-id': 'elsewhere' } });
  t.match(decide('validate', makeRequest(otherCluster, ALPHA), p, EMPTY_CLUSTER).denial?.message, /label podgate\.io\/cluster-id="elsewhere" names another cluster/);
});

t.test('userInfo.extra keys match case-insensitively (impersonation lower-cases them)', async (t) => {
  const impersonated = { username: 'platform-engineer', groups: ['system:authenticated'], extra: { canonicalarn: ['arn:aws:iam::111122223333:role/mwaa-prod-execution'] } };
  const { patched } = admit(makeKpoPod(), impersonated, [labelRule()]);
  t.equal(labelsOf(patched)?.['podgate.io/environment'], 'production');
});

t.test('kpoOwnership: no sequence of updates moves a pod out of its environment', async (t) => {
  const p = policy([ownershipRule]);
  const alphaPod = makeKpoPod({ operatorLabels: { 'podgate.io/environment': 'alpha' } });
  const withLabels = (pod: Json, change: (labels: Record<string, string>) => void): Json => {
    const copy = structuredClone(pod);
    change(labelsOf(copy) ?? {});
    return copy;
  };
  const hidden = withLabels(alphaPod, (l) => { l['airflow-worker'] = '1'; });
  const noKpoLabel = withLabels(alphaPod, (l) => { delete l['kubernetes_pod_operator']; });
  const update = (oldObject: Json, object: Json, who: typeof ALPHA) => decide('validate', makeRequest(object, { ...who, operation: 'UPDATE', oldObject }), p, EMPTY_CLUSTER);
  const relabel = (pod: Json) => withLabels(pod, (l) => { l['podgate.io/environment'] = 'production'; });
  const nobody = { username: 'system:serviceaccount:team-x:default', groups: ['system:serviceaccounts'] };

  const cases: [string, Json, Json, typeof ALPHA, RegExp | undefined][] = [
    ['alpha hides its own pod (adds airflow-worker)', alphaPod, hidden, ALPHA, undefined],
    ['then relabels the hidden pod to production', hidden, relabel(hidden), ALPHA, /the update changes its label podgate\.io\/environment from "alpha" to "production"/],
    ['alpha drops kubernetes_pod_operator from its pod', alphaPod, noKpoLabel, ALPHA, undefined],
    ['then relabels that pod', noKpoLabel, relabel(noKpoLabel), ALPHA, /changes its label podgate\.io\/environment from "alpha" to "production"/],
    ['production un-hides alpha\'s hidden pod', hidden, alphaPod, PRODUCTION, /it belongs to environment alpha, and mwaa-service \(environment production\) may not modify it/],
    ['an identity of no environment changes the lookup labels of alpha\'s pod', alphaPod, withLabels(alphaPod, (l) => { l['run_id'] = 'manual__x'; }), nobody, /the update changes its labels \(run_id\), and system:serviceaccount:team-x:default is of no environment/],
    ['an identity of no environment sets already_checked on alpha\'s pod', alphaPod, withLabels(alphaPod, (l) => { l['already_checked'] = 'True'; }), nobody, /changes its labels \(already_checked\)/],
    ['an identity of no environment hides alpha\'s pod', alphaPod, hidden, nobody, /changes its labels \(airflow-worker\)/],
    ['an identity of no environment changes something else', alphaPod, { ...structuredClone(alphaPod), spec: { activeDeadlineSeconds: 5 } }, nobody, undefined],
    ['alpha labels a pod that is not a KPO pod as production', makeKpoPod({ operatorLabels: { 'airflow-worker': '1' } }), relabel(makeKpoPod({ operatorLabels: { 'airflow-worker': '1' } })), ALPHA, /the update sets its label podgate\.io\/environment to "production"/],
  ];
  for (const [name, before, after, who, expected] of cases) {
    const decision = update(before, after, who);
    if (expected === undefined) t.equal(decision.allowed, true, name);
    else t.match(decision.denial?.message, expected, name);
  }
  const admin = { username: 'kubernetes-admin', groups: ['system:masters'] };
  t.equal(update(hidden, relabel(hidden), admin).allowed, true, 'exempt identities may');
});

t.test('kpoOwnership on subresources: status, ephemeral containers and evictions of another environment’s pod are refused; the kubelet and autoscalers pass', async (t) => {
  const p = policy([ownershipRule]);
  const alphaPod = makeKpoPod({ operatorLabels: { 'podgate.io/environment': 'alpha' } });
  const relabelled = structuredClone(alphaPod);
  (labelsOf(relabelled) ?? {})['podgate.io/environment'] = 'production';
  const viaStatus = decide('validate', makeRequest(relabelled, { ...PRODUCTION, operation: 'UPDATE', oldObject: alphaPod, subResource: 'status' }), p, EMPTY_CLUSTER);
  t.match(viaStatus.denial?.message, /the update changes its label podgate\.io\/environment from "alpha" to "production"; it belongs to environment alpha, and mwaa-service \(environment production\) may not modify it/, 'relabelling through pods/status');
  const debugged = { ...structuredClone(alphaPod), spec: { ...(alphaPod['spec'] as Json), ephemeralContainers: [{ name: 'debugger', image: 'busybox' }] } };
  t.match(decide('validate', makeRequest(debugged, { ...PRODUCTION, operation: 'UPDATE', oldObject: alphaPod, subResource: 'ephemeralcontainers' }), p, EMPTY_CLUSTER).denial?.message, /may not modify it/, 'an ephemeral container added by another environment');
  const kubelet = { username: 'system:node:gke-pool-1-a1b2', groups: ['system:nodes', 'system:authenticated'] };
  const running = { ...structuredClone(alphaPod), status: { phase: 'Running' } };
  t.equal(decide('validate', makeRequest(running, { ...kubelet, operation: 'UPDATE', oldObject: alphaPod, subResource: 'status' }), p, EMPTY_CLUSTER).allowed, true, "the kubelet's status update");

  const cached = staticKpoPods([live(alphaPod)]);
  const cluster: ClusterState = { ...EMPTY_CLUSTER, kpoPods: cached };
  const eviction = (who: { username: string; groups: string[]; extra?: Record<string, string[]> }) => ({
    ...makeRequest({ apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name: 'export-action-log-4devg7t1', namespace: 'airflow' } }, who),
    kind: { group: 'policy', version: 'v1', kind: 'Eviction' },
    resource: { group: '', version: 'v1', resource: 'pods' },
    subResource: 'eviction',
  });
  t.equal(
    decide('validate', eviction(PRODUCTION), p, cluster).denial?.message,
    "Eviction airflow/export-action-log-4devg7t1: pod export-action-log-4devg7t1 belongs to environment alpha, and mwaa-service (environment production) may not evict it (rule kpo-ownership). The likely cause: a production task re-attached to alpha's pod because both environments run the same DAG with the same labels. Pause the DAG in one environment, and set podgate.io/environment in the operator's labels so each environment only finds its own pods.",
  );
  t.equal(decide('validate', eviction(ALPHA), p, cluster).allowed, true, 'its own environment may evict it');
  const autoscaler = { username: 'system:serviceaccount:kube-system:cluster-autoscaler', groups: ['system:serviceaccounts'] };
  t.equal(decide('validate', eviction(autoscaler), p, cluster).allowed, true, 'a node drain by an identity of no environment');
  t.equal(decide('validate', eviction(PRODUCTION), p, EMPTY_CLUSTER).allowed, true, 'a pod the cache does not know is not judged');
  t.equal(decide('validate', makeRequest(alphaPod, { ...PRODUCTION, operation: 'UPDATE', oldObject: alphaPod, subResource: 'binding' }), p, EMPTY_CLUSTER).allowed, true, 'a subresource no rule declares is admitted');
});

t.test('an identity of no environment cannot wear an environment label; a controller is judged by its template', async (t) => {
  const p = policy([labelRule()]);
  const claimsProduction = makeKpoPod({ operatorLabels: { 'podgate.io/environment': 'production' } });
  const unknown = [
    { username: 'system:serviceaccount:team-x:default', groups: ['system:serviceaccounts'] },
    { username: 'alice@example.com', groups: ['system:authenticated'] },
  ];
  for (const who of unknown) {
    const expected = `Pod airflow/export-action-log-4devg7t1: label podgate.io/environment="production" claims environment production, but its creator ${who.username} matches no environment in the policy (rule environment-labels). Only environment production's identities may create pods labelled so: remove the label, or ask your platform team to add ${who.username} to environment production in the podgate policy.`;
    t.equal(decide('mutate', makeRequest(claimsProduction, who), p, EMPTY_CLUSTER).denial?.message, expected, `${who.username}: refused by the mutating webhook`);
    t.equal(decide('validate', makeRequest(claimsProduction, who), p, EMPTY_CLUSTER).denial?.message, expected, `${who.username}: and by the validating one`);
  }
  const jobController = { username: 'system:serviceaccount:kube-system:job-controller', groups: ['system:serviceaccounts'] };
  t.equal(decide('validate', makeRequest(claimsProduction, jobController), p, EMPTY_CLUSTER).allowed, true, "the Job controller's pod keeps its template's label");
  const admin = { username: 'kubernetes-admin', groups: ['system:masters'] };
  t.equal(decide('validate', makeRequest(claimsProduction, admin), p, EMPTY_CLUSTER).allowed, true, 'an exempt identity may');
  const ownLabel = policy([labelRule({ unknownCreatorLabel: 'unattributed', unknownCreator: 'admit' })]);
  const unattributed = makeKpoPod({ operatorLabels: { 'podgate.io/environment': 'unattributed' } });
  t.equal(decide('validate', makeRequest(unattributed, unknown[0] ?? ALPHA), ownLabel, EMPTY_CLUSTER).allowed, true, 'the label podgate gives such pods itself may stay');

  const job = (labels: Record<string, string>) => makeController('Job', 'export', { labels: { ...kpoLabels(), ...labels } });
  const aliceJob = decide('validate', makeRequest(job({ 'podgate.io/environment': 'production' }), unknown[1] ?? ALPHA), p, EMPTY_CLUSTER);
  t.match(aliceJob.denial?.message, /^Job airflow\/export: label podgate\.io\/environment="production" claims environment production, but its creator alice@example\.com matches no environment/, "a Job whose pods would wear production's label, created by someone of no environment");
  t.match(decide('validate', makeRequest(job({ 'podgate.io/environment': 'production' }), ALPHA), p, EMPTY_CLUSTER).denial?.message, /^Job airflow\/export: label podgate\.io\/environment="production" names environment production, but its creator system:serviceaccount:airflow-alpha:airflow-worker is environment alpha/, 'or by alpha');
  t.equal(decide('validate', makeRequest(job({ 'podgate.io/environment': 'production' }), PRODUCTION), p, EMPTY_CLUSTER).allowed, true, 'by production: fine');
  const relabelled = decide('validate', makeRequest(job({ 'podgate.io/environment': 'production' }), { ...ALPHA, operation: 'UPDATE', oldObject: job({ 'podgate.io/environment': 'alpha' }) }), p, EMPTY_CLUSTER);
  t.equal(relabelled.allowed, false, "an UPDATE that changes the template's label is judged too");
  const scaled = { ...job({ 'podgate.io/environment': 'production' }), status: { active: 1 } };
  t.equal(decide('validate', makeRequest(scaled, { ...ALPHA, operation: 'UPDATE', oldObject: job({ 'podgate.io/environment': 'production' }) }), p, EMPTY_CLUSTER).allowed, true, 'one that leaves the template labels alone is not');
  t.equal(decide('mutate', makeRequest(job({}), PRODUCTION), p, EMPTY_CLUSTER).patch.length, 0, 'templates are never patched');
});

t.test("kpoOwnership: podgate's record of the labels it added is not the client's to edit, not even its owner's", async (t) => {
  // Production's operator does not scope its lookups: podgate added the label and recorded so.
  const { patched: productionPod } = admit(makeKpoPod({ suffix: 'prod0001' }), PRODUCTION, [labelRule()]);
  const annotations = (pod: Json) => (pod['metadata'] as { annotations: Record<string, string> }).annotations;
  t.equal(annotations(productionPod)['podgate.io/injected-labels'], 'podgate.io/environment,podgate.io/cluster-id', 'the record the attack would edit');
  const edited = (change: (record: Record<string, string>) => void): Json => {
    const copy = structuredClone(productionPod);
    change(annotations(copy));
    return copy;
  };
  const p = policy([ownershipRule]);
  const update = (object: Json, who: typeof ALPHA) => decide('validate', makeRequest(object, { ...who, operation: 'UPDATE', oldObject: productionPod }), p, EMPTY_CLUSTER);

  const claimScoped = edited((a) => { a['podgate.io/injected-labels'] = 'podgate.io/cluster-id'; });
  t.equal(
    update(claimScoped, PRODUCTION).denial?.message,
    'Pod airflow/export-action-log-prod0001: the update changes its annotation podgate.io/injected-labels from "podgate.io/environment,podgate.io/cluster-id" to "podgate.io/cluster-id" (rule kpo-ownership). podgate lists in podgate.io/injected-labels the labels it added itself, so the collision check knows which labels the operator\'s lookup selects on (editing it can hide a collision); only the identities exempted in the policy may change it.',
    'its own environment may not make its unscoped pod look scoped',
  );
  t.match(update(edited((a) => { delete a['podgate.io/injected-labels']; }), PRODUCTION).denial?.message, /the update removes its annotation podgate\.io\/injected-labels \(it was "podgate\.io\/environment,podgate\.io\/cluster-id"\)/, 'nor remove the record');
  const nobody = { username: 'system:serviceaccount:team-x:default', groups: ['system:serviceaccounts'] };
  t.equal(update(claimScoped, nobody).allowed, false, 'an identity of no environment may not either');
  t.equal(update(edited((a) => { a['team'] = 'data'; }), PRODUCTION).allowed, true, 'other annotations stay the owner\'s to change');
  t.equal(update(claimScoped, { username: 'kubernetes-admin', groups: ['system:masters'] }).allowed, true, 'exempt identities may');
  const long = update(edited((a) => { a['podgate.io/injected-labels'] = 'x'.repeat(100_000); }), PRODUCTION).denial?.message ?? '';
  t.ok(long.length < 700, `the message quotes a huge value cut short (${long.length} characters)`);

  // What the edit would have bought: with the record intact, alpha's scoped pod of the same task is refused.
  const collisions = policy([collisionRule]);
  const alphaPod = makeKpoPod({ suffix: 'alpha001', operatorLabels: { 'podgate.io/environment': 'alpha' } });
  const indexed = (pod: Json) => ({ ...EMPTY_CLUSTER, kpoPods: staticKpoPods([{ ...live(pod, {}), injectedLabels: (annotations(pod)['podgate.io/injected-labels'] ?? '').split(',').filter(Boolean) }]) });
  t.equal(decide('validate', makeRequest(alphaPod, ALPHA), collisions, indexed(productionPod)).allowed, false, 'the true record: production\'s lookup would find alpha\'s pod');
  t.equal(decide('validate', makeRequest(alphaPod, ALPHA), collisions, indexed(claimScoped)).allowed, true, 'the edited record would have hidden it, which is why the edit is refused');
});

t.test('the collision guard looks both ways, on UPDATEs too, and for creators of no environment', async (t) => {
  const p = policy([collisionRule]);
  const cached = (pod: Json, environment: string, injected: boolean): KpoPod => ({ ...live(pod, { 'podgate.io/environment': environment }), ...(injected ? { injectedLabels: ['podgate.io/environment'] } : {}) });
  const cluster = (...pods: KpoPod[]): ClusterState => ({ ...EMPTY_CLUSTER, kpoPods: staticKpoPods(pods) });
  // Production's live pod is unscoped: podgate added its label, so its lookup is the task labels alone.
  const productionUnscoped = cached(makeKpoPod({ suffix: 'prod0001' }), 'production', true);
  const scopedAlpha = makeKpoPod({ suffix: 'alpha001', operatorLabels: { 'podgate.io/environment': 'alpha' } });
  t.equal(
    decide('validate', makeRequest(scopedAlpha, ALPHA), p, cluster(productionUnscoped)).denial?.message,
    "Pod airflow/export-action-log-alpha001: the lookup of environment production's live pod airflow/export-action-log-prod0001 for this task (dag_id=foo-bar-dag-id, task_id=foo-bar-task-id, run_id=scheduled__2023-03-08T0130000000-77fa57adf) would also find this pod; production's KubernetesPodOperator would find both and fail (\"More than one pod running with labels\"), or re-attach to this pod and delete it (rule kpo-collisions). Pause the DAG in one environment, or have environment production set podgate.io/environment in its operator's labels so its lookups only find its own pods.",
    "a scoped pod beside another environment's unscoped one: that one's lookup would find it",
  );
  const productionScoped = cached(makeKpoPod({ suffix: 'prod0001' }), 'production', false);
  t.equal(decide('validate', makeRequest(scopedAlpha, ALPHA), p, cluster(productionScoped)).allowed, true, 'both scoped: no lookup finds the other');

  const alphaOtherRun = makeKpoPod({ suffix: 'alpha002', runId: 'manual__1' });
  const movedToProductionsRun = makeKpoPod({ suffix: 'alpha002' });
  const labelsAlpha = (pod: Json) => { (labelsOf(pod) ?? {})['podgate.io/environment'] = 'alpha'; return pod; };
  const update = decide('validate', makeRequest(labelsAlpha(movedToProductionsRun), { ...ALPHA, operation: 'UPDATE', oldObject: labelsAlpha(alphaOtherRun) }), p, cluster(productionUnscoped));
  t.match(update.denial?.message, /the lookup of environment production's live pod airflow\/export-action-log-prod0001 .* would also find this pod/, "an UPDATE that moves alpha's pod onto production's task instance");
  const checked = structuredClone(labelsAlpha(makeKpoPod({ suffix: 'alpha003' })));
  (labelsOf(checked) ?? {})['already_checked'] = 'True';
  t.equal(decide('validate', makeRequest(checked, { ...ALPHA, operation: 'UPDATE', oldObject: labelsAlpha(makeKpoPod({ suffix: 'alpha003' })) }), p, cluster(productionUnscoped)).allowed, true, 'an UPDATE that only marks the pod already_checked is not judged');

  const nobody = { username: 'system:serviceaccount:team-x:default', groups: ['system:serviceaccounts'] };
  t.match(decide('validate', makeRequest(makeKpoPod({ suffix: 'nobody01' }), nobody), p, cluster(productionUnscoped)).denial?.message, /also matches live pod .* of environment production.*Pause the DAG in one environment, or create KubernetesPodOperator pods with an identity of one of airflow\.environments\.$/, 'a creator of no environment, without a label, is checked against every environment');
});

t.test('the audit stage: a live KPO pod is judged by what its labels say, not by who created it', async (t) => {
  const live = (labels: Record<string, string>, annotations?: Record<string, string>) => {
    const pod = makeKpoPod();
    const metadata = pod['metadata'] as Json;
    return { ...pod, metadata: { ...metadata, uid: 'u1', labels: { ...labelsOf(pod), ...labels }, ...(annotations ? { annotations } : {}) } };
  };
  const own = { 'podgate.io/environment': 'alpha', 'podgate.io/cluster-id': 'gke-shared-1' };
  const messages = (pod: Json, extra: Json = {}) => auditObject(policy([labelRule(extra)]), EMPTY_CLUSTER, pod).map((f) => `${f.action}${f.check ? `/${f.check}` : ''}: ${f.message}`);

  t.same(messages(live(own)), [], 'labelled by its own operator: nothing to say');
  t.same(messages(live({})), [
    "deny: Pod airflow/export-action-log-4devg7t1: it has no podgate.io/environment label (it was created before podgate labelled KubernetesPodOperator pods, or while podgate's mutating webhook failed open), so no one can tell which Airflow installation's it is and it collides with every environment's pods of the same task (rule environment-labels). It goes when its task ends; if new pods keep arriving unlabelled, look at podgate's mutating webhook (the API server's webhook metrics, podgate_admission_requests_total).",
  ]);
  t.match(messages(live({ 'podgate.io/environment': 'staging' })), [/^deny: .*label podgate\.io\/environment="staging" names no environment in the policy \(production, alpha\)/]);
  t.same(messages(live({ 'podgate.io/environment': 'unknown' }), { unknownCreatorLabel: 'unknown' }), [], 'the label podgate gives pods of unknown creators is known');
  t.match(messages(live({ ...own, 'podgate.io/cluster-id': 'eks-2' })), [/^deny: .*label podgate\.io\/cluster-id="eks-2" names another cluster; this is cluster gke-shared-1/]);
  const injected = live(own, { 'podgate.io/injected-labels': 'podgate.io/environment,podgate.io/cluster-id' });
  t.match(messages(injected), [/^warn\/scopedLookups: .*environment alpha's operator does not set podgate\.io\/environment in its labels \(podgate added it to this pod\)/], 'the check takes its own action');
  t.same(messages(injected, { scopedLookups: 'admit' }), [], 'a check set to admit is not reported');
  const controller = makeController('Deployment', 'kpo-like', { labels: kpoLabels() });
  t.same(auditObject(policy([labelRule()]), EMPTY_CLUSTER, controller), [], 'only live pods: a controller stamps pods that are judged themselves');
  t.same(auditObject(policy([ownershipRule]), EMPTY_CLUSTER, live({})), [], 'kpoOwnership judges requests by their identity alone: it has no audit logic');
});
