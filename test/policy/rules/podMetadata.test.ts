import t from 'tap';
import jsonpatch from 'fast-json-patch';
import { decide } from '../../../src/engine/decide.ts';
import { EMPTY_CLUSTER } from '../../../src/policy/cluster.ts';
import { compilePolicy } from '../../../src/policy/registry.ts';
import type { Policy } from '../../../src/policy/policy.ts';
import { makeController, makePod, makeRequest } from '../../helpers/builders.ts';
import { AIRFLOW_SECTION, ALPHA, makeKpoPod } from '../../helpers/kpo.ts';

type Json = Record<string, unknown>;

const DO_NOT_DISRUPT = { 'karpenter.sh/do-not-disrupt': 'true', 'cluster-autoscaler.kubernetes.io/safe-to-evict': 'false' };

function compile(rules: Json[], airflow?: Json) {
  return compilePolicy({ apiVersion: 'podgate.io/v1alpha1', kind: 'Policy', ...(airflow ? { airflow } : {}), rules });
}
function policy(rules: Json[], airflow?: Json): Policy {
  const result = compile(rules, airflow);
  if (!result.ok) throw new Error(JSON.stringify(result.problems));
  return result.policy;
}
const rule = (extra: Json = {}): Json => ({ name: 'stay-put', kind: 'podMetadata', annotations: DO_NOT_DISRUPT, ...extra });
const problemsOf = (rules: Json[], airflow?: Json) => {
  const result = compile(rules, airflow);
  return result.ok ? [] : result.problems.map((p) => `${p.path.slice(2).join('.')}: ${p.message}`); // paths relative to the rule
};

/** Mutates `pod` as the API server would: podgate's patch applied with an RFC 6902 library (strict: a bad path throws). */
function mutate(pod: Json, p: Policy, who: { username: string; groups: string[] } = ALPHA) {
  const decision = decide('mutate', makeRequest(pod, who), p, EMPTY_CLUSTER);
  const patched = jsonpatch.applyPatch(structuredClone(pod), structuredClone(decision.patch) as jsonpatch.Operation[], true, false).newDocument;
  return { decision, patched, metadata: patched['metadata'] as { labels?: Record<string, string>; annotations?: Record<string, string> } };
}

t.test('adds the annotations to a pod with no annotations map at all, and is idempotent on reinvocation', async (t) => {
  const pod = makePod({ labels: { app: 'etl' } });
  t.equal((pod['metadata'] as Json)['annotations'], undefined, 'the pod starts without the map');
  const p = policy([rule()]);
  const first = mutate(pod, p);
  t.same(first.metadata.annotations, DO_NOT_DISRUPT);
  t.same(first.decision.patch, [{ op: 'add', path: '/metadata/annotations', value: DO_NOT_DISRUPT }], 'one op creates the map');
  t.same(first.decision.warnings, []);
  const again = mutate(first.patched, p);
  t.same(again.decision.patch, [], 'a second invocation changes nothing');
});

t.test('into an existing map, one op per key, with / escaped in the pointer', async (t) => {
  const pod = makePod();
  (pod['metadata'] as Json)['annotations'] = { 'example.com/owner': 'data' };
  const { decision, metadata } = mutate(pod, policy([rule()]));
  t.same(decision.patch.map((op) => op.path), ['/metadata/annotations/karpenter.sh~1do-not-disrupt', '/metadata/annotations/cluster-autoscaler.kubernetes.io~1safe-to-evict']);
  t.same(metadata.annotations, { 'example.com/owner': 'data', ...DO_NOT_DISRUPT });
});

