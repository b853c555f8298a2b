import t from 'tap';
import jsonpatch from 'fast-json-patch';
import { decide } from '../../../src/engine/decide.ts';
import { EMPTY_CLUSTER, staticNodes, type ClusterState, type NodeInfo } from '../../../src/policy/cluster.ts';
import { nodeConstraints, nodeFits } from '../../../src/policy/nodeAffinity.ts';
import { policyCompiler, type Policy } from '../../../src/policy/policy.ts';
import { nodeDenylist } from '../../../src/policy/rules/nodeDenylist.ts';
import { makeController, makePod, makeRequest } from '../../helpers/builders.ts';
import { nodeAffinityErrors } from '../../helpers/k8s-validation.ts';

const compile = policyCompiler([nodeDenylist]);
function policy(rule: Record<string, unknown>): Policy {
  const result = compile({ apiVersion: 'podgate.io/v1alpha1', kind: 'Policy', rules: [{ name: 'quarantined-nodes', kind: 'nodeDenylist', ...rule }] });
  if (!result.ok) throw new Error(JSON.stringify(result.problems));
  return result.policy;
}

const node = (name: string, labels: Record<string, string> = {}, hostname = name): NodeInfo => ({
  name,
  labels: new Map(Object.entries({ 'kubernetes.io/hostname': hostname, 'topology.kubernetes.io/zone': 'z1', ...labels })),
});
const bad = 'gke-pool-1-bad-node-7x2k';
const nodes = [
  node(bad, {}, 'bad-host'),
  node('gke-pool-1-good-a1b2'),
  node('gke-pool-1-good-c3d4', { 'topology.kubernetes.io/zone': 'z2' }),
  node('gke-gpu-q1', { 'podgate.io/quarantine': 'true', pool: 'gpu' }),
];
const synced: ClusterState = { ...EMPTY_CLUSTER, nodes: staticNodes(nodes) };

const denylist = {
  nodes: [
    { name: bad, reason: 'CrashLoopBackOff on this node, INC-1234' },
    { selector: { matchLabels: { 'podgate.io/quarantine': 'true' } }, reason: 'quarantined' },
  ],
};

const pod = (spec: Record<string, unknown>, extra: Parameters<typeof makePod>[0] = {}) => makePod({ name: 'export-4devg7t1', namespace: 'airflow-jobs', spec, ...extra });
const messageOf = (object: Record<string, unknown>, cluster: ClusterState = synced, rule: Record<string, unknown> = denylist) => decide('validate', makeRequest(object), policy(rule), cluster).denial?.message;

t.test('the message names the field, the node, the rule with the reason, and the fix', async (t) => {
  t.equal(
    messageOf(pod({ nodeName: bad })),
    `Pod airflow-jobs/export-4devg7t1: spec.nodeName "${bad}" is on the node denylist (rule quarantined-nodes: CrashLoopBackOff on this node, INC-1234). Remove the node pin or choose another node.`,
  );
});

t.test('what targets a denylisted node, with the node list known', async (t) => {
  const cases: [string, Record<string, unknown>, string | undefined][] = [
    ['nodeName, by label selector', { nodeName: 'gke-gpu-q1' }, 'spec.nodeName "gke-gpu-q1" is on the node denylist (rule quarantined-nodes: quarantined)'],
    ['nodeName of a good node', { nodeName: 'gke-pool-1-good-a1b2' }, undefined],
    ['nodeSelector on the hostname label (not the name)', { nodeSelector: { 'kubernetes.io/hostname': 'bad-host' } }, `spec.nodeSelector can only be met by nodes on the denylist ("${bad}")`],
    ['nodeSelector that also fits a good node', { nodeSelector: { 'topology.kubernetes.io/zone': 'z1' } }, undefined],
    ['nodeSelector only quarantined nodes satisfy', { nodeSelector: { pool: 'gpu' } }, 'spec.nodeSelector can only be met by nodes on the denylist ("gke-gpu-q1")'],
    [
      'affinity that only denylisted nodes satisfy (two terms)',
      { affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: [bad] }] }, { matchExpressions: [{ key: 'pool', operator: 'In', values: ['gpu'] }] }] } } } },
      `the required node affinity can only be met by nodes on the denylist ("${bad}", "gke-gpu-q1")`,
    ],
    [
      'affinity NotIn the bad node',
      { affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'NotIn', values: [bad] }] }] } } } },
      undefined,
    ],
    ['no node fits at all: not ours to judge', { nodeSelector: { pool: 'tpu' } }, undefined],
    ['a free pod', {}, undefined],
  ];
  for (const [name, spec, finding] of cases) {
    const message = messageOf(pod(spec));
    if (finding === undefined) t.equal(message, undefined, name);
    else t.match(message, `Pod airflow-jobs/export-4devg7t1: ${finding}`, name);
  }
});

