import t from 'tap';
import { mkdir, rename, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadAndWatchPolicy, MAX_POLICY_BYTES, readPolicyFile } from '../../src/config/load.ts';
import { PolicyStore } from '../../src/config/store.ts';
import { policyCheck } from '../../src/server/readiness.ts';
import { compileFakePolicy } from '../helpers/fake-rules.ts';
import { recordingLogger, waitFor } from '../helpers/wait.ts';

const policyText = (label: string) => `apiVersion: podgate.io/v1alpha1\nkind: Policy\nrules:\n  - name: ${label}\n    kind: addLabel\n    key: env\n    value: ${label}\n`;
const ruleNames = (store: PolicyStore) => store.current?.rules.map((rule) => rule.name);

t.test('reload on change; an invalid, empty or missing file keeps the last good policy and says why', async (t) => {
  const dir = t.testdir();
  const path = join(dir, 'podgate.yaml');
  await writeFile(path, policyText('first'));
  const store = new PolicyStore(path);
  const { log, lines } = recordingLogger();
  const watch = await loadAndWatchPolicy({ path, store, compile: compileFakePolicy, log, pollMs: 100 });
  t.teardown(() => { watch.close(); });
  t.same(ruleNames(store), ['first']);
  t.equal(store.status.generation, 1);

  await writeFile(path, policyText('second'));
  await waitFor('the second policy', () => ruleNames(store)?.[0] === 'second');
  t.equal(store.status.generation, 2);

  await writeFile(path, 'apiVersion: podgate.io/v1alpha1\nkind: Policy\nrules:\n  - name: Broken!\n    kind: addLabel\n');
  await waitFor('the rejection', () => store.status.lastError !== undefined);
  t.same(ruleNames(store), ['second'], 'the last good policy stays in force');
  t.match(store.status.lastError?.errors, [/\/podgate\.yaml:4:/]);
  t.match(policyCheck(store.status), { ok: true, detail: /generation 2 .*a newer file was rejected at .*podgate\.yaml:4:/ });
  const rejection = lines.find((line) => String(line['msg']).startsWith('policy file rejected'));
  t.match(rejection, { level: 50, msg: /keeping policy generation 2:\n\S*\/podgate\.yaml:4:/ });

  await writeFile(path, '');
  await waitFor('the empty file rejected', () => store.status.lastError?.errors[0]?.includes('empty') === true);
  t.same(ruleNames(store), ['second']);

  await unlink(path);
  await waitFor('the deletion noticed', () => store.status.lastError?.errors[0]?.includes('cannot read the policy file (ENOENT)') === true);
  t.same(ruleNames(store), ['second']);

  await writeFile(path, policyText('third'));
  await waitFor('recovery', () => ruleNames(store)?.[0] === 'third');
  t.equal(store.status.lastError, undefined, 'a good file clears the error');
});

t.test('a mounted ConfigMap changing by an atomic ..data symlink swap', async (t) => {
  const dir = t.testdir();
  await mkdir(join(dir, '..2026_11_23_v1'));
  await writeFile(join(dir, '..2026_11_23_v1', 'podgate.yaml'), policyText('v1'));
  await symlink('..2026_11_23_v1', join(dir, '..data'));
  await symlink(join('..data', 'podgate.yaml'), join(dir, 'podgate.yaml'));
  const path = join(dir, 'podgate.yaml');
  const store = new PolicyStore(path);
  const watch = await loadAndWatchPolicy({ path, store, compile: compileFakePolicy, log: recordingLogger().log, pollMs: 60_000 });
  t.teardown(() => { watch.close(); });
  t.same(ruleNames(store), ['v1']);

  // What the kubelet does: write the new version beside the old, point a temporary link at it, rename it over ..data.
  await mkdir(join(dir, '..2026_11_23_v2'));
  await writeFile(join(dir, '..2026_11_23_v2', 'podgate.yaml'), policyText('v2'));
  await symlink('..2026_11_23_v2', join(dir, '..data_tmp'));
  await rename(join(dir, '..data_tmp'), join(dir, '..data'));
  await rm(join(dir, '..2026_11_23_v1'), { recursive: true });
  await waitFor('the swapped policy (directory events, not the slow poll)', () => ruleNames(store)?.[0] === 'v2', 5_000);
  t.pass('v2 in force');
});

t.test('a policy that is invalid from the start leaves the store empty (not ready)', async (t) => {
  const dir = t.testdir({ 'podgate.yaml': 'rules: nope\n' });
  const path = join(dir, 'podgate.yaml');
  const store = new PolicyStore(path);
  const watch = await loadAndWatchPolicy({ path, store, compile: compileFakePolicy, log: recordingLogger().log, pollMs: 60_000 });
  watch.close();
  t.equal(store.current, undefined);
  t.match(policyCheck(store.status), { ok: false, detail: /^no valid policy loaded from .*podgate\.yaml; a newer file was rejected/ });
});

t.test('a policy file over the size limit is refused before it is read', async (t) => {
  const path = join(t.testdir(), 'huge.yaml');
  await writeFile(path, `# ${'x'.repeat(MAX_POLICY_BYTES)}\n`);
  const result = await readPolicyFile(path, compileFakePolicy);
  t.same(result, { ok: false, errors: [`${path}: the policy file is ${MAX_POLICY_BYTES + 3} bytes; podgate reads at most ${MAX_POLICY_BYTES} (a ConfigMap's limit)`] });
});
