import t from 'tap';
import { decide } from '../../../src/engine/decide.ts';
import { EMPTY_CLUSTER } from '../../../src/policy/cluster.ts';
import { policyCompiler, type Policy } from '../../../src/policy/policy.ts';
import { resourceFloors } from '../../../src/policy/rules/resourceFloors.ts';
import { makeController, makePod, makeRequest, type ContainerSpec, type PodOptions } from '../../helpers/builders.ts';

const compile = policyCompiler([resourceFloors]);

function policy(rule: Record<string, unknown>): Policy {
  const result = compile({ apiVersion: 'podgate.io/v1alpha1', kind: 'Policy', rules: [{ name: 'api-server-floors', kind: 'resourceFloors', ...rule }] });
  if (!result.ok) throw new Error(JSON.stringify(result.problems));
  return result.policy;
}

const apiServerRule = {
  match: { labelSelector: { matchLabels: { component: 'api-server' } } },
  containers: ['api-server'],
  requests: { cpu: '1', memory: '4Gi' },
  limits: { memory: '4Gi' },
  reason: "Airflow's API server crash-loops under tight limits",
  helmValues: 'apiServer.resources',
};
const labels = { tier: 'airflow', component: 'api-server', release: 'airflow' };

function apiServer(container: Omit<ContainerSpec, 'name'>, extra: PodOptions = {}): PodOptions {
  return { labels, containers: [{ name: 'api-server', ...container }, { name: 'git-sync', requests: { cpu: '10m' } }], ...extra };
}

const message = (object: Record<string, unknown>, rule: Record<string, unknown> = apiServerRule) => decide('validate', makeRequest(object), policy(rule), EMPTY_CLUSTER).denial?.message;

t.test('the incident: limits.memory 1Gi on the api-server Deployment is refused with the fix', async (t) => {
  const deployment = makeController('Deployment', 'airflow-api-server', apiServer({ requests: { cpu: '1', memory: '4Gi' }, limits: { memory: '1Gi' } }));
  t.equal(
    message(deployment),
    'Deployment airflow/airflow-api-server: container "api-server" limits.memory 1Gi is below the floor 4Gi (rule api-server-floors). ' +
      "Airflow's API server crash-loops under tight limits; raise apiServer.resources.limits.memory in your Helm values.",
  );
});

t.test('every controller kind is judged by its pod template, and named in the message', async (t) => {
  for (const kind of ['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job', 'CronJob', 'ReplicationController']) {
    const low = makeController(kind, 'airflow-api-server', apiServer({ limits: { memory: '2Gi' }, requests: { cpu: '2', memory: '2Gi' } }));
    t.match(message(low), new RegExp(`^${kind} airflow/airflow-api-server: container "api-server" requests\\.memory 2Gi is below the floor 4Gi; container "api-server" limits\\.memory 2Gi is below the floor 4Gi \\(rule api-server-floors\\)\\. `), kind);
    const ok = makeController(kind, 'airflow-api-server', apiServer({ limits: { memory: '4Gi' }, requests: { cpu: '2', memory: '4Gi' } }));
    t.equal(message(ok), undefined, `${kind} at the floor`);
  }
});

