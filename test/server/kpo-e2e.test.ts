import t from 'tap';
import { admissionResponseOf, applyResponsePatch, call, startServer } from '../helpers/https.ts';
import { makePod, makeRequest, makeReview } from '../helpers/builders.ts';
import { AIRFLOW_SECTION, ALPHA, makeKpoPod, PRODUCTION } from '../helpers/kpo.ts';
import { compilePolicy } from '../../src/policy/registry.ts';
import { EMPTY_CLUSTER } from '../../src/policy/cluster.ts';
import { KpoPodIndex } from '../../src/kube/kpoIndex.ts';
import { recordAdmission } from '../../src/kube/watches.ts';
import type { AdmissionRequest } from '../../src/admission/review.ts';

type Json = Record<string, unknown>;

const KPO_RULES = {
  environment: { name: 'environment-labels', kind: 'kpoEnvironment' },
  collisions: { name: 'kpo-collisions', kind: 'kpoCollisionGuard' },
  ownership: { name: 'kpo-ownership', kind: 'kpoOwnership' },
};
const kpoPolicy = (rules: readonly Json[]) => compilePolicy({ apiVersion: 'podgate.io/v1alpha1', kind: 'Policy', airflow: AIRFLOW_SECTION, rules });

t.test('incident 1 end to end over HTTPS: two environments, one namespace, the same DAG', async (t) => {
  const compiled = kpoPolicy([KPO_RULES.environment, KPO_RULES.collisions, KPO_RULES.ownership]);
  if (!compiled.ok) throw new Error(JSON.stringify(compiled.problems));
  // The pod watch, as the API server would feed it once a pod is admitted.
  const index = new KpoPodIndex();
  const server = await startServer(compiled.policy, { cluster: () => ({ ...EMPTY_CLUSTER, kpoPods: index }) });
  t.teardown(() => server.close());

  const review = async (webhook: 'mutate' | 'validate', request: AdmissionRequest) => {
    const sent = makeReview(request);
    return admissionResponseOf(await call(`${server.url}/${webhook}`, { ca: server.ca, body: JSON.stringify(sent) }), sent);
  };
  /** What the API server does with a CREATE: mutating webhook, patch, validating webhook, store. */
  const create = async (pod: Json, who: typeof ALPHA | typeof PRODUCTION) => {
    const mutation = await review('mutate', makeRequest(pod, who));
    if (!mutation.allowed) return { allowed: false, message: mutation.status?.message, pod };
    const patched = applyResponsePatch(pod, mutation);
    const validation = await review('validate', makeRequest(patched, who));
    if (!validation.allowed) return { allowed: false, message: validation.status?.message, pod: patched };
    const metadata = patched['metadata'] as { name: string; namespace: string; labels: Record<string, string> };
    index.upsert({ name: metadata.name, namespace: metadata.namespace, labels: new Map(Object.entries(metadata.labels)) });
    return { allowed: true, message: undefined, pod: patched, warnings: mutation.warnings };
  };

  const alpha = await create(makeKpoPod({ suffix: '4devg7t1' }), ALPHA);
  t.equal(alpha.allowed, true, "alpha's pod admitted");
  t.match((alpha.pod['metadata'] as Json)['labels'], { 'podgate.io/environment': 'alpha', 'podgate.io/cluster-id': 'gke-shared-1', dag_id: 'foo-bar-dag-id' });

  const production = await create(makeKpoPod({ suffix: 'x8k2m9qa' }), PRODUCTION);
  t.equal(production.allowed, false, "production's identical pod refused");
  t.match(production.message, /also matches live pod airflow\/export-action-log-4devg7t1 of environment alpha/);

  const retry = await create(makeKpoPod({ suffix: 'p0o9i8u7', tryNumber: 2 }), PRODUCTION);
  t.equal(retry.allowed, false, 'its retry too, while alpha’s pod is live');

  // Production's cleanup tries to delete alpha's pod (the re-attach case): refused. Alpha's own PATCH and delete pass.
  const prodDelete = await review('validate', makeRequest(alpha.pod, { ...PRODUCTION, operation: 'DELETE' }));
  t.equal(prodDelete.allowed, false);
  t.match(prodDelete.status?.message, /it belongs to environment alpha, and mwaa-service \(environment production\) may not delete it/);
  const checkedPod = structuredClone(alpha.pod);
  ((checkedPod['metadata'] as Json)['labels'] as Record<string, string>)['already_checked'] = 'True';
  t.equal((await review('validate', makeRequest(checkedPod, { ...ALPHA, operation: 'UPDATE', oldObject: alpha.pod }))).allowed, true, "alpha's already_checked PATCH");
  const relabel = structuredClone(alpha.pod);
  ((relabel['metadata'] as Json)['labels'] as Record<string, string>)['podgate.io/environment'] = 'production';
  t.equal((await review('validate', makeRequest(relabel, { ...PRODUCTION, operation: 'UPDATE', oldObject: alpha.pod }))).allowed, false, 'an UPDATE changing the label');

  const liveAlpha = { name: 'export-action-log-4devg7t1', namespace: 'airflow', labels: new Map(Object.entries(((alpha.pod['metadata'] as Json)['labels'] as Record<string, string>))) };
  index.upsert({ ...liveAlpha, labels: new Map(Object.entries(((checkedPod['metadata'] as Json)['labels'] as Record<string, string>))) }, liveAlpha);
  t.equal((await create(makeKpoPod({ suffix: 'p0o9i8u7', tryNumber: 2 }), PRODUCTION)).allowed, true, 'allowed once alpha’s pod is already_checked');
  t.equal((await review('validate', makeRequest(alpha.pod, { ...ALPHA, operation: 'DELETE' }))).allowed, true, "alpha's own delete");
});

