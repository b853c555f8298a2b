import t from 'tap';
import { readFile } from 'node:fs/promises';
import { admissionResponseOf, call, startServer } from '../helpers/https.ts';
import { fakePolicy } from '../helpers/fake-rules.ts';
import { makePod, makeRequest, makeReview } from '../helpers/builders.ts';
import { Metrics } from '../../src/server/metrics.ts';
import { allowed } from '../../src/engine/decision.ts';
import { decide } from '../../src/engine/decide.ts';
import { compilePolicy } from '../../src/policy/registry.ts';
import { EMPTY_CLUSTER } from '../../src/policy/cluster.ts';
import { AIRFLOW_SECTION, ALPHA, makeKpoPod, PRODUCTION } from '../helpers/kpo.ts';

const policy = fakePolicy({ rules: [{ name: 'needs-team', kind: 'requireLabel', key: 'team' }, { name: 'env', kind: 'addLabel', key: 'e', value: 'x' }] });

/** One sample of the Prometheus text format, e.g. value('podgate_x_total', { a: 'b' }). */
function value(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const [series = '', sample = ''] = line.split(/ (?=[^ ]+$)/);
    const labelPart = series.slice(name.length);
    if (labelPart !== '' && !labelPart.startsWith('{')) continue;
    if (wanted.every((w) => labelPart.includes(w))) return Number(sample);
  }
  return undefined;
}

t.test('GET /metrics: requests by webhook, operation, kind and decision; rules; latency; rejections; process', async (t) => {
  const metrics = new Metrics(() => ({ nodes: { synced: true, connected: false, objects: 42, relists: 3 } }));
  const server = await startServer(policy, { metrics });
  t.teardown(() => server.close());
  const send = async (webhook: string, body: string) => call(`${server.url}/${webhook}`, { ca: server.ca, body });
  for (let i = 0; i < 3; i += 1) {
    const review = makeReview(makeRequest(makePod({ name: `p${i}` })));
    admissionResponseOf(await send('validate', JSON.stringify(review)), review);
  }
  const mutate = makeReview(makeRequest(makePod({ name: 'm', labels: { team: 'a' } })));
  admissionResponseOf(await send('mutate', JSON.stringify(mutate)), mutate);
  await send('validate', '{nope');

  const res = await call(`${server.opsUrl}/metrics`, { ca: server.ca });
  t.equal(res.status, 200);
  const text = res.text;
  t.equal(value(text, 'podgate_admission_requests_total', { webhook: 'validate', operation: 'CREATE', kind: 'Pod', decision: 'denied' }), 3);
  t.equal(value(text, 'podgate_admission_requests_total', { webhook: 'mutate', decision: 'allowed' }), 1);
  t.equal(value(text, 'podgate_rule_results_total', { rule: 'needs-team', rule_kind: 'requireLabel', result: 'fail', action: 'deny' }), 3);
  t.equal(value(text, 'podgate_rule_results_total', { rule: 'env', result: 'patched' }), 1);
  t.equal(value(text, 'podgate_admission_duration_seconds_count', { webhook: 'validate' }), 3);
  t.equal(value(text, 'podgate_admission_duration_seconds_bucket', { webhook: 'validate', le: '10' }), 3);
  t.ok(text.includes('le="0.0001"'), 'buckets resolve a tenth of a millisecond');
  t.equal(value(text, 'podgate_http_rejected_total', { reason: 'bad_request' }), 1);
  t.equal(value(text, 'podgate_watch_cached_objects', { watch: 'nodes' }), 42);
  t.equal(value(text, 'podgate_watch_synced', { watch: 'nodes' }), 1);
  t.equal(value(text, 'podgate_watch_connected', { watch: 'nodes' }), 0);
  t.type(value(text, 'podgate_process_resident_memory_bytes'), 'number', 'process metrics');
  t.type(value(text, 'podgate_nodejs_eventloop_lag_seconds'), 'number');
});

