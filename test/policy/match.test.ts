import t from 'tap';
import { compileLabelSelector, labelSelectorProblems } from '../../src/policy/selector.ts';
import { compileMatch } from '../../src/policy/match.ts';
import { globMatcher } from '../../src/policy/glob.ts';
import { makePod, makeRequest } from '../helpers/builders.ts';

const labels = (entries: Record<string, string>) => new Map(Object.entries(entries));

t.test('label selectors with the apimachinery semantics', async (t) => {
  const cases: [string, Parameters<typeof compileLabelSelector>[0], Record<string, string>, boolean][] = [
    ['empty selector matches all', {}, {}, true],
    ['matchLabels equal', { matchLabels: { component: 'api-server' } }, { component: 'api-server', tier: 'airflow' }, true],
    ['matchLabels differ', { matchLabels: { component: 'api-server' } }, { component: 'webserver' }, false],
    ['matchLabels absent', { matchLabels: { component: 'api-server' } }, {}, false],
    ['In', { matchExpressions: [{ key: 'c', operator: 'In', values: ['a', 'b'] }] }, { c: 'b' }, true],
    ['In, absent key', { matchExpressions: [{ key: 'c', operator: 'In', values: ['a'] }] }, {}, false],
    ['NotIn, other value', { matchExpressions: [{ key: 'c', operator: 'NotIn', values: ['a'] }] }, { c: 'b' }, true],
    ['NotIn, absent key matches', { matchExpressions: [{ key: 'c', operator: 'NotIn', values: ['a'] }] }, {}, true],
    ['NotIn, listed value', { matchExpressions: [{ key: 'c', operator: 'NotIn', values: ['a'] }] }, { c: 'a' }, false],
    ['Exists', { matchExpressions: [{ key: 'airflow-worker', operator: 'Exists' }] }, { 'airflow-worker': '' }, true],
    ['DoesNotExist', { matchExpressions: [{ key: 'airflow-worker', operator: 'DoesNotExist' }] }, { 'airflow-worker': '1' }, false],
    ['all ANDed', { matchLabels: { a: '1' }, matchExpressions: [{ key: 'b', operator: 'Exists' }] }, { a: '1' }, false],
    ['prototype keys are not labels', { matchExpressions: [{ key: 'constructor', operator: 'Exists' }] }, {}, false],
  ];
  for (const [name, selector, podLabels, expected] of cases) t.equal(compileLabelSelector(selector)(labels(podLabels)), expected, name);
  t.same(labelSelectorProblems({ matchExpressions: [{ key: 'a', operator: 'In' }, { key: 'b', operator: 'Exists', values: ['x'] }] }), [
    { path: ['matchExpressions', 0, 'values'], message: 'operator In needs at least one value' },
    { path: ['matchExpressions', 1, 'values'], message: 'operator Exists takes no values' },
  ]);
});

t.test('globs over names that are not paths', async (t) => {
  const matches = globMatcher(['system:serviceaccount:airflow-prod:*', 'arn:aws:iam::123456789012:role/*', 'exact']);
  t.ok(matches('system:serviceaccount:airflow-prod:airflow-worker'));
  t.notOk(matches('system:serviceaccount:airflow-alpha:airflow-worker'));
  t.ok(matches('arn:aws:iam::123456789012:role/mwaa/prod-execution'), '* crosses /');
  t.ok(matches('exact'));
  t.notOk(matches('exactly'));
  t.notOk(globMatcher([])('anything'));
});

t.test('match: every criterion must hold; a list matches on any entry', async (t) => {
  const match = compileMatch({
    namespaces: ['airflow-*'],
    usernames: ['system:serviceaccount:airflow-*:*'],
    groups: ['airflow-admins', 'system:serviceaccounts:airflow-*'],
    operations: ['CREATE'],
    labelSelector: { matchLabels: { kubernetes_pod_operator: 'True' } },
  });
  const pod = makePod({ namespace: 'airflow-prod', labels: { kubernetes_pod_operator: 'True' } });
  const subject = (options: Parameters<typeof makeRequest>[1], podLabels: Record<string, string> = { kubernetes_pod_operator: 'True' }, namespace = 'airflow-prod') => ({
    request: makeRequest({ ...pod, metadata: { name: 'p', namespace } }, { username: 'system:serviceaccount:airflow-prod:worker', groups: ['system:serviceaccounts:airflow-prod'], ...options }),
    labels: labels(podLabels),
  });
  t.ok(match(subject({})));
  t.notOk(match(subject({}, {}, 'airflow-prod')), 'labels');
  t.notOk(match(subject({}, undefined, 'default')), 'namespace');
  t.notOk(match(subject({ username: 'alice' })), 'username');
  t.notOk(match(subject({ groups: ['system:authenticated'] })), 'groups');
  t.notOk(match(subject({ operation: 'UPDATE', oldObject: pod })), 'operation');
  t.ok(compileMatch({})(subject({ username: 'anyone' }, {}, 'anywhere')), 'an empty match matches all');
});