t.test('two environments’ identical pods sent at the same moment: never both admitted (one replica), dry runs aside', async (t) => {
  const compiled = kpoPolicy([KPO_RULES.collisions]);
  if (!compiled.ok || compiled.policy.kpoPodSelection === undefined) throw new Error('policy');
  const selection = compiled.policy.kpoPodSelection;
  const kept = new Set(selection.keptLabels);
  /** The pod as the mutating webhook left it: labelled with its environment, the label marked as podgate's (so the lookup is not scoped). */
  const labelled = (pod: Json, environment: string): Json => {
    const copy = structuredClone(pod);
    const metadata = copy['metadata'] as { labels: Record<string, string>; annotations?: Record<string, string> };
    metadata.labels['podgate.io/environment'] = environment;
    metadata.annotations = { 'podgate.io/injected-labels': 'podgate.io/environment' };
    return copy;
  };
  /** Pairs of alpha's and production's pods of one task instance, each pair sent at once; how many pairs were both admitted. */
  const race = async (record: boolean, pairs: number, dryRun = false): Promise<number> => {
    const index = new KpoPodIndex();
    const server = await startServer(compiled.policy, {
      cluster: () => ({ ...EMPTY_CLUSTER, kpoPods: index }),
      ...(record ? { onAdmitted: (request: AdmissionRequest) => { recordAdmission(index, selection, kept, request, Date.now()); } } : {}),
    });
    t.teardown(() => server.close());
    const send = async (pod: Json, who: typeof ALPHA | typeof PRODUCTION) => {
      const sent = makeReview({ ...makeRequest(pod, who), ...(dryRun ? { dryRun: true } : {}) });
      return admissionResponseOf(await call(`${server.url}/validate`, { ca: server.ca, body: JSON.stringify(sent) }), sent).allowed;
    };
    let bothAdmitted = 0;
    await Promise.all(
      Array.from({ length: pairs }, async (_, i) => {
        const task = { taskId: `task-${i}` };
        const [alpha, production] = await Promise.all([send(labelled(makeKpoPod({ ...task, suffix: `a${i}` }), 'alpha'), ALPHA), send(labelled(makeKpoPod({ ...task, suffix: `p${i}` }), 'production'), PRODUCTION)]);
        if (alpha && production) bothAdmitted += 1;
      }),
    );
    return bothAdmitted;
  };
  t.equal(await race(false, 20), 20, 'without counting admitted pods, every pair gets through (neither is in the watch yet)');
  t.equal(await race(true, 20), 0, 'counting them, no pair does');
  t.equal(await race(true, 5, true), 5, 'dry runs create nothing, so they count for nothing');
});