t.test('the admission latency histogram: each review counted in its webhook and bucket', async (t) => {
  const metrics = new Metrics();
  const decision = allowed();
  const before = await metrics.registry.metrics();
  t.equal(value(before, 'podgate_admission_duration_seconds_count', { webhook: 'validate' }), undefined, 'nothing observed, no series');
  const observations: ['mutate' | 'validate', number][] = [['validate', 0.00005], ['validate', 0.0001], ['validate', 0.00011], ['validate', 0.5], ['validate', 7], ['mutate', 0.02]];
  for (const [webhook, seconds] of observations) metrics.decision(webhook, 'CREATE', 'Pod', decision, seconds);
  const text = await metrics.registry.metrics();
  t.equal(value(text, 'podgate_admission_duration_seconds_bucket', { le: '0.0001', webhook: 'validate' }), 2, 'a value on a bound counts in that bucket');
  t.equal(value(text, 'podgate_admission_duration_seconds_bucket', { le: '+Inf', webhook: 'validate' }), 5);
  t.equal(value(text, 'podgate_admission_duration_seconds_count', { webhook: 'mutate' }), 1);
  t.equal(value(text, 'podgate_admission_duration_seconds_bucket', { le: '0.01', webhook: 'mutate' }), 0);
  t.equal(value(text, 'podgate_admission_duration_seconds_bucket', { le: '0.025', webhook: 'mutate' }), 1);
});

t.test('policy reload metrics', async (t) => {
  const metrics = new Metrics();
  metrics.policyLoaded(new Date('2026-11-23T12:00:00Z'));
  metrics.policyRejected();
  const text = await metrics.registry.metrics();
  t.equal(value(text, 'podgate_policy_reloads_total', { result: 'success' }), 1);
  t.equal(value(text, 'podgate_policy_reloads_total', { result: 'failure' }), 1);
  t.equal(value(text, 'podgate_policy_last_success_timestamp_seconds'), Date.parse('2026-11-23T12:00:00Z') / 1000);
  t.equal(value(text, 'podgate_policy_last_load_success'), 0);
});

t.test('load shedding: while the event loop lags, admission is answered 503 at once; health is not', async (t) => {
  const metrics = new Metrics();
  const server = await startServer(policy, { metrics, maxEventLoopDelayMs: 50 });
  t.teardown(() => server.close());
  const review = makeReview(makeRequest(makePod({ labels: { team: 'a' } })));
  // Keep the event loop busy, 150 ms at a time with short breaths, as a flood of work would, and ask
  // while it is (a bounded number of times: how soon the lag is sampled depends on the machine).
  const busy = (ms: number) => {
    const until = Date.now() + ms;
    while (Date.now() < until) {
      // nothing else runs
    }
  };
  let flooding = true;
  const flood = () => {
    if (!flooding) return;
    busy(150);
    setTimeout(flood, 5);
  };
  setTimeout(flood, 0);
  let shed: Awaited<ReturnType<typeof call>> | undefined;
  for (let attempt = 0; attempt < 30 && shed === undefined; attempt += 1) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const res = await call(`${server.url}/validate`, { ca: server.ca, body: JSON.stringify(review) });
    if (res.status === 503) shed = res;
  }
  t.equal(shed?.status, 503, 'shed while the loop lags');
  t.match(shed?.body, { error: /^podgate is overloaded/ });
  const health = await call(`${server.url}/healthz`, { ca: server.ca });
  flooding = false;
  t.equal(health.status, 200, 'liveness is never shed');
  let recovered = false;
  for (let i = 0; i < 40 && !recovered; i += 1) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    recovered = (await call(`${server.url}/validate`, { ca: server.ca, body: JSON.stringify(review) })).status === 200;
  }
  t.ok(recovered, 'answers again once the lag is gone');
  t.equal(value(await metrics.registry.metrics(), 'podgate_http_rejected_total', { reason: 'overloaded' }) !== undefined, true);
});

