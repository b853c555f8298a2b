import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCommand } from '../helpers/process.ts';
import { objectsFromText } from '../../src/cli/objects.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
const resources = join(ROOT, 'examples/policy-test/resources');

t.test('helm template output: multi-document YAML with comments and empty documents', async (t) => {
  const text = `---\n# Source: airflow/templates/empty.yaml\n---\n${await readFile(join(resources, 'api-server-too-small.yaml'), 'utf8')}---\n${await readFile(join(resources, 'pinned-to-healthy-node.yaml'), 'utf8')}\n---\n`;
  t.same(objectsFromText(text, 'chart.yaml').map((o) => [o.source, o.object['kind']]), [['chart.yaml#2', 'Deployment'], ['chart.yaml#3', 'Pod']]);
  const list = 'apiVersion: v1\nkind: PodList\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: a}\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: b}\n';
  t.same(objectsFromText(list, 'pods.yaml').map((o) => o.source), ['pods.yaml items[0]', 'pods.yaml items[1]']);
});

t.test('objects are read as the API server decodes them: a bare integer too large for a float stays exact', async (t) => {
  const [pod] = objectsFromText('apiVersion: v1\nkind: Pod\nmetadata: { name: p }\nspec:\n  terminationGracePeriodSeconds: 30\n  containers:\n    - name: c\n      resources: { requests: { memory: 12345678901234567890, cpu: 0.5 } }\n', 'pod.yaml');
  const spec = pod?.object['spec'] as { terminationGracePeriodSeconds: unknown; containers: { resources: { requests: Record<string, unknown> } }[] };
  t.equal(spec.terminationGracePeriodSeconds, 30, 'an integer a float holds stays a number');
  t.equal(spec.containers[0]?.resources.requests['memory'], '12345678901234567890', 'one it cannot hold keeps its digits');
  t.equal(spec.containers[0]?.resources.requests['cpu'], 0.5);
  const [json] = objectsFromText('{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"x":98765432109876543210}}', 'pod.json');
  t.equal((json?.object['spec'] as Record<string, unknown>)['x'], '98765432109876543210', 'JSON too');
});

