import t from 'tap';
import { admissionResponseOf, applyResponsePatch, call, startServer, type RunningServer } from '../helpers/https.ts';
import { makeController, makePod, makeRequest, makeReview } from '../helpers/builders.ts';
import { makeKpoPod } from '../helpers/kpo.ts';
import { compilePolicy } from '../../src/policy/registry.ts';
import { readPolicyFile } from '../../src/config/load.ts';
import { DEFAULT_POLICY_PATH } from '../../src/cli/serve.ts';

// Incident 4 through the sample policy, over HTTPS as the API server calls: task pods
// are marked so node consolidation leaves them alone, and Celery workers keep a grace
// period that lets their tasks finish.

type Json = Record<string, unknown>;
const PRODUCTION_WORKER = { username: 'system:serviceaccount:airflow-prod:airflow-worker', groups: ['system:serviceaccounts', 'system:serviceaccounts:airflow-prod'] };
const SCHEDULER = { username: 'system:serviceaccount:airflow-prod:airflow-scheduler', groups: ['system:serviceaccounts', 'system:serviceaccounts:airflow-prod'] };
const HELM = { username: 'system:serviceaccount:ci:helm', groups: ['system:serviceaccounts'] };
const STAY_PUT = { 'karpenter.sh/do-not-disrupt': 'true', 'cluster-autoscaler.kubernetes.io/safe-to-evict': 'false' };

/** A KubernetesExecutor worker pod as the scheduler creates it from the chart's pod template (labels and annotations as Airflow's pod generator sets them). */
function kubernetesExecutorPod(): Json {
  const pod = makePod({
    name: 'etl-daily-export-f3a9c2d1',
    namespace: 'airflow-prod',
    labels: {
      tier: 'airflow',
      component: 'worker',
      release: 'airflow',
      'airflow-worker': '4711',
      dag_id: 'etl-daily',
      task_id: 'export',
      run_id: 'scheduled__2026-11-23T0000000000-8c1e4a2b1',
      try_number: '1',
      airflow_version: '3.1.3',
      kubernetes_executor: 'True',
    },
    spec: { terminationGracePeriodSeconds: 600 },
  });
  (pod['metadata'] as Json)['annotations'] = { dag_id: 'etl-daily', task_id: 'export', try_number: '1', run_id: 'scheduled__2026-11-23T00:00:00+00:00' };
  return pod;
}

async function review(server: RunningServer, path: '/mutate' | '/validate', object: Json, who: { username: string; groups: string[] }) {
  const sent = makeReview(makeRequest(object, who));
  return admissionResponseOf(await call(`${server.url}${path}`, { ca: server.ca, body: JSON.stringify(sent) }), sent);
}
const annotationsOf = (object: Json) => (object['metadata'] as { annotations?: Record<string, string> }).annotations ?? {};

t.test('incident 4 with the sample policy, over HTTPS', async (t) => {
  const sample = await readPolicyFile(DEFAULT_POLICY_PATH, compilePolicy);
  if (!sample.ok) throw new Error(sample.errors.join('\n'));
  const server = await startServer(sample.policy);
  t.teardown(() => server.close());

  await t.test('a KPO pod and a KubernetesExecutor worker pod come back with both annotations, and pass validation', async (t) => {
    for (const [name, pod, who] of [['KPO pod', makeKpoPod({ namespace: 'airflow-prod', operatorLabels: { 'podgate.io/environment': 'production' } }), PRODUCTION_WORKER], ['KubernetesExecutor worker', kubernetesExecutorPod(), SCHEDULER]] as const) {
      const mutation = await review(server, '/mutate', pod, who);
      t.equal(mutation.allowed, true, name);
      const patched = applyResponsePatch(pod, mutation);
      t.match(annotationsOf(patched), STAY_PUT, `${name}: both annotations`);
      t.match(annotationsOf(patched), annotationsOf(pod), `${name}: its own annotations kept`);
      const again = await review(server, '/mutate', patched, who);
      t.equal(again.patch, undefined, `${name}: reinvocation changes nothing`);
      t.equal((await review(server, '/validate', patched, who)).allowed, true, `${name}: admitted`);
    }
  });

  await t.test('a pod that says karpenter.sh/do-not-disrupt: "false" keeps it', async (t) => {
    const pod = kubernetesExecutorPod();
    (pod['metadata'] as { annotations: Record<string, string> }).annotations['karpenter.sh/do-not-disrupt'] = 'false';
    const patched = applyResponsePatch(pod, await review(server, '/mutate', pod, SCHEDULER));
    t.equal(annotationsOf(patched)['karpenter.sh/do-not-disrupt'], 'false');
    t.equal(annotationsOf(patched)['cluster-autoscaler.kubernetes.io/safe-to-evict'], 'false', 'the other is still added');
  });

  await t.test('a pod that is no Airflow task gets nothing', async (t) => {
    const response = await review(server, '/mutate', makePod({ namespace: 'web', labels: { app: 'shop' } }), HELM);
    t.same([response.allowed, response.patch], [true, undefined]);
  });

  await t.test('a Celery worker StatefulSet with terminationGracePeriodSeconds 60 is refused with the Helm value to raise', async (t) => {
    const worker = makeController('StatefulSet', 'airflow-worker', { namespace: 'airflow-prod', labels: { tier: 'airflow', component: 'worker', release: 'airflow' }, spec: { terminationGracePeriodSeconds: 60 } });
    const response = await review(server, '/validate', worker, HELM);
    t.equal(response.allowed, false);
    t.equal(
      response.status?.message,
      'StatefulSet airflow-prod/airflow-worker: terminationGracePeriodSeconds 60 is below the floor 600 (rule celery-worker-grace). ' +
        'A Celery worker stopped before its tasks end loses them; raise workers.terminationGracePeriodSeconds to at least 600 in your Helm values.',
    );
    const chartDefault = makeController('StatefulSet', 'airflow-worker', { namespace: 'airflow-prod', labels: { tier: 'airflow', component: 'worker', release: 'airflow' }, spec: { terminationGracePeriodSeconds: 600 } });
    t.equal((await review(server, '/validate', chartDefault, HELM)).allowed, true, "the chart's default passes");
  });
});
