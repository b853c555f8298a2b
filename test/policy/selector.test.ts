import t from 'tap';
import { compileLabelSelector, forEachChangedLabel, isLabelKey, labelSelectorProblems, labelSelectorQuery } from '../../src/policy/selector.ts';

t.test('the query form says in the API server syntax what the predicate accepts', async (t) => {
  const selector = {
    matchLabels: { kubernetes_pod_operator: 'True', 'app.kubernetes.io/part-of': 'airflow' },
    matchExpressions: [
      { key: 'launcher', operator: 'In' as const, values: ['batch', 'kpo'] },
      { key: 'tier', operator: 'NotIn' as const, values: ['system'] },
      { key: 'dag_id', operator: 'Exists' as const },
      { key: 'airflow-worker', operator: 'DoesNotExist' as const },
    ],
  };
  t.equal(labelSelectorQuery(selector), 'kubernetes_pod_operator=True,app.kubernetes.io/part-of=airflow,launcher in (batch,kpo),tier notin (system),dag_id,!airflow-worker');
  t.equal(labelSelectorQuery({}), '', 'an empty selector selects everything');
  const accepts = compileLabelSelector(selector);
  const labels = new Map(Object.entries({ kubernetes_pod_operator: 'True', 'app.kubernetes.io/part-of': 'airflow', launcher: 'kpo', dag_id: 'd' }));
  t.equal(accepts(labels), true);
  t.equal(accepts(new Map([...labels, ['tier', 'system']])), false);
});

t.test('keys and values the API server would refuse are problems, with their paths', async (t) => {
  t.same(labelSelectorProblems({ matchLabels: { 'bad key': 'x', ok: 'not ok!' } }), [
    { path: ['matchLabels', 'bad key'], message: '"bad key" is not a valid label key (an optional DNS-subdomain prefix and /, then up to 63 letters, digits, - _ . with alphanumeric ends)' },
    { path: ['matchLabels', 'ok'], message: '"not ok!" is not a valid label value (63 characters at most, letters, digits, - _ . inside, alphanumeric at both ends)' },
  ]);
  t.same(labelSelectorProblems({ matchExpressions: [{ key: 'Example.com/x', operator: 'In', values: ['a', '-b'] }] }).map((p) => p.path), [
    ['matchExpressions', 0, 'key'],
    ['matchExpressions', 0, 'values', 1],
  ]);
  t.same(labelSelectorProblems({ matchExpressions: [{ key: 'x', operator: 'Exists', values: ['a'] }, { key: 'y', operator: 'In' }] }).map((p) => p.message), [
    'operator Exists takes no values',
    'operator In needs at least one value',
  ]);
  t.same(labelSelectorProblems({ matchLabels: { 'podgate.io/environment': 'production', a: '' } }), [], 'a prefixed key and an empty value are fine');
});

t.test('label keys: an optional DNS-subdomain prefix, a name of 63 at most', async (t) => {
  for (const key of ['app', 'app.kubernetes.io/name', 'a_b.c-d', 'x/Y9']) t.equal(isLabelKey(key), true, key);
  for (const key of ['', '/name', 'prefix/', 'Upper.com/x', '-a', 'a'.repeat(64), `${'a'.repeat(254)}/x`, 'a/b/c']) t.equal(isLabelKey(key), false, key);
});

t.test('forEachChangedLabel visits each added, removed and changed key once, and stops when told', async (t) => {
  const before = new Map(Object.entries({ same: '1', changed: 'a', removed: 'x' }));
  const after = new Map(Object.entries({ same: '1', changed: 'b', added: 'y' }));
  const seen: string[] = [];
  forEachChangedLabel(before, after, (key) => { seen.push(key); return true; });
  t.same(seen.sort(), ['added', 'changed', 'removed']);
  const first: string[] = [];
  forEachChangedLabel(before, after, (key) => { first.push(key); return false; });
  t.equal(first.length, 1, 'stopped after the first');
  forEachChangedLabel(before, new Map(before), () => { t.fail('no change to visit'); return true; });
});
