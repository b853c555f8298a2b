import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { generateCertificates } from '../../src/certs/generate.ts';
import { inClusterClient } from '../../src/kube/client.ts';
import { MetadataReflector } from '../../src/kube/reflector.ts';
import { FakeApiServer } from '../helpers/fake-apiserver.ts';
import { waitFor } from '../helpers/wait.ts';

const NODES = '/api/v1/nodes';
const node = (name: string, labels: Record<string, string> = {}) => ({ metadata: { name, labels: { 'kubernetes.io/hostname': name, ...labels } } });
const slimLabels = (metadata: unknown) => {
  const labels = (metadata as { labels?: Record<string, string> }).labels ?? {};
  return labels['podgate.io/quarantine'] ?? 'no';
};

t.test('list, then watch: add, modify, delete; metadata only; pages', async (t) => {
  const api = new FakeApiServer();
  const client = await api.client();
  t.teardown(() => api.close());
  for (let i = 0; i < 7; i += 1) api.add(NODES, node(`n${i}`));
  const reflector = new MetadataReflector({ name: 'nodes', client, path: NODES, slim: slimLabels, log: pino({ level: 'silent' }), pageSize: 3, backoff: { initialMs: 20, maxMs: 100 } });
  t.teardown(() => { reflector.stop(); });
  await reflector.start();
  t.equal(reflector.store.size, 7, 'all pages listed');
  t.equal(reflector.status.synced, true);
  const lists = api.requests.filter((r) => r.path === NODES && !r.query.has('watch'));
  t.same(lists.map((r) => r.query.get('continue')), [null, '3', '6'], 'three pages of three');
  t.match(lists[0]?.accept, /^application\/json;as=PartialObjectMetadataList;g=meta\.k8s\.io;v=v1/);

  await waitFor('the watch to open', () => api.openWatches() === 1);
  api.add(NODES, node('n7'));
  api.modify(NODES, node('n1', { 'podgate.io/quarantine': 'true' }));
  api.remove(NODES, node('n0'));
  await waitFor('the events', () => reflector.store.get('n1') === 'true' && reflector.store.has('n7') && !reflector.store.has('n0'));
  const watch = api.requests.find((r) => r.query.get('watch') === '1');
  t.equal(watch?.query.get('allowWatchBookmarks'), 'true');
  t.match(watch?.accept, /as=PartialObjectMetadata;/);
});

t.test('a dropped connection resumes from the last version; 410 Gone re-lists', async (t) => {
  const api = new FakeApiServer();
  const client = await api.client();
  t.teardown(() => api.close());
  api.add(NODES, node('a'));
  const reflector = new MetadataReflector({ name: 'nodes', client, path: NODES, slim: slimLabels, log: pino({ level: 'silent' }), backoff: { initialMs: 20, maxMs: 100 } });
  t.teardown(() => { reflector.stop(); });
  await reflector.start();
  await waitFor('the watch', () => api.openWatches() === 1);

  api.dropWatches();
  await waitFor('the watch to reopen', () => api.requests.filter((r) => r.query.get('watch') === '1').length === 2 && api.openWatches() === 1);
  api.add(NODES, node('b'));
  await waitFor('b', () => reflector.store.has('b'));
  t.equal(reflector.status.relists, 1, 'resumed without a re-list');

  // Changes the watch never saw, then history compacted: the version is too old, the server says 410.
  api.dropWatches();
  api.down = true;
  api.remove(NODES, node('a'));
  api.add(NODES, node('c', { 'podgate.io/quarantine': 'true' }));
  api.compact();
  await waitFor('a failed attempt', () => reflector.status.lastError !== undefined);
  t.equal(reflector.store.has('a'), true, 'the last known state stays while the API is down');
  api.down = false;
  await waitFor('the re-list', () => reflector.status.relists === 2, 5_000);
  t.same([...reflector.store.keys()].sort(), ['b', 'c']);
  t.equal(reflector.store.get('c'), 'true');

  await waitFor('the watch after the re-list', () => api.openWatches() === 1);
  api.expireWatches();
  await waitFor('a re-list on a 410 ERROR event', () => reflector.status.relists === 3, 5_000);
});

