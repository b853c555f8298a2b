import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';
import { call } from '../helpers/https.ts';
import { startProcess } from '../helpers/process.ts';
import { FakeApiServer } from '../helpers/fake-apiserver.ts';
import { generateCertificates } from '../../src/certs/generate.ts';
import { makePod, makeRequest, makeReview } from '../helpers/builders.ts';
import { waitFor } from '../helpers/wait.ts';

const NODES = '/api/v1/nodes';
const node = (name: string, labels: Record<string, string> = {}) => ({ metadata: { name, labels: { 'kubernetes.io/hostname': name, ...labels } } });

t.test('the node watch (in-cluster service account): readiness follows it, and a node relabelled into the denylist takes effect without a restart', async (t) => {
  const apiCerts = await generateCertificates({ hosts: ['127.0.0.1'] });
  const api = new FakeApiServer({ cert: apiCerts.cert, key: apiCerts.key });
  const server = new URL(await api.start());
  t.teardown(() => api.close());
  api.add(NODES, node('gke-pool-1-good-a1b2'));
  api.add(NODES, node('gke-pool-1-flaky-7x2k'));
  api.down = true; // not reachable at first: podgate starts, but is not ready

  const cwd = t.testdir({ serviceaccount: { token: 'rotated-token\n' } });
  await writeFile(join(cwd, 'serviceaccount', 'ca.crt'), apiCerts.caCert);
  api.token = 'rotated-token';
  // As the kubelet sets a pod up: the API server's address in the environment, token and CA in the mounted directory.
  const podgate = await startProcess([], cwd, {
    KUBERNETES_SERVICE_HOST: server.hostname,
    KUBERNETES_SERVICE_PORT: server.port,
    PODGATE_SERVICEACCOUNT_DIR: join(cwd, 'serviceaccount'),
  });
  t.teardown(() => podgate.child.kill('SIGTERM'));
  const ca = await readFile(join(cwd, 'certs', 'ca.crt'), 'utf8');
  const url = `https://localhost:${podgate.metricsPort}`; // the operations port: /readyz with details
  const webhooks = `https://localhost:${podgate.port}`;

  const notReady = await call(`${url}/readyz`, { ca });
  t.equal(notReady.status, 503);
  t.match(notReady.body, { ready: false, checks: { policy: { ok: true }, 'watch:nodes': { ok: false, detail: /^not synced yet.*judging by names alone$/ } } });

  api.down = false;
  await waitFor('ready', async () => (await call(`${url}/readyz`, { ca })).status === 200, 15_000).catch((error: unknown) => {
    console.error(JSON.stringify(podgate.lines.slice(-5)));
    throw error;
  });
  // Ready means listed; the watch that follows the list connects a moment later.
  const nodesCheck = async () => ((await call(`${url}/readyz`, { ca })).body as { checks: Record<string, { ok: boolean; detail: string }> }).checks['watch:nodes'];
  await waitFor('the watch after the list', async () => (await nodesCheck())?.detail === '2 objects, watching');
  t.same(await nodesCheck(), { ok: true, detail: '2 objects, watching' });

  const pinned = () => makeReview(makeRequest(makePod({ name: 'export-4devg7t1', namespace: 'airflow-jobs', spec: { nodeName: 'gke-pool-1-flaky-7x2k' } })));
  const verdict = async () => {
    const review = pinned();
    return ((await call(`${webhooks}/validate`, { ca, body: JSON.stringify(review) })).body as { response: { allowed: boolean; status?: { message: string } } }).response;
  };
  t.equal((await verdict()).allowed, true, 'not quarantined yet');

  api.modify(NODES, node('gke-pool-1-flaky-7x2k', { 'podgate.io/quarantine': 'true' }));
  await waitFor('the relabel to take effect', async () => !(await verdict()).allowed, 10_000);
  t.equal(
    (await verdict()).status?.message,
    'Pod airflow-jobs/export-4devg7t1: spec.nodeName "gke-pool-1-flaky-7x2k" is on the node denylist (rule quarantined-nodes: quarantined by the platform team (kubectl get node --show-labels)). Remove the node pin or choose another node.',
  );

  // The API goes away: admission keeps answering from the last known state, and the watch comes back by itself.
  api.down = true;
  api.dropWatches();
  t.equal((await verdict()).allowed, false, 'still judged from the cache while the API is down');
  await waitFor('the reconnect to be reported', async () => /reconnecting/.test(JSON.stringify((await call(`${url}/readyz`, { ca })).body)), 10_000);
  t.equal((await call(`${url}/readyz`, { ca })).status, 200, 'still ready: the cache is still good');
  api.down = false;
  api.modify(NODES, node('gke-pool-1-flaky-7x2k'));
  await waitFor('the watch to recover and see the node released', async () => (await verdict()).allowed, 20_000);
});

