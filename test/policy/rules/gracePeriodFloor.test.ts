import t from 'tap';
import { decide } from '../../../src/engine/decide.ts';
import { EMPTY_CLUSTER } from '../../../src/policy/cluster.ts';
import { policyCompiler, type Policy } from '../../../src/policy/policy.ts';
import { gracePeriodFloor } from '../../../src/policy/rules/gracePeriodFloor.ts';
import { makeController, makePod, makeRequest, type PodOptions } from '../../helpers/builders.ts';

type Json = Record<string, unknown>;

const compile = policyCompiler([gracePeriodFloor]);
const workerRule = {
  name: 'celery-worker-grace',
  kind: 'gracePeriodFloor',
  match: { labelSelector: { matchLabels: { component: 'worker' } } },
  seconds: 900,
  reason: 'a Celery worker stopped before its longest task ends loses that task',
  helmValue: 'workers.terminationGracePeriodSeconds',
};
function policy(rule: Json = workerRule): Policy {
  const result = compile({ apiVersion: 'podgate.io/v1alpha1', kind: 'Policy', rules: [rule] });
  if (!result.ok) throw new Error(JSON.stringify(result.problems));
  return result.policy;
}
const worker = (grace: unknown, extra: PodOptions = {}): PodOptions => ({ labels: { component: 'worker', release: 'airflow' }, spec: { terminationGracePeriodSeconds: grace }, ...extra });
const message = (object: Json, rule: Json = workerRule, options: Parameters<typeof makeRequest>[1] = {}) => {
  const decision = decide('validate', makeRequest(object, options), policy(rule), EMPTY_CLUSTER);
  return decision.allowed ? undefined : decision.denial.message;
};

t.test('the incident: a Celery worker StatefulSet with 60 s is refused with the Helm value to raise', async (t) => {
  t.equal(
    message(makeController('StatefulSet', 'airflow-worker', worker(60))),
    'StatefulSet airflow/airflow-worker: terminationGracePeriodSeconds 60 is below the floor 900 (rule celery-worker-grace). ' +
      'A Celery worker stopped before its longest task ends loses that task; raise workers.terminationGracePeriodSeconds to at least 900 in your Helm values.',
  );
  t.equal(message(makeController('StatefulSet', 'airflow-worker', worker(900))), undefined, 'at the floor');
  t.equal(message(makeController('StatefulSet', 'airflow-worker', worker(3600))), undefined, 'above it');
  t.equal(message(makeController('StatefulSet', 'airflow-scheduler', { labels: { component: 'scheduler' }, spec: { terminationGracePeriodSeconds: 10 } })), undefined, 'not selected');
});

t.test('a template that sets none gets the API server’s 30 s: below a floor above 30, fine for one at or below it', async (t) => {
  const unset = makeController('Deployment', 'airflow-worker', { labels: { component: 'worker' } });
  const template = ((unset['spec'] as Json)['template'] as { spec: Json }).spec;
  delete template['terminationGracePeriodSeconds'];
  t.equal(
    message(unset),
    "Deployment airflow/airflow-worker: sets no terminationGracePeriodSeconds, so its pods get the API server's default of 30, below the floor 900 (rule celery-worker-grace). " +
      'A Celery worker stopped before its longest task ends loses that task; set workers.terminationGracePeriodSeconds to at least 900 in your Helm values.',
  );
  t.equal(message(unset, { ...workerRule, seconds: 30 }), undefined, 'a floor the default meets');
});

t.test('without helmValue the fix names the field where this kind of object carries it', async (t) => {
  const rule = { name: 'grace', kind: 'gracePeriodFloor', seconds: 120 };
  const cases: [Json, string][] = [
    [makePod(worker(30)), 'Pod airflow/export-action-log-4devg7t1: terminationGracePeriodSeconds 30 is below the floor 120 (rule grace). Set spec.terminationGracePeriodSeconds to at least 120.'],
    [makeController('Job', 'backfill', worker(30)), 'Job airflow/backfill: terminationGracePeriodSeconds 30 is below the floor 120 (rule grace). Set spec.template.spec.terminationGracePeriodSeconds to at least 120.'],
    [makeController('CronJob', 'cleanup', worker(30)), 'CronJob airflow/cleanup: terminationGracePeriodSeconds 30 is below the floor 120 (rule grace). Set spec.jobTemplate.spec.template.spec.terminationGracePeriodSeconds to at least 120.'],
  ];
  for (const [object, expected] of cases) t.equal(message(object, rule), expected, String(object['kind']));
});

t.test('a value that is not a whole number is a finding naming it, cut short, never a crash', async (t) => {
  const rule = { name: 'grace', kind: 'gracePeriodFloor', seconds: 120 };
  t.equal(message(makePod(worker('600')), rule), 'Pod airflow/export-action-log-4devg7t1: terminationGracePeriodSeconds "600" is not a whole number of seconds (the floor is 120) (rule grace). Correct spec.terminationGracePeriodSeconds to at least 120.');
  t.equal(message(makePod(worker(600.5)), rule), 'Pod airflow/export-action-log-4devg7t1: terminationGracePeriodSeconds 600.5 is not a whole number of seconds (the floor is 120) (rule grace). Correct spec.terminationGracePeriodSeconds to at least 120.');
  const long = message(makePod(worker(Array.from({ length: 100_000 }, () => 1))), rule) ?? '';
  t.ok(long.length < 300, `bounded message (${long.length} characters)`);
});

t.test('judged like the floors: Pods on CREATE, controllers when the template changes', async (t) => {
  const low = makeController('StatefulSet', 'airflow-worker', worker(60));
  const scaled = structuredClone(low);
  (scaled['spec'] as Json)['replicas'] = 5;
  t.equal(message(scaled, workerRule, { operation: 'UPDATE', oldObject: low }), undefined, 'a scale of an old StatefulSet is not refused');
  const lowered = structuredClone(low);
  const old = makeController('StatefulSet', 'airflow-worker', worker(1200));
  t.match(message(lowered, workerRule, { operation: 'UPDATE', oldObject: old }), /terminationGracePeriodSeconds 60 is below the floor 900/, 'a template change that lowers it is');
  const pod = makePod(worker(60));
  t.match(message(pod), /^Pod airflow\/export-action-log-4devg7t1: terminationGracePeriodSeconds 60 is below/, 'a Pod on CREATE');
  t.equal(message(pod, workerRule, { operation: 'UPDATE', oldObject: pod }), undefined, 'a Pod UPDATE (the field cannot be raised on a live pod)');
});

t.test('the floor is checked when the policy loads', async (t) => {
  const problems = (rule: Json) => {
    const result = compile({ apiVersion: 'podgate.io/v1alpha1', kind: 'Policy', rules: [rule] });
    return result.ok ? [] : result.problems.map((p) => `${p.path.slice(2).join('.')}: ${p.message}`); // paths relative to the rule
  };
  t.match(problems({ name: 'g', kind: 'gracePeriodFloor' }).join('\n'), /seconds/);
  t.match(problems({ name: 'g', kind: 'gracePeriodFloor', seconds: '600' }).join('\n'), /seconds: must be a whole number/);
  t.match(problems({ name: 'g', kind: 'gracePeriodFloor', seconds: 0 }).join('\n'), /seconds: must be at least 1/);
  t.same(problems({ name: 'g', kind: 'gracePeriodFloor', seconds: 600 }), []);
});