t.test('attribution over HTTPS, both webhooks in the API server’s order: actor x target x path', async (t) => {
  const compiled = kpoPolicy([KPO_RULES.environment, KPO_RULES.collisions, KPO_RULES.ownership]);
  if (!compiled.ok || compiled.policy.kpoPodSelection === undefined) throw new Error('policy');
  const selection = compiled.policy.kpoPodSelection;
  const index = new KpoPodIndex();
  const server = await startServer(compiled.policy, {
    cluster: () => ({ ...EMPTY_CLUSTER, kpoPods: index }),
    onAdmitted: (request) => { recordAdmission(index, selection, new Set(selection.keptLabels), request, Date.now()); },
  });
  t.teardown(() => server.close());
  type Who = { username: string; groups: string[]; extra?: Record<string, string[]> };
  const review = async (webhook: 'mutate' | 'validate', request: AdmissionRequest) => {
    const sent = makeReview(request);
    return admissionResponseOf(await call(`${server.url}/${webhook}`, { ca: server.ca, body: JSON.stringify(sent) }), sent);
  };
  /** A CREATE goes through the mutating webhook (its patch applied), then the validating one; everything else only through the validating one. */
  const send = async (request: AdmissionRequest): Promise<{ allowed: boolean; message: string; object: unknown }> => {
    let current = request;
    if (request.operation === 'CREATE' && request.kind.kind === 'Pod') {
      const mutation = await review('mutate', request);
      if (!mutation.allowed) return { allowed: false, message: mutation.status?.message ?? '', object: request.object };
      current = { ...request, object: applyResponsePatch(request.object, mutation) };
    }
    const validation = await review('validate', current);
    return { allowed: validation.allowed, message: validation.status?.message ?? '', object: current.object };
  };
  const nobody: Who = { username: 'system:serviceaccount:team-x:default', groups: ['system:serviceaccounts'] };
  const jobController: Who = { username: 'system:serviceaccount:kube-system:job-controller', groups: ['system:serviceaccounts'] };
  const admin: Who = { username: 'kubernetes-admin', groups: ['system:masters'] };
  const kubelet: Who = { username: 'system:node:gke-pool-1-a1b2', groups: ['system:nodes'] };
  const autoscaler: Who = { username: 'system:serviceaccount:kube-system:cluster-autoscaler', groups: ['system:serviceaccounts'] };

  // Alpha's pod, as alpha creates it: podgate labels it alpha, and the index counts it.
  const alphaCreate = await send(makeRequest(makeKpoPod({ taskId: 'owned', suffix: 'alpha0001' }), ALPHA));
  t.equal(alphaCreate.allowed, true);
  const alphaPod = alphaCreate.object as Json;
  const relabelled = structuredClone(alphaPod);
  (relabelled['metadata'] as { labels: Record<string, string> }).labels['podgate.io/environment'] = 'production';
  const running = { ...structuredClone(alphaPod), status: { phase: 'Running' } };
  const plainPod = makePod({ name: 'web', namespace: 'airflow' });
  const eviction = (who: Who): AdmissionRequest => ({
    ...makeRequest({ apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name: 'export-action-log-alpha0001', namespace: 'airflow' } }, who),
    kind: { group: 'policy', version: 'v1', kind: 'Eviction' },
    resource: { group: '', version: 'v1', resource: 'pods' },
    subResource: 'eviction',
  });
  let task = 0;
  const claimingProduction = () => makeKpoPod({ taskId: `claim-${(task += 1)}`, suffix: `c${task}`, operatorLabels: { 'podgate.io/environment': 'production' } });

  const cases: [string, () => AdmissionRequest, RegExp | true][] = [
    ['alpha creates a pod claiming production', () => makeRequest(claimingProduction(), ALPHA), /names environment production, but its creator system:serviceaccount:airflow-alpha:airflow-worker is environment alpha/],
    ['production creates a pod claiming production', () => makeRequest(claimingProduction(), PRODUCTION), true],
    ['an identity of no environment creates a pod claiming production', () => makeRequest(claimingProduction(), nobody), /claims environment production, but its creator system:serviceaccount:team-x:default matches no environment/],
    ['the Job controller creates a pod claiming production (its Job was judged)', () => makeRequest(claimingProduction(), jobController), true],
    ['an exempt identity creates a pod claiming production', () => makeRequest(claimingProduction(), admin), true],
    ['an identity of no environment creates an unlabelled KPO pod (a warning)', () => makeRequest(makeKpoPod({ taskId: 'unlabelled', suffix: 'u1' }), nobody), true],
    ["alpha relabels its pod to production", () => makeRequest(relabelled, { ...ALPHA, operation: 'UPDATE', oldObject: alphaPod }), /changes its label podgate\.io\/environment from "alpha" to "production"/],
    ["production relabels alpha's pod", () => makeRequest(relabelled, { ...PRODUCTION, operation: 'UPDATE', oldObject: alphaPod }), /may not modify it/],
    ["an identity of no environment relabels alpha's pod", () => makeRequest(relabelled, { ...nobody, operation: 'UPDATE', oldObject: alphaPod }), /changes its label/],
    ["an exempt identity relabels alpha's pod", () => makeRequest(relabelled, { ...admin, operation: 'UPDATE', oldObject: alphaPod }), true],
    ["production relabels alpha's pod through pods/status", () => makeRequest(relabelled, { ...PRODUCTION, operation: 'UPDATE', oldObject: alphaPod, subResource: 'status' }), /may not modify it/],
    ["the kubelet updates alpha's pod status", () => makeRequest(running, { ...kubelet, operation: 'UPDATE', oldObject: alphaPod, subResource: 'status' }), true],
    ["production evicts alpha's pod", () => eviction(PRODUCTION), /pod export-action-log-alpha0001 belongs to environment alpha, and mwaa-service \(environment production\) may not evict it/],
    ["an autoscaler evicts alpha's pod", () => eviction(autoscaler), true],
    ["production deletes alpha's pod", () => makeRequest(alphaPod, { ...PRODUCTION, operation: 'DELETE' }), /may not delete it/],
    ["an identity of no environment deletes alpha's pod", () => makeRequest(alphaPod, { ...nobody, operation: 'DELETE' }), true],
    ['production deletes a pod that is no KPO pod', () => makeRequest(plainPod, { ...PRODUCTION, operation: 'DELETE' }), true],
    ["alpha deletes its own pod", () => makeRequest(alphaPod, { ...ALPHA, operation: 'DELETE' }), true],
  ];
  for (const [name, request, expected] of cases) {
    const outcome = await send(request());
    if (expected === true) t.equal(outcome.allowed, true, `${name}: admitted${outcome.message ? ` (${outcome.message})` : ''}`);
    else t.match(outcome, { allowed: false, message: expected }, `${name}: refused`);
  }
});