t.test('podgate review: what the API server would do, from files, directories and stdin', async (t) => {
  const cwd = t.testdir();
  const denied = await runCommand(['review', join(resources, 'api-server-too-small.yaml'), join(resources, 'pinned-to-healthy-node.yaml')], cwd);
  t.equal(denied.code, 1, 'exit 1: something was denied');
  t.match(denied.stdout, /^DENIED {3}Deployment airflow\/airflow-api-server {2}\(.*api-server-too-small\.yaml\)\n {2}denied: Deployment airflow\/airflow-api-server: container "api-server" requests\.memory 1Gi is below the floor 4Gi/m);
  t.match(denied.stdout, /^ADMITTED Pod airflow-jobs\/export-4devg7t1 /m);
  t.match(denied.stdout, /2 object\(s\): 1 admitted, 1 denied\n$/);
  t.match(denied.stderr, /^podgate review: note: no nodes were given \(--cluster nodes\.yaml/m, 'what the review was not given is said');
  const clusterScoped = await runCommand(['review', '-'], cwd, 'apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: { name: airflow-reader }\nrules: []\n');
  t.match(clusterScoped.stdout, /^ADMITTED ClusterRole airflow-reader {2}\(<stdin>\)/m, 'a cluster-scoped object is named without a namespace');

  const kpo = await runCommand(['review', '--user', 'system:serviceaccount:airflow-prod:airflow-worker', '--cluster', join(ROOT, 'examples/policy-test/cluster.yaml'), '-'], cwd, await readFile(join(resources, 'kpo-pod-production.yaml'), 'utf8'));
  t.equal(kpo.code, 0);
  t.match(kpo.stdout, /^WARNED {3}Pod airflow\/load-warehouse-k2j4h8sd {2}\(<stdin>\)/m);
  t.match(kpo.stdout, /^ {2}\+ metadata\.labels\["podgate\.io\/environment"\]: "production"$/m, 'the change as a readable diff');
  t.match(kpo.stdout, /^ {2}\+ metadata\.annotations: \{"karpenter\.sh\/do-not-disrupt":"true","cluster-autoscaler\.kubernetes\.io\/safe-to-evict":"false"\}$/m, 'a map created whole');
  t.match(kpo.stdout, /^ {2}\+ metadata\.annotations\["podgate\.io\/injected-labels"\]: "podgate\.io\/environment,podgate\.io\/cluster-id"$/m, 'then added to');

  const json = await runCommand(['review', '-o', 'json', '--user', 'system:serviceaccount:airflow-prod:airflow-worker', join(resources)], cwd);
  const report = JSON.parse(json.stdout) as { ref: string; source: string; admitted: boolean; patch: unknown[]; messages: string[] }[];
  t.ok(report.length >= 9, 'a directory is read whole');
  const production = report.find((r) => r.source.endsWith('kpo-pod-production.yaml'));
  t.match(production, { ref: 'Pod airflow/load-warehouse-k2j4h8sd', admitted: true });
  t.ok(production?.patch.some((op) => JSON.stringify(op) === JSON.stringify({ op: 'add', path: '/metadata/labels/podgate.io~1environment', value: 'production' })), 'the patch as JSON');
  t.equal(json.code, 1);
});

t.test('podgate review: bad input is one clear line and exit 2', async (t) => {
  const cwd = t.testdir({ 'broken.yaml': 'kind: [unclosed\n', 'notk8s.yaml': 'hello: world\n', 'scalar.yaml': '42\n' });
  const cases: [string[], RegExp][] = [
    [['review', 'broken.yaml'], /^podgate review: not YAML or JSON: broken\.yaml:\d+:\d+ /],
    [['review', 'notk8s.yaml'], /^podgate review: notk8s\.yaml: not a Kubernetes object \(no apiVersion and kind\)\n$/],
    [['review', 'scalar.yaml'], /^podgate review: scalar\.yaml: not a Kubernetes object \(a number\)\n$/],
    [['review', 'missing.yaml'], /^podgate review: missing\.yaml: no such file or directory\n$/],
    [['review'], /review needs at least one file/],
    [['review', '-o', 'xml', 'x'], /--output is text or json/],
    [['review', '-'], /^podgate review: no Kubernetes object in standard input: nothing was reviewed \(did the command producing it fail\?\)\n$/],
  ];
  for (const [args, error] of cases) {
    const result = await runCommand(args, cwd, '');
    t.equal(result.code, 2, args.join(' '));
    t.match(result.stderr, error);
  }
});

t.test('podgate test: the shipped suite covers every rule of the sample policy and passes', async (t) => {
  const result = await runCommand(['test', join(ROOT, 'examples/policy-test')], ROOT);
  t.equal(result.code, 0, result.stdout);
  const sample = await readFile(join(ROOT, 'manifests/base/podgate.yaml'), 'utf8');
  const suite = await readFile(join(ROOT, 'examples/policy-test/podgate-test.yaml'), 'utf8');
  const cases = [...suite.matchAll(/^ {2}- name: /gm)].length;
  t.match(result.stdout, new RegExp(`\\n${cases} passed, 0 failed\\n$`), `all ${cases} cases of the suite ran and passed`);
  for (const [, rule] of sample.matchAll(/^ {2}- name: ([a-z0-9-]+)$/gm)) t.ok(suite.includes(`- name: ${rule ?? ''} `), `the suite has a case for rule ${rule ?? ''}`);
});

t.test('podgate test: a failing case says what differed; a broken suite is exit 2', async (t) => {
  const cwd = t.testdir({ 'pod.yaml': await readFile(join(resources, 'pinned-to-healthy-node.yaml'), 'utf8') });
  await writeFile(
    join(cwd, 'podgate-test.yaml'),
    `apiVersion: podgate.io/v1alpha1\nkind: Test\npolicy: ${join(ROOT, 'manifests/base/podgate.yaml')}\ncases:\n  - name: wrong on purpose\n    resource: pod.yaml\n    expect: { result: denied, messages: [nope], labels: { a: b } }\n`,
  );
  const failed = await runCommand(['test', cwd], cwd);
  t.equal(failed.code, 1);
  t.match(failed.stdout, /FAIL {2}wrong on purpose\n {8}expected denied, got admitted: \(no message\)\n {8}no message contains "nope"\n {8}label a: expected "b", got none\n/);
  await writeFile(
    join(cwd, 'podgate-test.yaml'),
    `apiVersion: podgate.io/v1alpha1\nkind: Test\npolicy: ${join(ROOT, 'manifests/base/podgate.yaml')}\ncases:\n` +
      '  - name: right result, wrong message\n    resource: pod.yaml\n    expect: { result: admitted, messages: [nope], annotations: { x: y } }\n' +
      '  - name: an update without the object before\n    resource: pod.yaml\n    operation: UPDATE\n    expect: { result: admitted }\n',
  );
  const told = await runCommand(['test', cwd], cwd);
  t.equal(told.code, 1);
  t.match(told.stdout, /FAIL {2}right result, wrong message\n {8}no message contains "nope"\n {8}the messages were: \(none\)\n {8}annotation x: expected "y", got none\n/, 'what was said, when a message was expected');
  t.match(told.stdout, /FAIL {2}an update without the object before\n {8}an UPDATE needs oldResource: the object before the change\n/);
  await writeFile(join(cwd, 'podgate-test.yaml'), 'apiVersion: podgate.io/v1alpha1\nkind: Test\ncases: []\n');
  const broken = await runCommand(['test', cwd], cwd);
  t.equal(broken.code, 2);
  t.match(broken.stderr, /podgate-test\.yaml:1:1 \(top level\): missing required field "policy"\n.*podgate-test\.yaml:3:8 cases: must not be empty/);
});