t.test('the fix names what to change: the pin for nodeName, the selector or affinity otherwise', async (t) => {
  t.match(messageOf(pod({ nodeName: bad })), /\. Remove the node pin or choose another node\.$/);
  t.match(messageOf(pod({ nodeSelector: { pool: 'gpu' } })), /\. Change spec\.nodeSelector so it admits a node that is not on the denylist\.$/);
  t.match(messageOf(pod({ nodeSelector: { 'kubernetes.io/hostname': bad } }), EMPTY_CLUSTER), /\. Change spec\.nodeSelector so it admits a node that is not on the denylist\.$/, 'by names too');
});

t.test('before the node watch has synced: names alone', async (t) => {
  t.match(messageOf(pod({ nodeName: bad }), EMPTY_CLUSTER), /spec\.nodeName "gke-pool-1-bad-node-7x2k" is on the node denylist/);
  t.equal(messageOf(pod({ nodeName: 'gke-gpu-q1' }), EMPTY_CLUSTER), undefined, 'a label-selected node is unknown until the watch syncs');
  t.match(messageOf(pod({ nodeSelector: { 'kubernetes.io/hostname': bad } }), EMPTY_CLUSTER), /spec\.nodeSelector kubernetes\.io\/hostname "gke-pool-1-bad-node-7x2k" is on the node denylist/);
  const pinned = { affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: [bad] }] }] } } } };
  t.match(messageOf(pod(pinned), EMPTY_CLUSTER), /the required node affinity names only nodes on the denylist \("gke-pool-1-bad-node-7x2k"\)/);
  const mixed = { affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: [bad, 'other'] }] }] } } } };
  t.equal(messageOf(pod(mixed), EMPTY_CLUSTER), undefined, 'a good node is also named');
});

t.test('globs, controllers, DaemonSets, kube-system', async (t) => {
  const globRule = { nodes: [{ name: 'gke-pool-1-bad-*' }] };
  t.match(messageOf(pod({ nodeName: bad }), EMPTY_CLUSTER, globRule), /is on the node denylist \(rule quarantined-nodes\)\. /);
  const deployment = makeController('Deployment', 'exporter', { namespace: 'airflow-jobs', spec: { nodeSelector: { 'kubernetes.io/hostname': 'bad-host' } } });
  t.match(messageOf(deployment), /^Deployment airflow-jobs\/exporter: spec\.template\.spec\.nodeSelector can only be met/);
  const cronJob = makeController('CronJob', 'exporter', { namespace: 'airflow-jobs', spec: { nodeName: bad } });
  t.match(messageOf(cronJob), /^CronJob airflow-jobs\/exporter: spec\.jobTemplate\.spec\.template\.spec\.nodeName "gke-pool-1-bad-node-7x2k"/);
  const daemonSet = makeController('DaemonSet', 'node-exporter', { namespace: 'monitoring', spec: { nodeSelector: { 'kubernetes.io/hostname': 'bad-host' } } });
  t.equal(messageOf(daemonSet), undefined, 'DaemonSets are exempt by default');
  t.match(messageOf(daemonSet, synced, { ...denylist, daemonSets: 'check' }), /^DaemonSet monitoring\/node-exporter/);
  const daemonPod = makePod({ name: 'node-exporter-x', namespace: 'monitoring', spec: { nodeName: bad } });
  (daemonPod['metadata'] as Record<string, unknown>)['ownerReferences'] = [{ apiVersion: 'apps/v1', kind: 'DaemonSet', name: 'node-exporter', uid: 'u', controller: true }];
  t.equal(messageOf(daemonPod), undefined, "a DaemonSet's pods are exempt too");
  t.equal(messageOf(makePod({ name: 'coredns', namespace: 'kube-system', spec: { nodeName: bad } })), undefined, 'kube-system is exempt by default');
});

t.test('policy problems', async (t) => {
  const result = compile({ apiVersion: 'podgate.io/v1alpha1', kind: 'Policy', rules: [{ name: 'd', kind: 'nodeDenylist', nodes: [{ reason: 'no target' }, { name: 'a', selector: {} }] }] });
  t.same(result, {
    ok: false,
    problems: [
      { path: ['rules', 0, 'nodes', 0], message: 'give either name or selector (one of them)' },
      { path: ['rules', 0, 'nodes', 1], message: 'give either name or selector (one of them)' },
    ],
  });
});