t.test("add-only by default: a key the pod already has keeps the owner's value; overwrite replaces it", async (t) => {
  const pod = makePod({ labels: { team: 'ml' } });
  (pod['metadata'] as Json)['annotations'] = { 'karpenter.sh/do-not-disrupt': 'false' };
  const kept = mutate(pod, policy([rule({ labels: { team: 'data' } })]));
  t.equal(kept.metadata.annotations?.['karpenter.sh/do-not-disrupt'], 'false', 'the pod said false and keeps it');
  t.equal(kept.metadata.annotations?.['cluster-autoscaler.kubernetes.io/safe-to-evict'], 'false', 'the key it did not have is added');
  t.equal(kept.metadata.labels?.['team'], 'ml');
  const replaced = mutate(pod, policy([rule({ labels: { team: 'data' }, overwrite: true })]));
  t.equal(replaced.metadata.annotations?.['karpenter.sh/do-not-disrupt'], 'true');
  t.equal(replaced.metadata.labels?.['team'], 'data');
  t.same(mutate(replaced.patched, policy([rule({ labels: { team: 'data' }, overwrite: true })])).decision.patch, [], 'overwrite is idempotent too');
});

t.test('labels: the map is created when absent; a later rule matched on the label sees it', async (t) => {
  const pod = makePod();
  const p = policy([
    { name: 'team-data', kind: 'podMetadata', match: { namespaces: ['airflow'] }, labels: { team: 'data' } },
    { name: 'data-stays-put', kind: 'podMetadata', match: { labelSelector: { matchLabels: { team: 'data' } } }, annotations: { 'karpenter.sh/do-not-disrupt': 'true' } },
  ]);
  const { metadata, patched } = mutate(pod, p);
  t.same(metadata.labels, { team: 'data' });
  t.same(metadata.annotations, { 'karpenter.sh/do-not-disrupt': 'true' });
  t.same(mutate(patched, p).decision.patch, []);
  const elsewhere = mutate(makePod({ namespace: 'ml' }), p);
  t.same(elsewhere.decision.patch, [], 'match is honoured: another namespace gets nothing');
});

t.test('Pods on CREATE only: controllers, updates and deletes are left alone', async (t) => {
  const p = policy([rule()]);
  for (const kind of ['Deployment', 'StatefulSet', 'Job', 'CronJob']) {
    t.same(decide('mutate', makeRequest(makeController(kind, 'airflow-worker')), p, EMPTY_CLUSTER).patch, [], kind);
  }
  const pod = makePod();
  t.same(decide('mutate', makeRequest(pod, { operation: 'UPDATE', oldObject: pod }), p, EMPTY_CLUSTER).patch, [], 'UPDATE');
  t.same(decide('validate', makeRequest(pod), p, EMPTY_CLUSTER).reports, [], 'no validating half');
});

t.test('on a KPO pod, added labels are recorded as podgate’s, alongside kpoEnvironment’s, in either order', async (t) => {
  const kpoRules = [{ name: 'environment-labels', kind: 'kpoEnvironment' }, rule({ labels: { team: 'data' } })];
  for (const rules of [kpoRules, [...kpoRules].reverse()]) {
    const { metadata, patched } = mutate(makeKpoPod(), policy(rules, AIRFLOW_SECTION));
    const injected = new Set(metadata.annotations?.['podgate.io/injected-labels']?.split(','));
    t.same([...injected].sort(), ['podgate.io/cluster-id', 'podgate.io/environment', 'team'], rules[0]?.['kind'] as string);
    t.equal(metadata.labels?.['team'], 'data');
    t.equal(metadata.annotations?.['karpenter.sh/do-not-disrupt'], 'true');
    t.same(mutate(patched, policy(rules, AIRFLOW_SECTION)).decision.patch, [], 'reinvocation adds nothing');
  }
  const plain = mutate(makePod(), policy([rule({ labels: { team: 'data' } })], AIRFLOW_SECTION));
  t.equal(plain.metadata.annotations?.['podgate.io/injected-labels'], undefined, 'a pod that is not a KPO pod gets no record');
});

