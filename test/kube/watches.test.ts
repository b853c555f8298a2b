import t from 'tap';
import { pino } from 'pino';
import { decide } from '../../src/engine/decide.ts';
import { ClusterWatches, MAX_OTHER_KPO_LABELS, slimKpoPod } from '../../src/kube/watches.ts';
import { compilePolicy } from '../../src/policy/registry.ts';
import { ADMITTED_TTL_MS, KpoPodIndex } from '../../src/kube/kpoIndex.ts';
import { kpoIdentity } from '../../src/policy/airflow.ts';
import { FakeApiServer } from '../helpers/fake-apiserver.ts';
import { makeRequest } from '../helpers/builders.ts';
import { AIRFLOW_SECTION, kpoLabels, makeKpoPod, PRODUCTION } from '../helpers/kpo.ts';
import { waitFor } from '../helpers/wait.ts';

const PODS = '/api/v1/pods';

t.test('the KPO pod watch feeds the collision guard: add, already_checked, delete, 410 re-list, dropped connection', async (t) => {
  const api = new FakeApiServer();
  const client = await api.client();
  t.teardown(() => api.close());
  const alphaPod = { metadata: { name: 'export-action-log-4devg7t1', namespace: 'airflow', labels: { ...kpoLabels(), 'podgate.io/environment': 'alpha' } } };
  api.add(PODS, { metadata: { name: 'airflow-webserver-0', namespace: 'airflow', labels: { component: 'webserver' } } });

  const watches = new ClusterWatches({ mode: 'kubeconfig', client, detail: 'test' }, pino({ level: 'silent' }));
  t.teardown(() => { watches.stop(); });
  const compiled = compilePolicy({ apiVersion: 'podgate.io/v1alpha1', kind: 'Policy', airflow: AIRFLOW_SECTION, rules: [{ name: 'kpo-collisions', kind: 'kpoCollisionGuard' }] });
  if (!compiled.ok) throw new Error(JSON.stringify(compiled.problems));
  t.same([...compiled.policy.watches], ['kpoPods'], 'the policy says which watch it needs');
  watches.ensure(compiled.policy);
  await waitFor('the pod watch to list', () => watches.state.kpoPods.synced);
  t.match(watches.checks(), { 'watch:kpoPods': { ok: true, detail: /^0 objects/ } }, 'only KPO pods are listed (server-side selector)');
  t.equal(api.requests[0]?.query.get('labelSelector'), 'kubernetes_pod_operator=True,!airflow-worker', 'the default airflow.kpoPods, in the API syntax');

  const production = () => decide('validate', makeRequest(makeKpoPod({ suffix: 'x8k2m9qa' }), PRODUCTION), compiled.policy, watches.state).allowed;
  t.equal(production(), true, 'nothing to collide with yet');
  api.add(PODS, alphaPod);
  await waitFor('alpha’s pod in the index', () => !production());
  api.modify(PODS, { metadata: { ...alphaPod.metadata, labels: { ...alphaPod.metadata.labels, already_checked: 'True' } } });
  await waitFor('already_checked to release it', () => production());
  api.modify(PODS, alphaPod);
  await waitFor('live again', () => !production());
  api.remove(PODS, alphaPod);
  await waitFor('deleted', () => production());

  // Changes missed while disconnected and a compacted history: the re-list must drop what is gone and add what is new.
  api.add(PODS, alphaPod);
  await waitFor('live again', () => !production());
  api.down = true;
  api.dropWatches();
  api.remove(PODS, alphaPod);
  api.compact();
  api.down = false;
  await waitFor('the re-list to notice the deletion', () => production(), 10_000);
});

t.test("the pod watch lists what airflow.kpoPods selects, and a reload that changes it restarts the watch", async (t) => {
  const api = new FakeApiServer();
  const client = await api.client();
  t.teardown(() => api.close());
  // A custom operator (no kubernetes_pod_operator label) whose pods KPO-style lookups still find.
  const customLabels = { ...kpoLabels(), 'podgate.io/environment': 'alpha' } as Record<string, string>;
  delete customLabels['kubernetes_pod_operator'];
  api.add(PODS, { metadata: { name: 'export-custom-1', namespace: 'airflow', labels: { ...customLabels, launcher: 'batch' } } });
  const policyWith = (kpoPods: unknown) => {
    const compiled = compilePolicy({ apiVersion: 'podgate.io/v1alpha1', kind: 'Policy', airflow: { ...AIRFLOW_SECTION, kpoPods }, rules: [{ name: 'kpo-collisions', kind: 'kpoCollisionGuard' }] });
    if (!compiled.ok) throw new Error(JSON.stringify(compiled.problems));
    return compiled.policy;
  };
  const watches = new ClusterWatches({ mode: 'kubeconfig', client, detail: 'test' }, pino({ level: 'silent' }));
  t.teardown(() => { watches.stop(); });

  const byKpoLabel = policyWith({ matchLabels: { kubernetes_pod_operator: 'True' } });
  watches.ensure(byKpoLabel);
  await waitFor('the first selection to list', () => watches.state.kpoPods.synced);
  t.equal(api.requests.at(-1)?.query.get('labelSelector'), 'kubernetes_pod_operator=True');
  t.equal(watches.statuses().kpoPods?.objects, 0, 'the custom launcher’s pod is not selected');

  const byLauncher = policyWith({ matchExpressions: [{ key: 'launcher', operator: 'In', values: ['batch', 'kpo'] }, { key: 'airflow-worker', operator: 'DoesNotExist' }] });
  watches.ensure(byLauncher);
  await waitFor('the new selection to list', () => watches.state.kpoPods.synced && watches.statuses().kpoPods?.objects === 1);
  t.equal(api.requests.at(-1)?.query.get('labelSelector'), 'launcher in (batch,kpo),!airflow-worker');
  // The new watch opens after its list syncs, and the old one's close reaches the server a moment after the
  // client aborts it: wait for exactly the new one (an old watch left open keeps two here until the timeout).
  await waitFor('the old watch closed and the new one open', () => api.openWatchSelectors().join(' | ') === 'launcher in (batch,kpo),!airflow-worker');
  t.same(api.openWatchSelectors(), ['launcher in (batch,kpo),!airflow-worker'], 'the old watch is closed');
  const customPod = makeKpoPod({ suffix: 'x8k2m9qa' });
  const customPodLabels = (customPod['metadata'] as { labels: Record<string, string> }).labels;
  customPodLabels['launcher'] = 'batch';
  delete customPodLabels['kubernetes_pod_operator'];
  t.equal(decide('validate', makeRequest(customPod, PRODUCTION), byLauncher, watches.state).allowed, false, 'the collision with the custom launcher’s pod is seen');

  const listsBefore = api.requests.length;
  watches.ensure(byLauncher);
  t.equal(api.requests.length, listsBefore, 'the same selection again leaves the watch alone');
});

