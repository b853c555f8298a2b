import t from 'tap';
import { makeRequirement, nodeConstraints, nodeFits, pinnedNames, requirementHolds, type Requirement } from '../../src/policy/nodeAffinity.ts';
import type { NodeInfo } from '../../src/policy/cluster.ts';

const node = (name: string, labels: Record<string, string> = {}): NodeInfo => ({ name, labels: new Map(Object.entries({ 'kubernetes.io/hostname': name, ...labels })) });
const req = (key: string, operator: Requirement['operator'], values: string[] = []): Requirement => makeRequirement(key, operator, values);

t.test('every operator, as the scheduler reads it', async (t) => {
  const cases: [Requirement, string | undefined, boolean][] = [
    [req('zone', 'In', ['a', 'b']), 'a', true],
    [req('zone', 'In', ['a', 'b']), 'c', false],
    [req('zone', 'In', ['a']), undefined, false],
    [req('zone', 'NotIn', ['a']), 'b', true],
    [req('zone', 'NotIn', ['a']), undefined, true],
    [req('zone', 'NotIn', ['a']), 'a', false],
    [req('gpu', 'Exists'), '', true],
    [req('gpu', 'Exists'), undefined, false],
    [req('gpu', 'DoesNotExist'), undefined, true],
    [req('gpu', 'DoesNotExist'), 'x', false],
    [req('cores', 'Gt', ['4']), '8', true],
    [req('cores', 'Gt', ['4']), '4', false],
    [req('cores', 'Gt', ['4']), 'eight', false],
    [req('cores', 'Gt', ['4']), undefined, false],
    [req('cores', 'Lt', ['4']), '-1', true],
    [req('cores', 'Lt', ['4']), '4', false],
    [req('cores', 'Lt', ['4', '5']), '1', false],
    [req('big', 'Gt', ['9223372036854775806']), '9223372036854775807', true],
  ];
  for (const [requirement, value, expected] of cases) t.equal(requirementHolds(requirement, value), expected, `${requirement.key} ${requirement.operator} ${requirement.values.join(',')} vs ${String(value)}`);
});

const spec = (affinityTerms?: unknown[], extra: Record<string, unknown> = {}) => ({
  containers: [{ name: 'c' }],
  ...(affinityTerms ? { affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: affinityTerms } } } } : {}),
  ...extra,
});

t.test('terms are ORed, requirements ANDed, empty terms match nothing, matchFields on metadata.name', async (t) => {
  const a = node('a', { zone: 'z1', pool: 'gpu' });
  const b = node('b', { zone: 'z2', pool: 'gpu' });
  const c = node('c', { zone: 'z2' });
  const fits = (podSpec: unknown) => [a, b, c].filter((n) => nodeFits(nodeConstraints(podSpec), n)).map((n) => n.name);
  t.same(fits(spec()), ['a', 'b', 'c'], 'no constraints');
  t.same(fits(spec([{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['z2'] }, { key: 'pool', operator: 'Exists' }] }])), ['b'], 'AND');
  t.same(fits(spec([{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['z1'] }] }, { matchFields: [{ key: 'metadata.name', operator: 'In', values: ['c'] }] }])), ['a', 'c'], 'OR');
  t.same(fits(spec([{}])), [], 'an empty term matches nothing');
  t.same(fits(spec([])), [], 'no terms match nothing');
  t.same(fits(spec([{ matchFields: [{ key: 'metadata.name', operator: 'NotIn', values: ['a'] }] }])), ['b', 'c']);
  t.same(fits(spec([{ matchFields: [{ key: 'metadata.labels', operator: 'In', values: ['a'] }] }])), [], 'matchFields knows only metadata.name');
  t.same(fits(spec(undefined, { nodeSelector: { pool: 'gpu' } })), ['a', 'b'], 'nodeSelector');
  t.same(fits(spec([{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['z2'] }] }], { nodeSelector: { pool: 'gpu' } })), ['b'], 'nodeSelector AND affinity');
  t.same(fits(spec(undefined, { nodeName: 'c' })), ['c'], 'nodeName');
});

t.test('names a term pins, read from the term alone', async (t) => {
  const terms = nodeConstraints(
    spec([
      { matchFields: [{ key: 'metadata.name', operator: 'In', values: ['n1', 'n2'] }] },
      { matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: ['n2', 'n3'] }, { key: 'kubernetes.io/hostname', operator: 'In', values: ['n3'] }] },
      { matchExpressions: [{ key: 'zone', operator: 'In', values: ['z1'] }] },
    ]),
  ).requiredTerms;
  t.same(terms?.map(pinnedNames), [['n1', 'n2'], ['n3'], undefined]);
});