const steerRule = { ...denylist, steer: true };
const mutate = (object: Record<string, unknown>, cluster: ClusterState = synced) => decide('mutate', makeRequest(object), policy(steerRule), cluster);
const apply = (object: Record<string, unknown>, patch: readonly unknown[]) => jsonpatch.applyPatch(structuredClone(object), structuredClone(patch) as jsonpatch.Operation[], true, false).newDocument;

t.test('steer: a free pod gets affinity that excludes exactly the denylisted nodes, valid and idempotent', async (t) => {
  const shapes: [string, Record<string, unknown>][] = [
    ['no affinity', {}],
    ['pod affinity only', { affinity: { podAntiAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [] } } }],
    ['preferred node affinity only', { affinity: { nodeAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 1, preference: { matchExpressions: [{ key: 'pool', operator: 'In', values: ['gpu'] }] } }] } } }],
    [
      'two required terms, one with matchFields already',
      { affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'topology.kubernetes.io/zone', operator: 'In', values: ['z1', 'z2'] }] }, { matchFields: [{ key: 'metadata.name', operator: 'NotIn', values: ['gke-pool-1-good-c3d4'] }] }] } } } },
    ],
  ];
  for (const [name, spec] of shapes) {
    const original = pod(spec);
    const decision = mutate(original);
    t.equal(decision.allowed, true, name);
    t.ok(decision.patch.length > 0, `${name}: patched`);
    const patched = apply(original, decision.patch);
    const podSpec = patched['spec'] as Record<string, unknown>;
    t.same(nodeAffinityErrors(podSpec), [], `${name}: passes the API server's validation`);
    const before = nodes.filter((n) => nodeFits(nodeConstraints(original['spec']), n)).map((n) => n.name);
    const after = nodes.filter((n) => nodeFits(nodeConstraints(podSpec), n)).map((n) => n.name);
    t.same(after, before.filter((n) => n !== bad && n !== 'gke-gpu-q1'), `${name}: exactly the denylisted nodes are gone`);
    t.same(mutate(patched).patch, [], `${name}: steering twice changes nothing`);
    t.equal(decide('validate', makeRequest(patched), policy(steerRule), synced).allowed, true, `${name}: the steered pod validates`);
  }
});

t.test('steer: what it will not do', async (t) => {
  const onlyGpu = pod({ nodeSelector: { pool: 'gpu' } });
  t.same(mutate(onlyGpu).patch, [], 'a pod only denylisted nodes fit is not made unschedulable (validation refuses it instead)');
  t.equal(decide('validate', makeRequest(onlyGpu), policy(steerRule), synced).allowed, false);
  t.same(mutate(pod({ nodeName: bad })).patch, [], 'a bound pod is not steered');
  const emptyTerm = pod({ affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{}, { matchExpressions: [{ key: 'pool', operator: 'DoesNotExist' }] }] } } } });
  const patched = apply(emptyTerm, mutate(emptyTerm).patch);
  const terms = (((patched['spec'] as Record<string, unknown>)['affinity'] as Record<string, Record<string, Record<string, unknown>>>)['nodeAffinity']?.['requiredDuringSchedulingIgnoredDuringExecution']?.['nodeSelectorTerms']) as unknown[];
  t.same(terms[0], {}, 'an empty term (matches nothing) stays empty');
  const deployment = makeController('Deployment', 'exporter', { namespace: 'airflow-jobs' });
  t.same(decide('mutate', makeRequest(deployment), policy(steerRule), synced).patch, [], 'controllers are not steered (Helm would fight it)');
});

t.test('steer before the node watch syncs: exact names and single-label selectors still apply', async (t) => {
  const original = pod({});
  const decision = mutate(original, EMPTY_CLUSTER);
  t.same(decision.patch, [
    {
      op: 'add',
      path: '/spec/affinity',
      value: {
        nodeAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: {
            nodeSelectorTerms: [{ matchExpressions: [{ key: 'podgate.io/quarantine', operator: 'NotIn', values: ['true'] }], matchFields: [{ key: 'metadata.name', operator: 'NotIn', values: [bad] }] }],
          },
        },
      },
    },
  ]);
});