const KEPT: ReadonlySet<string> = new Set(['dag_id', 'task_id', 'run_id', 'map_index', 'kubernetes_pod_operator', 'already_checked', 'airflow-worker', 'podgate.io/environment']);

t.test('the slim pod keeps what a lookup selects on, not the rest', async (t) => {
  const slim = slimKpoPod({ name: 'p', namespace: 'n', labels: kpoLabels(), annotations: { big: 'x'.repeat(1000) } }, KEPT);
  t.same({ ...slim, labels: new Map(slim?.labels) }, {
    name: 'p',
    namespace: 'n',
    labels: new Map([
      ['dag_id', 'foo-bar-dag-id'],
      ['task_id', 'foo-bar-task-id'],
      ['run_id', 'scheduled__2023-03-08T0130000000-77fa57adf'],
      ['kubernetes_pod_operator', 'True'],
    ]),
  });
  t.equal(slimKpoPod({ name: 'p' }, KEPT), undefined);
});

t.test('a pod with thousands of labels is cached with the ones the check reads and a bounded rest, marked partial', async (t) => {
  const padding = Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`pad-${i}`, 'v']));
  // The padding comes first: the labels read by name must survive whatever order the pod lists them in.
  const labels = { ...padding, ...kpoLabels(), 'podgate.io/environment': 'alpha', already_checked: 'True' };
  const slim = slimKpoPod({ name: 'p', namespace: 'n', labels }, KEPT);
  t.equal(slim?.partialLabels, true, 'marked partial');
  t.equal(slim?.labels.size, MAX_OTHER_KPO_LABELS + 6, 'the kept labels and at most MAX_OTHER_KPO_LABELS others');
  for (const key of ['dag_id', 'task_id', 'run_id', 'kubernetes_pod_operator', 'podgate.io/environment', 'already_checked']) t.ok(slim?.labels.has(key), `${key} kept`);
  t.equal(slimKpoPod({ name: 'p', namespace: 'n', labels: kpoLabels() }, KEPT)?.partialLabels, undefined, 'a usual pod is complete');
});

t.test('the KPO pod index counts an admitted pod until the watch delivers it, or its time is up', async (t) => {
  const index = new KpoPodIndex();
  const pod = (name: string, run = 'r1') => slimKpoPod({ name, namespace: 'airflow', labels: { ...kpoLabels({ runId: run }), 'podgate.io/environment': 'alpha' } }, KEPT);
  const identity = (run = 'r1') => kpoIdentity('airflow', new Map(Object.entries(kpoLabels({ runId: run })))) ?? '';
  const first = pod('a');
  if (first === undefined) throw new Error('pod');
  index.admitted(first, 0);
  t.same(index.withIdentity(identity()).map((p) => p.name), ['a'], 'counted at once');
  const delivered = pod('a');
  if (delivered === undefined) throw new Error('pod');
  index.upsert(delivered);
  t.equal(index.withIdentity(identity()).length, 1, "the watch's copy replaces it, once");
  index.admitted(delivered, 1);
  t.equal(index.withIdentity(identity()).length, 1, 'a pod the watch already has is not counted again');

  const neverLands = pod('b', 'r2');
  if (neverLands === undefined) throw new Error('pod');
  index.admitted(neverLands, 1000);
  t.equal(index.byName('airflow', 'b')?.name, 'b');
  const later = pod('c', 'r3');
  if (later === undefined) throw new Error('pod');
  index.admitted(later, 1000 + ADMITTED_TTL_MS + 1);
  t.equal(index.byName('airflow', 'b'), undefined, 'a create that never landed is forgotten after its time');
  t.equal(index.withIdentity(identity('r2')).length, 0);
  t.equal(index.byName('airflow', 'a')?.name, 'a', "the watch's pods are not");
});

t.test('the slim pod remembers which of its kept labels podgate added (they are not in its own lookup)', async (t) => {
  const metadata = { name: 'p', namespace: 'n', labels: { ...kpoLabels(), 'podgate.io/environment': 'alpha' }, annotations: { 'podgate.io/injected-labels': 'podgate.io/environment,podgate.io/cluster-id,nonsense' } };
  t.same(slimKpoPod(metadata, KEPT, 'podgate.io/injected-labels')?.injectedLabels, ['podgate.io/environment'], 'only labels it keeps and carries');
  t.equal(slimKpoPod({ ...metadata, annotations: {} }, KEPT, 'podgate.io/injected-labels')?.injectedLabels, undefined);
});