t.test('--audit-interval: the server audits the cluster in the background and exports what it finds per rule, following drift', async (t) => {
  const apiCerts = await generateCertificates({ hosts: ['127.0.0.1'] });
  const api = new FakeApiServer({ cert: apiCerts.cert, key: apiCerts.key });
  const server = new URL(await api.start());
  t.teardown(() => api.close());
  const deployment = parse(await readFile(new URL('../../examples/policy-test/resources/api-server-too-small.yaml', import.meta.url), 'utf8')) as Parameters<FakeApiServer['add']>[1];
  api.add('/apis/apps/v1/deployments', deployment);
  api.add(NODES, node('gke-pool-1-good-a1b2'));
  const cwd = t.testdir({ serviceaccount: { token: 'test-token\n' } });
  await writeFile(join(cwd, 'serviceaccount', 'ca.crt'), apiCerts.caCert);
  const podgate = await startProcess(['--audit-interval', '1'], cwd, { KUBERNETES_SERVICE_HOST: server.hostname, KUBERNETES_SERVICE_PORT: server.port, PODGATE_SERVICEACCOUNT_DIR: join(cwd, 'serviceaccount') });
  t.teardown(() => podgate.child.kill('SIGTERM'));
  const ca = await readFile(join(cwd, 'certs', 'ca.crt'), 'utf8');
  const metrics = async () => (await call(`https://localhost:${podgate.metricsPort}/metrics`, { ca })).text;
  const series = (text: string, rule: string) => new RegExp(`^podgate_audit_violations\\{rule="${rule}",rule_kind="[a-zA-Z]+",action="[a-z]+"\\} (\\d+)$`, 'm').exec(text)?.[1];

  await waitFor('a first audit', async () => series(await metrics(), 'api-server-floors') === '1', 20_000);
  const first = await metrics();
  t.match(first, /^podgate_audit_violations\{rule="api-server-floors",rule_kind="resourceFloors",action="deny"\} 1$/m, 'the too-small api-server Deployment, by rule');
  t.equal(series(first, 'celery-worker-grace'), '0', 'a rule that found nothing reads 0, not absent');
  t.match(first, /^podgate_audit_runs_total\{result="success"\} [1-9]/m);
  t.match(first, /^podgate_audit_last_success_timestamp_seconds \d{10}/m);
  await waitFor('each audit is logged', () => Promise.resolve(podgate.lines.some((line) => line['msg'] === 'background audit done')), 10_000);
  const deployments = api.requests.filter((r) => r.path === '/apis/apps/v1/deployments');
  t.ok(deployments.length > 0 && deployments.every((r) => r.query.get('limit') === '50'), 'small pages in the server');

  api.remove('/apis/apps/v1/deployments', deployment);
  await waitFor('the next audit sees the fix', async () => series(await metrics(), 'api-server-floors') === '0', 20_000);
  api.forbidden.add('/apis/apps/v1/deployments');
  await waitFor('a failed audit is counted', async () => /^podgate_audit_runs_total\{result="failure"\} [1-9]/m.test(await metrics()), 20_000);
  await waitFor('the failure is logged with its reason', () => Promise.resolve(podgate.lines.some((line) => String(line['msg']).startsWith('background audit failed') && String(line['err']).includes('is forbidden'))), 10_000);
  t.equal(series(await metrics(), 'api-server-floors'), '0', 'the last results stay');
});