t.test('an addition that would pass the API server’s 256 KiB annotation limit is refused, saying so', async (t) => {
  const pod = makePod({ name: 'big' });
  (pod['metadata'] as Json)['annotations'] = { 'example.com/blob': 'x'.repeat(256 * 1024 - 40) };
  const { decision } = mutate(pod, policy([rule()]));
  t.equal(decision.allowed, false);
  t.match(decision.allowed ? '' : decision.denial.message, /^Pod airflow\/big: its annotations with karpenter\.sh\/do-not-disrupt, cluster-autoscaler\.kubernetes\.io\/safe-to-evict added would take at least 262\d+ bytes, over the API server's limit of 262144 \(rule stay-put\)\. Shorten the annotations the pod carries, or exclude it from this rule\.$/);
  t.equal(mutate(pod, policy([rule({ action: 'warn' })])).decision.patch.length, 0, 'with warn, nothing is added');
});

t.test('a malformed metadata map from a client is not a crash', async (t) => {
  const pod = makePod();
  (pod['metadata'] as Json)['annotations'] = 'not a map';
  (pod['metadata'] as Json)['labels'] = ['x'];
  const { decision, metadata } = mutate(pod, policy([rule({ labels: { team: 'data' } })]));
  t.equal(decision.allowed, true);
  t.same([metadata.labels, metadata.annotations], [{ team: 'data' }, DO_NOT_DISRUPT], 'replaced whole (the API server would refuse the pod as it came)');
  const bare = makePod();
  delete bare['metadata'];
  t.same(decide('mutate', makeRequest(bare), policy([rule()]), EMPTY_CLUSTER).patch, [], 'no metadata at all: nothing to add to');
});

t.test('the policy is checked when it loads: keys, values, sizes, and the keys others own', async (t) => {
  t.same(problemsOf([{ name: 'x', kind: 'podMetadata' }]), [': set at least one entry under labels or annotations']);
  t.same(problemsOf([rule({ labels: { 'bad key!': 'v', team: 'not a value' } })]), [
    'labels.bad key!: "bad key!" is not a valid label key (an optional DNS-subdomain prefix and /, then up to 63 letters, digits, - _ . with alphanumeric ends)',
    'labels.team: "not a value" is not a valid label value (63 characters at most, letters, digits, - _ . inside, alphanumeric at both ends)',
  ]);
  t.same(problemsOf([rule({ annotations: { 'Example.COM/Owner': 'fine', '/bad': 'x' } })]), [
    'annotations./bad: "/bad" is not a valid annotation key (an optional DNS-subdomain prefix and /, then up to 63 letters, digits, - _ . with alphanumeric ends)',
  ]);
  t.same(problemsOf([rule({ annotations: { big: 'x'.repeat(256 * 1024) } })]), ["annotations: the annotations take 262147 bytes; the API server allows 262144 on an object"]);
  t.same(problemsOf([rule({ labels: { 'podgate.io/environment': 'production', 'airflow-worker': '1' } })]), [
    "labels.podgate.io/environment: label podgate.io/environment is KubernetesPodOperator's or podgate's own (its lookups and the environment attribution read it); a podMetadata rule may not set it",
    "labels.airflow-worker: label airflow-worker is KubernetesPodOperator's or podgate's own (its lookups and the environment attribution read it); a podMetadata rule may not set it",
  ]);
  t.same(problemsOf([rule({ labels: { 'example.io/environment': 'x' } })], { ...AIRFLOW_SECTION, labelPrefix: 'example.io' }).length, 1, 'the policy’s own labelPrefix is what is reserved');
  t.same(problemsOf([rule({ annotations: { 'podgate.io/injected-labels': 'team' } })]), ["annotations.podgate.io/injected-labels: annotation podgate.io/injected-labels is podgate's own record of the labels it added; a podMetadata rule may not set it"]);
  t.match(problemsOf([rule({ annotations: { 'karpenter.sh/do-not-disrupt': true } })]).join('\n'), /annotations\.karpenter\.sh\/do-not-disrupt: must be a string/, 'a YAML boolean is not a string');
});