t.test('a label-selected watch keeps only matching objects', async (t) => {
  const api = new FakeApiServer();
  const client = await api.client();
  t.teardown(() => api.close());
  api.add('/api/v1/pods', { metadata: { name: 'kpo', namespace: 'airflow', labels: { kubernetes_pod_operator: 'True' } } });
  api.add('/api/v1/pods', { metadata: { name: 'web', namespace: 'airflow', labels: { component: 'webserver' } } });
  const reflector = new MetadataReflector({ name: 'pods', client, path: '/api/v1/pods', labelSelector: 'kubernetes_pod_operator=True', slim: () => true, log: pino({ level: 'silent' }) });
  t.teardown(() => { reflector.stop(); });
  await reflector.start();
  t.same([...reflector.store.keys()], ['airflow/kpo']);
  t.equal(api.requests[0]?.query.get('labelSelector'), 'kubernetes_pod_operator=True');
});

t.test('in a pod (service account over node:https): a list the API server never answers times out, is retried, and recovers', async (t) => {
  const certs = await generateCertificates({ hosts: ['127.0.0.1'] });
  const api = new FakeApiServer({ cert: certs.cert, key: certs.key });
  const url = new URL(await api.start());
  t.teardown(() => api.close());
  const dir = t.testdir({ token: `${api.token}\n`, 'ca.crt': certs.caCert });
  const client = await inClusterClient({ KUBERNETES_SERVICE_HOST: url.hostname, KUBERNETES_SERVICE_PORT: url.port }, dir);
  api.add(NODES, node('a', { 'podgate.io/quarantine': 'true' }));
  api.silent = true;
  const reflector = new MetadataReflector({ name: 'nodes', client, path: NODES, slim: slimLabels, log: pino({ level: 'silent' }), listPageTimeoutMs: 300, backoff: { initialMs: 20, maxMs: 50 } });
  t.teardown(() => { reflector.stop(); });
  const firstSync = reflector.start();
  await waitFor('the list to time out', () => reflector.status.lastError !== undefined);
  t.equal(reflector.status.lastError, 'GET /api/v1/nodes: no complete answer within 0.3s');
  t.equal(reflector.status.synced, false, 'not synced while the API server hangs');
  api.silent = false;
  await firstSync;
  t.equal(reflector.store.get('a'), 'true', 'listed once the API server answers');
  t.match(api.requests[0], { path: NODES, accept: /as=PartialObjectMetadataList/ }, 'asks for metadata only, with the bearer token (else 401)');
  await waitFor('the watch', () => api.openWatches() === 1);
  api.add(NODES, node('b'));
  await waitFor('b through the watch', () => reflector.store.get('b') === 'no');
});

t.test('in a pod: a rotated cluster CA in the service-account directory is trusted from the next request on', async (t) => {
  const before = await generateCertificates({ hosts: ['127.0.0.1'] });
  const after = await generateCertificates({ hosts: ['127.0.0.1'] });
  const api = new FakeApiServer({ cert: before.cert, key: before.key });
  const url = new URL(await api.start());
  t.teardown(() => api.close());
  const dir = t.testdir({ token: api.token, 'ca.crt': before.caCert });
  const client = await inClusterClient({ KUBERNETES_SERVICE_HOST: url.hostname, KUBERNETES_SERVICE_PORT: url.port }, dir);
  const list = async () => {
    const response = await client.get(new URL(NODES, url), 'application/json', AbortSignal.timeout(5000));
    let bytes = 0;
    for await (const chunk of response.body) bytes += chunk.length;
    return bytes > 0 ? response.status : 0;
  };
  t.equal(await list(), 200, 'trusted under the first CA');
  api.rotate({ cert: after.cert, key: after.key });
  await t.rejects(list(), /certificate/i, 'a server certificate from another CA is refused');
  writeFileSync(join(dir, 'ca.crt'), after.caCert);
  t.equal(await list(), 200, 'the new CA is read and trusted, without a restart');
});