t.test('values as the pod will run with them', async (t) => {
  const cases: [string, PodOptions, string | undefined][] = [
    ['exactly at the floors, written otherwise', apiServer({ requests: { cpu: '1000m', memory: '4096Mi' }, limits: { memory: '4294967296' } }), undefined],
    ['a request left out defaults to the limit', apiServer({ limits: { cpu: '2', memory: '4Gi' } }), undefined],
    [
      'a defaulted request below the floor says so',
      apiServer({ limits: { cpu: '500m', memory: '4Gi' } }),
      'container "api-server" requests.cpu 500m (defaulted from its limit) is below the floor 1',
    ],
    ['nothing set at all', apiServer({}), 'container "api-server" sets no requests.cpu (the floor is 1); container "api-server" sets no requests.memory (the floor is 4Gi); container "api-server" sets no limits.memory (the floor is 4Gi)'],
    ['pod-level resources count for containers that set none', apiServer({}, { podResources: { requests: { cpu: '2', memory: '8Gi' }, limits: { memory: '8Gi' } } }), undefined],
    [
      'pod-level resources below the floor',
      apiServer({}, { podResources: { requests: { cpu: '2', memory: '8Gi' }, limits: { memory: '2Gi' } } }),
      'container "api-server" limits.memory 2Gi (from the pod-level spec.resources) is below the floor 4Gi',
    ],
    [
      'an invalid quantity in the object is a finding, not a crash',
      apiServer({ requests: { cpu: '1', memory: '4 Gi' }, limits: { memory: '4Gi' } }),
      'container "api-server" requests.memory "4 Gi" is not a valid Kubernetes quantity',
    ],
  ];
  for (const [name, options, finding] of cases) {
    const result = message(makePod({ name: 'airflow-api-server-7d9f-x2k4q', ...options }));
    if (finding === undefined) t.equal(result, undefined, name);
    else t.match(result, `Pod airflow/airflow-api-server-7d9f-x2k4q: ${finding} (rule api-server-floors).`, name);
  }
});

