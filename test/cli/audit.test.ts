import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { audit } from '../../src/cli/audit.ts';
import { DEFAULT_POLICY_PATH } from '../../src/cli/serve.ts';
import { FakeApiServer, kubeconfigFor } from '../helpers/fake-apiserver.ts';
import { kpoLabels } from '../helpers/kpo.ts';
import { runCommand } from '../helpers/process.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
const resources = join(ROOT, 'examples/policy-test/resources');
type Obj = Parameters<FakeApiServer['add']>[1];

const container = (name: string) => ({ name, image: 'busybox', resources: { requests: { cpu: '100m', memory: '128Mi' } } });
const pod = (namespace: string, name: string, extra: { labels?: Record<string, string>; annotations?: Record<string, string>; spec?: Record<string, unknown>; owner?: string } = {}): Obj => ({
  metadata: {
    name,
    namespace,
    uid: `uid-${namespace}-${name}`,
    ...(extra.labels ? { labels: extra.labels } : {}),
    ...(extra.annotations ? { annotations: extra.annotations } : {}),
    ...(extra.owner ? { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'owner', uid: extra.owner, controller: true }] } : {}),
  },
  spec: { containers: [container('main')], ...extra.spec },
});

/**
 * A cluster as a platform team finds it before podgate: thousands of ordinary pods, the chart's
 * too-small api-server (its Deployment, ReplicaSet and two pods), a Celery worker StatefulSet with a
 * short grace period, a pod on a quarantined node, and KPO pods from before podgate labelled them.
 */
async function seededCluster(t: { teardown: (fn: () => unknown) => void; testdir: () => string }, ordinaryPods = 3000): Promise<{ api: FakeApiServer; env: NodeJS.ProcessEnv }> {
  const api = new FakeApiServer();
  const server = await api.start();
  t.teardown(() => api.close());
  const dir = t.testdir();
  await writeFile(join(dir, 'kubeconfig'), kubeconfigFor(server));
  for (let i = 0; i < 4; i += 1) api.add('/api/v1/nodes', { metadata: { name: `node-${i}`, labels: { 'kubernetes.io/hostname': `node-${i}`, ...(i === 3 ? { 'podgate.io/quarantine': 'true' } : {}) } } });
  for (let i = 0; i < ordinaryPods; i += 1) api.add('/api/v1/pods', pod(`team-${i % 7}`, `web-${i}`, { labels: { app: 'web' }, spec: { nodeName: `node-${i % 3}` } }));

  const deployment = parse(await readFile(join(resources, 'api-server-too-small.yaml'), 'utf8')) as Obj;
  api.add('/apis/apps/v1/deployments', { ...deployment, metadata: { ...deployment.metadata, uid: 'uid-deploy' } });
  const template = (deployment['spec'] as { template: { metadata: { labels: Record<string, string> }; spec: Record<string, unknown> } }).template;
  api.add('/apis/apps/v1/replicasets', { metadata: { name: 'airflow-api-server-5f7d9c', namespace: 'airflow', uid: 'uid-rs', ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'airflow-api-server', uid: 'uid-deploy', controller: true }] }, spec: { template } });
  for (const suffix of ['a1', 'b2']) api.add('/api/v1/pods', { metadata: { name: `airflow-api-server-5f7d9c-${suffix}`, namespace: 'airflow', uid: `uid-${suffix}`, labels: template.metadata.labels, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'airflow-api-server-5f7d9c', uid: 'uid-rs', controller: true }] }, spec: template.spec });

  const worker = parse(await readFile(join(resources, 'celery-worker-short-grace.yaml'), 'utf8')) as Obj;
  api.add('/apis/apps/v1/statefulsets', { ...worker, metadata: { ...worker.metadata, uid: 'uid-worker' } });
  api.add('/api/v1/pods', pod('airflow-jobs', 'pinned-1', { spec: { nodeName: 'node-3' } }));

  const task = { dagId: 'etl-daily', taskId: 'export', runId: 'scheduled__2026-11-30T00:00:00+00:00' };
  const injected = { 'podgate.io/injected-labels': 'podgate.io/environment,podgate.io/cluster-id' };
  const tagged = (environment: string) => ({ 'podgate.io/environment': environment, 'podgate.io/cluster-id': 'shared-cluster-1' });
  // The same task instance in both environments, each labelled by podgate rather than by its operator: a collision waiting to happen.
  api.add('/api/v1/pods', pod('airflow', 'export-prod-x1', { labels: { ...kpoLabels(task), ...tagged('production') }, annotations: injected }));
  api.add('/api/v1/pods', pod('airflow', 'export-alpha-y2', { labels: { ...kpoLabels(task), ...tagged('alpha') }, annotations: injected }));
  // Created while the mutating webhook failed open: no environment label at all.
  api.add('/api/v1/pods', pod('airflow', 'load-old-z3', { labels: kpoLabels({ dagId: 'load', taskId: 'copy', runId: 'manual__1' }) }));
  // Scoped by its own operator (the Airflow cluster policy): nothing to say.
  api.add('/api/v1/pods', pod('airflow', 'scoped-w4', { labels: kpoLabels({ dagId: 'load', taskId: 'copy', runId: 'manual__2', operatorLabels: tagged('production') }) }));
  return { api, env: { KUBECONFIG: join(dir, 'kubeconfig') } };
}