t.test('the rule and cross-environment counters say what happened: a patch has no action, a named check is named, and only another environment reaching in is a cross-environment attempt', async (t) => {
  const compiled = compilePolicy({
    apiVersion: 'podgate.io/v1alpha1',
    kind: 'Policy',
    airflow: AIRFLOW_SECTION,
    rules: [{ name: 'environment-labels', kind: 'kpoEnvironment' }, { name: 'kpo-collisions', kind: 'kpoCollisionGuard' }, { name: 'kpo-ownership', kind: 'kpoOwnership' }],
  });
  if (!compiled.ok) throw new Error(JSON.stringify(compiled.problems));
  const metrics = new Metrics();
  const judge = (phase: 'mutate' | 'validate', request: ReturnType<typeof makeRequest>) => { metrics.decision(phase, request.operation, 'Pod', decide(phase, request, compiled.policy, EMPTY_CLUSTER), 0.0001); };
  const alphaPod = makeKpoPod({ operatorLabels: { 'podgate.io/environment': 'alpha' } });
  judge('mutate', makeRequest(makeKpoPod(), ALPHA)); // unlabelled: labelled, and the scopedLookups warning
  judge('mutate', makeRequest(makeKpoPod({ operatorLabels: { 'podgate.io/environment': 'alpha' } }), ALPHA)); // only the cluster id added: a patch alone
  judge('validate', makeRequest(alphaPod, ALPHA)); // the pod watch has not listed: the collision check could not run
  judge('validate', makeRequest(alphaPod, { ...PRODUCTION, operation: 'DELETE', oldObject: alphaPod })); // production deletes alpha's pod
  const unlabelled = structuredClone(alphaPod);
  delete (unlabelled['metadata'] as { labels: Record<string, string> }).labels['podgate.io/environment'];
  judge('validate', makeRequest(unlabelled, { ...ALPHA, operation: 'UPDATE', oldObject: alphaPod })); // alpha removes its own pod's label
  const text = await metrics.registry.metrics();
  t.equal(value(text, 'podgate_rule_results_total', { rule: 'environment-labels', result: 'patched', action: 'none' }), 1, 'a patch is counted without an action');
  t.equal(value(text, 'podgate_rule_results_total', { rule: 'environment-labels', result: 'fail', action: 'warn', check: 'scopedLookups' }), 1);
  // The CREATE, and the UPDATE (it changes a label a lookup selects on), both before the pod watch listed.
  t.equal(value(text, 'podgate_rule_results_total', { rule: 'kpo-collisions', result: 'fail', check: 'whileUnsynced' }), 2, 'the unsynced check is told apart from a collision');
  t.equal(value(text, 'podgate_kpo_collisions_total'), undefined, 'and is no collision');
  t.equal(value(text, 'podgate_cross_environment_attempts_total', { environment: 'production', owner: 'alpha', operation: 'DELETE' }), 1);
  t.equal(value(text, 'podgate_rule_results_total', { rule: 'kpo-ownership', result: 'fail', action: 'deny' }), 2, 'both refused');
  t.equal(value(text, 'podgate_cross_environment_attempts_total', { environment: 'alpha', owner: 'alpha' }), undefined, "alpha's own label change is not counted as another environment's attempt");
});

t.test('watch relists are a counter', async (t) => {
  const metrics = new Metrics(() => ({ kpoPods: { synced: true, connected: true, objects: 3, relists: 2 } }));
  const text = await metrics.registry.metrics();
  t.match(text, /# TYPE podgate_watch_relists_total counter/);
  t.equal(value(text, 'podgate_watch_relists_total', { watch: 'kpoPods' }), 2);
});

t.test("podgate_build_info names the package's version and the Node running it", async (t) => {
  const manifest = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  const text = await new Metrics().registry.metrics();
  t.equal(value(text, 'podgate_build_info', { version: manifest.version, nodejs_version: process.version }), 1);
});