t.test('a malformed quantity is to be spelt right, not raised; a floor may be a YAML number', async (t) => {
  const misspelt = makePod({ name: 'airflow-api-server-7d9f-x2k4q', ...apiServer({ requests: { cpu: '1', memory: '4 Gi' }, limits: { memory: '4Gi' } }) });
  t.match(message(misspelt), /\(rule api-server-floors\)\. Write apiServer\.resources\.requests\.memory as a Kubernetes quantity \(500m, 2, 4Gi\) in your Helm values\.$/);
  const both = makePod({ name: 'airflow-api-server-7d9f-x2k4q', ...apiServer({ requests: { cpu: '500m', memory: '4 Gi' }, limits: { memory: '4Gi' } }) });
  t.match(message(both), /Airflow's API server crash-loops under tight limits; raise apiServer\.resources\.requests\.cpu in your Helm values, and write apiServer\.resources\.requests\.memory as a Kubernetes quantity/);
  const spaced = makePod({ name: 'p', ...apiServer({ requests: { cpu: ' 1', memory: '4Gi ' }, limits: { memory: '4Gi' } }) });
  t.equal(message(spaced), undefined, 'surrounding spaces are trimmed, as the API server does');
  const exact = makePod({ name: 'p', ...apiServer({ requests: { cpu: '1', memory: '4294967295' }, limits: { memory: '4Gi' } }) });
  t.match(message(exact), /requests\.memory 4294967295 is below the floor 4Gi/, 'one byte under, exactly');
  const subMilli = { ...apiServerRule, requests: { cpu: '1m', memory: '4Gi' } };
  t.equal(message(makePod({ name: 'p', ...apiServer({ requests: { cpu: '0.1m', memory: '4Gi' }, limits: { memory: '4Gi' } }) }), subMilli), undefined, 'CPU under a milli is rounded up to 1m, as the API server stores it');
  t.match(message(makePod({ name: 'p', ...apiServer({ requests: { cpu: '1m', memory: '4Gi' }, limits: { memory: '4Gi' } }) }), { ...apiServerRule, requests: { cpu: '1.5m', memory: '4Gi' } }), /requests\.cpu 1m is below the floor 1\.5m/, 'and the floor itself keeps its precision');
  const numeric = { ...apiServerRule, requests: { cpu: 1, memory: '4Gi' } };
  t.match(message(makePod({ name: 'p', ...apiServer({ requests: { cpu: '500m', memory: '4Gi' }, limits: { memory: '4Gi' } }) }), numeric), /requests\.cpu 500m is below the floor 1 /, 'cpu: 1 as a number');
});

t.test('container selection: names and globs; init containers only when asked', async (t) => {
  const rule = { limits: { memory: '1Gi' }, containers: ['worker-*'] };
  const pod = makePod({ containers: [{ name: 'worker-1', limits: { memory: '512Mi' } }, { name: 'sidecar' }], initContainers: [{ name: 'worker-init' }] });
  t.equal(message(pod, rule), 'Pod airflow/export-action-log-4devg7t1: container "worker-1" limits.memory 512Mi is below the floor 1Gi (rule api-server-floors). Set resources.limits.memory of container "worker-1" to at least the floor.');
  const withInit = message(pod, { ...rule, initContainers: true });
  t.match(withInit, /init container "worker-init" sets no limits\.memory \(the floor is 1Gi\); container "worker-1" limits\.memory 512Mi/);
});

t.test('extended resources and ephemeral-storage', async (t) => {
  const rule = { limits: { 'nvidia.com/gpu': '1', 'ephemeral-storage': '10Gi' } };
  t.equal(message(makePod({ containers: [{ name: 'train', limits: { 'nvidia.com/gpu': '1', 'ephemeral-storage': '20Gi' } }] }), rule), undefined);
  t.match(message(makePod({ containers: [{ name: 'train', limits: { 'ephemeral-storage': '1Gi' } }] }), rule), /sets no limits\.nvidia\.com\/gpu \(the floor is 1\); container "train" limits\.ephemeral-storage 1Gi is below the floor 10Gi/);
});

t.test('pods the match does not select, and updates that bring no new pod spec, are let through', async (t) => {
  const webserver = makePod({ labels: { component: 'webserver' }, containers: [{ name: 'webserver' }] });
  t.equal(message(webserver), undefined, 'other component');
  const low = makeController('Deployment', 'airflow-api-server', apiServer({ limits: { memory: '1Gi' } }));
  const scaled = { ...low, spec: { ...(low['spec'] as Record<string, unknown>), replicas: 3 } };
  const update = decide('validate', makeRequest(scaled, { operation: 'UPDATE', oldObject: low }), policy(apiServerRule), EMPTY_CLUSTER);
  t.equal(update.allowed, true, 'scaling an old Deployment is not refused for its template');
  const raised = makeController('Deployment', 'airflow-api-server', apiServer({ limits: { memory: '2Gi' } }));
  const changed = decide('validate', makeRequest(raised, { operation: 'UPDATE', oldObject: low }), policy(apiServerRule), EMPTY_CLUSTER);
  t.equal(changed.allowed, false, 'a template change is judged');
  const pod = makePod({ name: 'p', ...apiServer({ limits: { memory: '1Gi' } }) });
  const relabel = decide('validate', makeRequest(pod, { operation: 'UPDATE', oldObject: pod }), policy(apiServerRule), EMPTY_CLUSTER);
  t.equal(relabel.allowed, true, 'a pod update (labels, already_checked) is never refused for resources');
});

t.test('action warn admits and warns', async (t) => {
  const decision = decide('validate', makeRequest(makePod(apiServer({ limits: { memory: '1Gi' }, requests: { cpu: '1', memory: '1Gi' } }))), policy({ ...apiServerRule, action: 'warn' }), EMPTY_CLUSTER);
  t.equal(decision.allowed, true);
  t.equal(decision.warnings.length, 1);
  t.match(decision.warnings[0], /limits\.memory 1Gi is below the floor 4Gi \(rule api-server-floors\)/);
});

t.test('policy problems: bad floors and resource names', async (t) => {
  const result = compile({ apiVersion: 'podgate.io/v1alpha1', kind: 'Policy', rules: [{ name: 'f', kind: 'resourceFloors', requests: { cpu: '2 cores', 'bad name!': '1' } }] });
  t.same(result, {
    ok: false,
    problems: [
      { path: ['rules', 0, 'requests', 'cpu'], message: '"2 cores" is not a Kubernetes quantity (examples: 500m, 2, 4Gi, 1.5G)' },
      { path: ['rules', 0, 'requests', 'bad name!'], message: '"bad name!" is not a resource name', atKey: true },
    ],
  });
});
