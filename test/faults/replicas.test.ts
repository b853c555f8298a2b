import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Agent } from 'node:https';
import { call } from '../helpers/https.ts';
import { startProcess, type ServerProcess } from '../helpers/process.ts';
import { FakeApiServer } from '../helpers/fake-apiserver.ts';
import { generateCertificates } from '../../src/certs/generate.ts';
import { makeRequest, makeReview } from '../helpers/builders.ts';
import { ALPHA, makeKpoPod, PRODUCTION } from '../helpers/kpo.ts';
import { waitFor } from '../helpers/wait.ts';

/**
 * Two replicas behind one Service, one API server: alpha's and production's identical
 * pods reach different replicas. A replica counts the pods it admitted itself at once;
 * the other learns of them from its pod watch. This measures the window that leaves:
 * pairs sent at once, and with the second sent some milliseconds after the first was
 * admitted (and stored, as the API server would store it).
 */
const POLICY = `apiVersion: podgate.io/v1alpha1
kind: Policy
airflow:
  clusterId: gke-shared-1
  environments:
    - name: production
      extra: { canonicalArn: ["arn:aws:iam::111122223333:role/mwaa-prod-*"] }
    - name: alpha
      serviceAccountNamespaces: [airflow-alpha]
rules:
  - name: kpo-collisions
    kind: kpoCollisionGuard
    whileUnsynced: deny
`;

type Json = Record<string, unknown>;

t.test('two replicas, one API server: the window in which both pods of a pair get through', async (t) => {
  const apiCerts = await generateCertificates({ hosts: ['127.0.0.1'] });
  const api = new FakeApiServer({ cert: apiCerts.cert, key: apiCerts.key });
  const apiUrl = new URL(await api.start());
  t.teardown(() => api.close());
  const cwd = t.testdir({ 'podgate.yaml': POLICY, serviceaccount: { token: 'test-token\n' } });
  await writeFile(join(cwd, 'serviceaccount', 'ca.crt'), apiCerts.caCert);
  const env = { KUBERNETES_SERVICE_HOST: apiUrl.hostname, KUBERNETES_SERVICE_PORT: apiUrl.port, PODGATE_SERVICEACCOUNT_DIR: join(cwd, 'serviceaccount') };
  const first = await startProcess(['--config', 'podgate.yaml'], cwd, env);
  t.teardown(() => first.child.kill('SIGTERM'));
  const second = await startProcess(['--config', 'podgate.yaml'], cwd, env); // reuses the certificates the first made
  t.teardown(() => second.child.kill('SIGTERM'));
  const ca = await readFile(join(cwd, 'certs', 'ca.crt'), 'utf8');
  for (const replica of [first, second]) await waitFor('the pod watch listed', async () => (await call(`https://localhost:${replica.port}/readyz`, { ca })).status === 200, 15_000);
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  t.teardown(() => { agent.destroy(); });

  /** The pod as the mutating webhook left it: its environment label added by podgate (so the lookup is not scoped). */
  const labelled = (pod: Json, environment: string): Json => {
    const metadata = pod['metadata'] as { labels: Record<string, string>; annotations?: Record<string, string> };
    metadata.labels['podgate.io/environment'] = environment;
    metadata.annotations = { 'podgate.io/injected-labels': 'podgate.io/environment' };
    return pod;
  };
  /** Validates at one replica; an admitted pod is stored, as the API server does, which the other replica's watch then delivers. */
  const create = async (replica: ServerProcess, pod: Json, who: typeof ALPHA | typeof PRODUCTION): Promise<boolean> => {
    const sent = makeReview(makeRequest(pod, who));
    const res = await call(`https://localhost:${replica.port}/validate`, { ca, body: JSON.stringify(sent), agent });
    const allowed = (res.body as { response: { allowed: boolean } }).response.allowed;
    if (allowed) api.add('/api/v1/pods', { metadata: pod['metadata'] as { name: string; namespace: string; labels: Record<string, string> } });
    return allowed;
  };
  let task = 0;
  /** Pairs of one task instance, alpha's to the first replica and production's to the second `gapMs` after alpha's was admitted. */
  const race = async (pairs: number, gapMs: number | 'same moment'): Promise<number> => {
    let both = 0;
    for (let i = 0; i < pairs; i += 1) {
      task += 1;
      const alpha = labelled(makeKpoPod({ taskId: `t${task}`, suffix: `a${task}` }), 'alpha');
      const production = labelled(makeKpoPod({ taskId: `t${task}`, suffix: `p${task}` }), 'production');
      let admitted: boolean[];
      if (gapMs === 'same moment') admitted = await Promise.all([create(first, alpha, ALPHA), create(second, production, PRODUCTION)]);
      else {
        const a = await create(first, alpha, ALPHA);
        await new Promise((resolve) => setTimeout(resolve, gapMs));
        admitted = [a, await create(second, production, PRODUCTION)];
      }
      if (admitted.every(Boolean)) both += 1;
    }
    return both;
  };

  const sameMoment = await race(20, 'same moment');
  const after20 = await race(20, 20);
  const after200 = await race(20, 200);
  const sameReplica = await (async () => {
    let both = 0;
    for (let i = 0; i < 20; i += 1) {
      task += 1;
      const admitted = await Promise.all([
        create(first, labelled(makeKpoPod({ taskId: `t${task}`, suffix: `a${task}` }), 'alpha'), ALPHA),
        create(first, labelled(makeKpoPod({ taskId: `t${task}`, suffix: `p${task}` }), 'production'), PRODUCTION),
      ]);
      if (admitted.every(Boolean)) both += 1;
    }
    return both;
  })();
  t.comment(`pairs of 20 where both pods were admitted: different replicas at the same moment ${sameMoment}, 20 ms apart ${after20}, 200 ms apart ${after200}; one replica at the same moment ${sameReplica}`);
  t.equal(sameReplica, 0, 'one replica never admits both');
  t.equal(after200, 0, "200 ms after the first was stored, the other replica's watch has it");
});