function capture(terminal = false) {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (text: string) => out.push(text), err: (text: string) => err.push(text), errIsTerminal: terminal }, stdout: () => out.join(''), stderr: () => err.join('') };
}

t.test('podgate audit on a seeded cluster: every finding, grouped by rule, in the webhook\'s words', async (t) => {
  const { api, env } = await seededCluster(t);
  const run = capture();
  const code = await audit(['--page-size', '200'], run.io, DEFAULT_POLICY_PATH, env);
  const text = run.stdout();
  t.equal(code, 1, 'exit 1: something was found');
  t.match(text, /^podgate audit of kubeconfig .*, context fake: 0 CronJobs, 1 Deployment, 1 StatefulSet, 0 DaemonSets, 0 Jobs, 1 ReplicaSet, 0 ReplicationControllers, 3007 Pods judged by 6 rule\(s\)$/m);
  t.match(text, /^rule api-server-floors \(resourceFloors, the webhook denies these\): 4 finding\(s\)$/m);
  t.match(text, /^ {2}Deployment airflow\/airflow-api-server: container "api-server" requests\.memory 1Gi is below the floor 4Gi/m, 'the webhook\'s own message');
  t.match(text, /^ {4}\(and 3 object\(s\) it controls, for the same reason\)$/m, 'its ReplicaSet and two pods fold into the Deployment');
  t.notMatch(text, /^ {2}Pod airflow\/airflow-api-server-5f7d9c-a1/m, 'not listed again on their own');
  t.match(text, /^rule celery-worker-grace \(gracePeriodFloor, .*\): 1 finding\(s\)\n {2}StatefulSet airflow\/airflow-worker: terminationGracePeriodSeconds 60 is below the floor 600/m);
  t.match(text, /^rule quarantined-nodes \(nodeDenylist, .*\): 1 finding\(s\)\n {2}Pod airflow-jobs\/pinned-1: .*node-3/m);
  t.match(text, /^ {2}Pod airflow\/load-old-z3: it has no podgate\.io\/environment label/m, 'a KPO pod without the label');
  t.match(text, /^ {2}Pod airflow\/export-prod-x1: environment production's operator does not set podgate\.io\/environment in its labels/m, 'lookups not scoped');
  t.notMatch(text, /scoped-w4/, 'a pod its operator labelled has nothing to report');
  t.match(text, /^rule environment-labels \(kpoEnvironment, the webhook warns of 2 and denies 1\): 3 finding\(s\)$/m, 'a rule whose checks act differently counts each action');
  t.match(text, /^rule kpo-collisions \(kpoCollisionGuard, the webhook denies these\): 2 finding\(s\)$/m, 'both pods of the task instance (the unlabelled pod is another task\'s)');
  t.match(text, /^ {2}Pod airflow\/export-prod-x1: the operator's lookup for this task \(dag_id=etl-daily, task_id=export, run_id=scheduled__2026-11-30T0000000000-[0-9a-f]+\) also matches live pod airflow\/export-alpha-y2 of environment alpha/m);
  t.notMatch(text, /web-\d+/, 'ordinary pods pass');
  t.match(text, /\n\d+ finding\(s\) by 5 rule\(s\)\n$/);

  const lists = api.requests.filter((r) => r.path === '/api/v1/pods' && r.query.get('watch') === null);
  const full = lists.filter((r) => !(r.accept ?? '').includes('PartialObjectMetadata'));
  t.ok(full.length >= 16, `pods were read in pages (${full.length} requests)`);
  t.ok(full.every((r) => r.query.get('limit') === '200'), 'never more than a page of whole pods at once');
  t.ok(full.slice(1).every((r) => (r.query.get('continue') ?? '') !== ''), 'each page after the first continues the list');
  t.ok(lists.some((r) => (r.accept ?? '').includes('PartialObjectMetadata') && r.query.get('labelSelector')?.includes('kubernetes_pod_operator=True') === true), 'the live KPO pods are listed as the watch lists them, metadata only');
  t.equal(api.requests.filter((r) => r.query.get('watch') !== null).length, 0, 'an audit lists; it does not watch');
});

t.test('-o json and -o policyreport', async (t) => {
  const { env } = await seededCluster(t, 50);
  const json = capture();
  t.equal(await audit(['-o', 'json'], json.io, DEFAULT_POLICY_PATH, env), 1);
  const report = JSON.parse(json.stdout()) as { objects: Record<string, number>; rules: { rule: string; count: number }[]; findings: { rule: string; object: { kind: string; name: string; uid: string } }[] };
  t.equal(report.objects['Pod'], 57);
  t.same(report.rules.find((r) => r.rule === 'api-server-floors')?.count, 4);
  t.ok(report.findings.some((f) => f.rule === 'api-server-floors' && f.object.kind === 'ReplicaSet' && f.object.uid === 'uid-rs'), 'json keeps every object, folded or not');

  const yaml = capture();
  t.equal(await audit(['-o', 'policyreport'], yaml.io, DEFAULT_POLICY_PATH, env), 1);
  const documents = parseAllDocuments(yaml.stdout()).map((d) => d.toJS() as { apiVersion: string; kind: string; metadata: { name: string; namespace?: string }; summary: Record<string, number>; results: { rule: string; result: string; message: string; resources: { kind: string; name: string; namespace?: string }[]; properties: Record<string, string> }[] });
  t.ok(documents.length >= 2);
  t.ok(documents.every((d) => d.apiVersion === 'wgpolicyk8s.io/v1alpha2' && d.kind === 'PolicyReport' && d.metadata.name === 'podgate-audit'));
  const airflow = documents.find((d) => d.metadata.namespace === 'airflow');
  const floor = airflow?.results.find((r) => r.rule === 'api-server-floors' && r.resources[0]?.kind === 'Deployment');
  t.equal(floor?.result, 'fail', 'a finding the webhook denies is a fail');
  t.match(floor?.message, /^Deployment airflow\/airflow-api-server: container "api-server" requests\.memory 1Gi/);
  t.same(floor?.resources[0], { apiVersion: 'apps/v1', kind: 'Deployment', namespace: 'airflow', name: 'airflow-api-server', uid: 'uid-deploy' });
  const scoped = airflow?.results.find((r) => r.properties['check'] === 'scopedLookups');
  t.equal(scoped?.result, 'warn', 'a finding the webhook warns of is a warn');
  t.equal(airflow?.summary['fail'], airflow?.results.filter((r) => r.result === 'fail').length, 'the summary counts the results');
  t.equal(documents.find((d) => d.metadata.namespace === 'airflow-jobs')?.results[0]?.rule, 'quarantined-nodes');
});

t.test('a clean cluster exits 0; errors name what to fix and exit 2', async (t) => {
  const api = new FakeApiServer();
  const server = await api.start();
  t.teardown(() => api.close());
  const dir = t.testdir();
  await writeFile(join(dir, 'kubeconfig'), kubeconfigFor(server));
  const env = { KUBECONFIG: join(dir, 'kubeconfig') };
  api.add('/api/v1/pods', pod('team', 'web-1'));
  const clean = capture();
  t.equal(await audit([], clean.io, DEFAULT_POLICY_PATH, env), 0);
  t.match(clean.stdout(), /\nnothing found\n$/);

  api.forbidden.add('/apis/apps/v1/statefulsets');
  const forbidden = capture();
  t.equal(await audit([], forbidden.io, DEFAULT_POLICY_PATH, env), 2);
  t.match(forbidden.stderr(), /^podgate audit: listing statefulsets\.apps is forbidden \(HTTP 403: statefulsets\.apps is forbidden: User .* cannot list resource "statefulsets"/);
  t.match(forbidden.stderr(), /needs "list" on statefulsets\.apps in every namespace \(a ClusterRole with apiGroups: \["apps"\], resources: \["statefulsets"\], verbs: \["list"\]/);
  api.forbidden.clear();

  api.token = 'another';
  const unauthorized = capture();
  t.equal(await audit([], unauthorized.io, DEFAULT_POLICY_PATH, env), 2);
  t.match(unauthorized.stderr(), /did not accept the credentials \(HTTP 401/);
  api.token = 'test-token';

  const gone = new FakeApiServer();
  const goneAt = await gone.start();
  await gone.close();
  await writeFile(join(dir, 'kubeconfig'), kubeconfigFor(goneAt));
  const unreachable = capture();
  t.equal(await audit([], unreachable.io, DEFAULT_POLICY_PATH, env), 2);
  t.match(unreachable.stderr(), /^podgate audit: cannot list nodes: the API server at http:\/\/127\.0\.0\.1:\d+ did not answer \(.*ECONNREFUSED.*\); check that it is reachable/);

  const offline = capture();
  t.equal(await audit([], offline.io, DEFAULT_POLICY_PATH, { KUBECONFIG: join(dir, 'none') }), 2);
  t.match(offline.stderr(), /no cluster to audit \(offline: no in-cluster service account and no kubeconfig at .*none\)/);
  await t.rejects(audit(['-o', 'yaml'], capture().io, DEFAULT_POLICY_PATH, env), /--output is text, json or policyreport/);
});

t.test('an expired continue token: the list goes on from the token the API server offers, or the audit says to run again', async (t) => {
  const { api, env } = await seededCluster(t, 30);
  api.expiredContinue.set('10', '10');
  const run = capture();
  t.equal(await audit(['--page-size', '10'], run.io, DEFAULT_POLICY_PATH, env), 1);
  t.match(run.stdout(), /\b37 Pods\b/, 'nothing lost: the rest of the list came with the offered token');
  api.expiredContinue.set('10', undefined);
  const failed = capture();
  t.equal(await audit(['--page-size', '10'], failed.io, DEFAULT_POLICY_PATH, env), 2);
  t.match(failed.stderr(), /the API server expired the list while it was being read \(HTTP 410: The provided continue parameter is too old.*\); run the audit again/);
});

t.test('progress goes to a terminal only, and only for a large cluster', async (t) => {
  const { env } = await seededCluster(t, 1500);
  const terminal = capture(true);
  await audit(['--page-size', '500'], terminal.io, DEFAULT_POLICY_PATH, env);
  const clear = '\r\u001b[K';
  t.ok(terminal.stderr().includes(`${clear}listing pods: 1000 judged`), 'a progress line, rewritten in place');
  t.ok(terminal.stderr().endsWith(clear), 'the line is cleared before the report');
  const piped = capture(false);
  await audit(['--page-size', '500'], piped.io, DEFAULT_POLICY_PATH, env);
  t.equal(piped.stderr(), '');
});

t.test('the installed command: podgate audit --help and its exit status', async (t) => {
  const { env } = await seededCluster(t, 5);
  const cwd = String(env['KUBECONFIG']).replace(/\/kubeconfig$/, '');
  const help = await runCommand(['audit', '--help'], cwd);
  t.equal(help.code, 0);
  t.match(help.stdout, /^Usage: podgate audit \[options\]/);
  const run = await runCommand(['audit'], cwd, undefined, env);
  t.equal(run.code, 1, run.stderr);
  t.match(run.stdout, /^rule api-server-floors /m);
});

t.test('a namespace with more findings than one report holds gets several; a cycle of ownerReferences folds and ends', async (t) => {
  const api = new FakeApiServer();
  const server = await api.start();
  t.teardown(() => api.close());
  const dir = t.testdir();
  await writeFile(join(dir, 'kubeconfig'), kubeconfigFor(server));
  api.add('/api/v1/nodes', { metadata: { name: 'bad', labels: { 'podgate.io/quarantine': 'true' } } });
  for (let i = 0; i < 1001; i += 1) api.add('/api/v1/pods', pod('jobs', `pinned-${i}`, { spec: { nodeName: 'bad' } }));
  // Two pods each naming the other as controller: the API server does not refuse it.
  api.add('/api/v1/pods', pod('loop', 'a', { spec: { nodeName: 'bad' }, owner: 'uid-loop-b' }));
  api.add('/api/v1/pods', pod('loop', 'b', { spec: { nodeName: 'bad' }, owner: 'uid-loop-a' }));
  const env = { KUBECONFIG: join(dir, 'kubeconfig') };
  const yaml = capture();
  t.equal(await audit(['-o', 'policyreport', '--page-size', '500'], yaml.io, DEFAULT_POLICY_PATH, env), 1);
  const reports = parseAllDocuments(yaml.stdout()).map((d) => d.toJS() as { metadata: { name: string; namespace: string }; results: unknown[] });
  t.same(reports.filter((r) => r.metadata.namespace === 'jobs').map((r) => [r.metadata.name, r.results.length]), [['podgate-audit', 1000], ['podgate-audit-2', 1]]);
  const text = capture();
  t.equal(await audit(['--show', '0'], text.io, DEFAULT_POLICY_PATH, env), 1);
  t.match(text.stdout(), /^ {2}Pod loop\/[ab]: .*\n {4}\(and 1 object\(s\) it controls, for the same reason\)$/m, 'the loop is folded, into the pod where it closes');
  t.equal(text.stdout().match(/^ {2}Pod loop\//gm)?.length, 1, 'and listed once');
});