t.test('hostile node constraints: values are looked up, and the work per review is bounded', async (t) => {
  // Nodes whose label lookups are counted: the work a review does, measured without a clock.
  let lookups = 0;
  const counted = (info: NodeInfo): NodeInfo => {
    const labels = info.labels;
    return { name: info.name, labels: { get: (key: string) => ((lookups += 1), labels.get(key)), has: (key: string) => labels.has(key) } as ReadonlyMap<string, string> };
  };
  const many = [node(bad, {}, 'bad-host'), ...Array.from({ length: 4999 }, (_, i) => node(`gke-pool-2-node-${i}`))].map(counted);
  const large: ClusterState = { ...EMPTY_CLUSTER, nodes: staticNodes(many) };
  const hostnames = (count: number) => [...Array.from({ length: count }, (_, i) => `absent-${i}`), 'bad-host'];
  const hostnameTerm = { matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: hostnames(25_000) }, { key: 'kubernetes.io/hostname', operator: 'In', values: hostnames(25_000) }] };
  const affinity = (terms: unknown[]) => ({ affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: terms } } } });

  lookups = 0;
  t.equal(
    messageOf(pod(affinity([hostnameTerm])), large),
    `Pod airflow-jobs/export-4devg7t1: the required node affinity can only be met by nodes on the denylist ("${bad}") (rule quarantined-nodes: CrashLoopBackOff on this node, INC-1234). Change the required node affinity so it admits a node that is not on the denylist.`,
    'two 25,000-value In lists: judged right',
  );
  t.ok(lookups <= 2 * many.length, `two 25,000-value In lists cost ${lookups} label lookups for ${many.length} nodes (values are a set, not scanned)`);
  t.equal(messageOf(pod(affinity([hostnameTerm])), EMPTY_CLUSTER), undefined, 'offline, the pins are intersected as sets and an unknown name is not denylisted');
  const tooLong = { matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: hostnames(60_000) }, { key: 'kubernetes.io/hostname', operator: 'In', values: hostnames(60_000) }] };
  t.match(messageOf(pod(affinity([tooLong])), large), /the required node affinity \(1 term, 2 requirements\) needs more than 800,000 checks/, 'two 60,000-value lists cost more to read than the budget allows: refused as too complex');

  lookups = 0;
  const terms = Array.from({ length: 15_000 }, (_, i) => ({ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: [`absent-${i}`] }] }));
  t.equal(
    messageOf(pod(affinity(terms)), large),
    'Pod airflow-jobs/export-4devg7t1: the required node affinity (15,000 terms, 15,000 requirements) needs more than 800,000 checks against the cluster\'s nodes, too many to tell in time whether they target the node denylist (rule quarantined-nodes). Name the nodes with fewer, shorter node-selector terms.',
    '15,000 terms against 5,000 nodes: refused as too complex to check',
  );
  t.ok(lookups <= 500_001, `15,000 terms x 5,000 nodes stopped after ${lookups} label lookups (75,000,000 unbounded)`);

  // Reading the terms is work too: a pod of 80,000 terms is refused before they are all read.
  let read = 0;
  const endless = new Proxy(Array.from({ length: 80_000 }, (_, i) => ({ matchExpressions: [{ key: 'zone', operator: 'In', values: [`z-${i}`] }] })), {
    get: (target, property, receiver) => {
      if (typeof property === 'string' && /^\d+$/.test(property)) read += 1;
      return Reflect.get(target, property, receiver) as unknown;
    },
  });
  t.match(messageOf(pod(affinity(endless)), large), /\(80,000 terms, 80,000 requirements\) needs more than 800,000 checks/);
  // The message's count reads each term once (80,000 reads); reading them as requirements stops at the budget.
  t.ok(read - 80_000 < 40_000, `${read - 80_000} of 80,000 terms read as requirements before the budget ran out`);

  // A selector is enumerated once per review, not once per node (a 2,000-entry selector against 5,000 nodes held podgate 1.5 s).
  let enumerations = 0;
  const selector = new Proxy(
    { 'kubernetes.io/hostname': 'bad-host', ...Object.fromEntries(Array.from({ length: 5_000 }, (_, i) => [`team.example.com/k${i}`, 'v'])) },
    { ownKeys: (target) => ((enumerations += 1), Reflect.ownKeys(target)) },
  );
  const selected = pod({ nodeSelector: selector });
  t.equal(messageOf(selected, large), undefined, 'no node has all 5,001 labels: unschedulable, not ours to judge');
  t.ok(enumerations <= 2, `a 5,001-entry nodeSelector against ${many.length} nodes was enumerated ${enumerations} time(s)`);

  const steerPolicy = policy({ ...denylist, steer: true });
  lookups = 0;
  const mutated = decide('mutate', makeRequest(pod(affinity(terms))), steerPolicy, large);
  t.equal(mutated.patch.length, 0, 'too complex to steer: no patch (the validating check refuses it)');
  t.ok(lookups <= 500_001, `steering stopped after ${lookups} label lookups`);
});
