import t from 'tap';
import jsonpatch from 'fast-json-patch';
import { applyPatchCopying, pointer, type PatchOp } from '../../src/lib/patch.ts';
import { makePod } from '../helpers/builders.ts';

/** fast-json-patch, a reference RFC 6902 implementation, on a deep copy. */
function reference(document: unknown, patch: readonly PatchOp[]): unknown {
  return jsonpatch.applyPatch(structuredClone(document), structuredClone(patch) as jsonpatch.Operation[], true, false).newDocument;
}

const pod = makePod({ name: 'export-x8k2m9qa', namespace: 'airflow', labels: { dag_id: 'etl', 'a/b~c': 'x' }, spec: { tolerations: [{ key: 'a' }, { key: 'b' }] } });

t.test('agrees with a reference RFC 6902 implementation on the operations rules emit', async (t) => {
  const patches: PatchOp[][] = [
    [{ op: 'add', path: '/metadata/labels/podgate.io~1environment', value: 'production' }],
    [{ op: 'add', path: '/metadata/annotations', value: { 'podgate.io/injected-labels': 'podgate.io/cluster-id' } }],
    [{ op: 'add', path: '/metadata/annotations', value: {} }, { op: 'add', path: '/metadata/annotations/x', value: 'y' }],
    [{ op: 'test', path: '/metadata/labels/dag_id', value: 'etl' }, { op: 'replace', path: '/metadata/labels/dag_id', value: 'other' }],
    [{ op: 'remove', path: pointer(['metadata', 'labels', 'a/b~c']) }],
    [{ op: 'add', path: '/spec/tolerations/-', value: { key: 'c' } }, { op: 'add', path: '/spec/tolerations/0', value: { key: 'z' } }],
    [{ op: 'remove', path: '/spec/tolerations/1' }, { op: 'replace', path: '/spec/tolerations/0/key', value: 'q' }],
    [{ op: 'add', path: '/spec/affinity', value: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [] }] } } } },
      { op: 'add', path: '/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms/0/matchExpressions/-', value: { key: 'k', operator: 'NotIn', values: ['n'] } }],
  ];
  for (const patch of patches) t.same(applyPatchCopying(pod, patch), reference(pod, patch), patch.map((op) => `${op.op} ${op.path}`).join(', '));
});

t.test('leaves the document and the patch values untouched, and shares what it did not change', async (t) => {
  const before = structuredClone(pod);
  const value = {};
  const patch: PatchOp[] = [{ op: 'add', path: '/metadata/annotations', value }, { op: 'add', path: '/metadata/annotations/x', value: 'y' }];
  const patched = applyPatchCopying(pod, patch) as typeof pod & { metadata: { annotations: Record<string, string> } };
  t.same(pod, before, 'the input is unchanged');
  t.same(value, {}, "the patch's own value is unchanged (a later operation wrote into a copy)");
  t.same(patched.metadata.annotations, { x: 'y' });
  t.equal(patched.spec, pod.spec, 'untouched branches are shared, not copied');
  t.not(patched.metadata, pod.metadata);
});

t.test('a path that does not resolve, a failed test or a bad index throws, naming the operation', async (t) => {
  t.throws(() => applyPatchCopying(pod, [{ op: 'replace', path: '/metadata/nothing', value: 1 }]), /JSON Patch replace \/metadata\/nothing: the path does not exist/);
  t.throws(() => applyPatchCopying(pod, [{ op: 'add', path: '/status/phase/x', value: 1 }]), /the path does not exist/);
  t.throws(() => applyPatchCopying(pod, [{ op: 'add', path: '/metadata/name/x', value: 1 }]), /not an object or array/);
  t.throws(() => applyPatchCopying(pod, [{ op: 'test', path: '/metadata/name', value: 'other' }]), /JSON Patch test \/metadata\/name: the value differs/);
  t.throws(() => applyPatchCopying(pod, [{ op: 'remove', path: '/spec/tolerations/2' }]), /index 2 is out of bounds/);
  t.throws(() => applyPatchCopying(pod, [{ op: 'replace', path: '/spec/tolerations/01', value: 1 }]), /"01" is not an array index/);
  t.throws(() => applyPatchCopying(pod, [{ op: 'add', path: 'metadata', value: 1 }]), /does not start with/);
});

t.test('a __proto__ key is an ordinary key, never the prototype', async (t) => {
  const document = JSON.parse('{"metadata":{"labels":{"__proto__":"x"}}}') as unknown;
  const patched = applyPatchCopying(document, [{ op: 'add', path: '/metadata/labels/__proto__', value: { polluted: true } }]) as { metadata: { labels: Record<string, unknown> } };
  t.equal(Object.getPrototypeOf(patched.metadata.labels), Object.prototype);
  t.same(Object.getOwnPropertyDescriptor(patched.metadata.labels, '__proto__')?.value, { polluted: true });
  t.equal(({} as Record<string, unknown>)['polluted'], undefined);
});
