import t from 'tap';
import jsonpatch from 'fast-json-patch';
import { decide } from '../../src/engine/decide.ts';
import { EMPTY_CLUSTER } from '../../src/policy/cluster.ts';
import { makePod, makeRequest } from '../helpers/builders.ts';
import { fakePolicy } from '../helpers/fake-rules.ts';

const pod = makePod({ name: 'task-1', namespace: 'airflow', labels: { app: 'x' } });

t.test('a deny rule rejects with the object, the facts, the rule and the fix, code 403', async (t) => {
  const policy = fakePolicy({ rules: [{ name: 'needs-team', kind: 'requireLabel', key: 'team' }] });
  const decision = decide('validate', makeRequest(pod), policy, EMPTY_CLUSTER);
  t.equal(decision.allowed, false);
  t.same(decision.denial, {
    code: 403,
    reason: 'Forbidden',
    message: 'Pod airflow/task-1: label team is missing (rule needs-team). Add the label team.',
  });
  t.same(decision.patch, []);
});

t.test('action warn admits with the same words as a warning; audit admits silently but reports', async (t) => {
  const warn = decide('validate', makeRequest(pod), fakePolicy({ rules: [{ name: 'r', kind: 'requireLabel', key: 'team', action: 'warn' }] }), EMPTY_CLUSTER);
  t.equal(warn.allowed, true);
  t.same(warn.warnings, ['Pod airflow/task-1: label team is missing (rule r). Add the label team.']);
  const audit = decide('validate', makeRequest(pod), fakePolicy({ rules: [{ name: 'r', kind: 'requireLabel', key: 'team', action: 'audit' }] }), EMPTY_CLUSTER);
  t.equal(audit.allowed, true);
  t.same(audit.warnings, []);
  t.equal(audit.reports[0]?.status, 'fail');
  t.match(audit.reports[0]?.message, /label team is missing/);
});

t.test("a rule's message replaces the explanation, not the facts", async (t) => {
  const policy = fakePolicy({ rules: [{ name: 'r', kind: 'requireLabel', key: 'team', message: 'Ask #platform which team owns this.' }] });
  const decision = decide('validate', makeRequest(pod), policy, EMPTY_CLUSTER);
  t.equal(decision.denial?.message, 'Pod airflow/task-1: label team is missing (rule r). Ask #platform which team owns this.');
});

t.test('every deny message is returned, in rule order', async (t) => {
  const policy = fakePolicy({
    rules: [
      { name: 'b-rule', kind: 'requireLabel', key: 'team' },
      { name: 'a-rule', kind: 'requireLabel', key: 'owner' },
      { name: 'warns', kind: 'requireLabel', key: 'cost-center', action: 'warn' },
    ],
  });
  const decision = decide('validate', makeRequest(pod), policy, EMPTY_CLUSTER);
  t.equal(
    decision.denial?.message,
    'Pod airflow/task-1: label team is missing (rule b-rule). Add the label team.\nPod airflow/task-1: label owner is missing (rule a-rule). Add the label owner.',
  );
  t.same(decision.warnings, ['Pod airflow/task-1: label cost-center is missing (rule warns). Add the label cost-center.']);
});

t.test('mutations: patches in rule order, later rules see earlier patches, the patch applies to the original', async (t) => {
  const bare = makePod({ name: 'task-2' }); // no labels map at all
  const policy = fakePolicy({
    rules: [
      { name: 'env', kind: 'addLabel', key: 'podgate.io/environment', value: 'production' },
      { name: 'cluster', kind: 'addLabel', key: 'podgate.io/cluster-id', value: 'gke-1' },
      { name: 'sees-earlier', kind: 'requireLabel', key: 'podgate.io/environment' },
    ],
  });
  const decision = decide('mutate', makeRequest(bare), policy, EMPTY_CLUSTER);
  t.equal(decision.allowed, true, 'the third rule saw the label the first one added');
  t.same(decision.patch, [
    { op: 'add', path: '/metadata/labels', value: { 'podgate.io/environment': 'production' } },
    { op: 'add', path: '/metadata/labels/podgate.io~1cluster-id', value: 'gke-1' },
  ]);
  const patched = jsonpatch.applyPatch(structuredClone(bare), jsonpatch.deepClone(decision.patch) as jsonpatch.Operation[], true, false).newDocument;
  t.same((patched.metadata as Record<string, unknown>)['labels'], { 'podgate.io/environment': 'production', 'podgate.io/cluster-id': 'gke-1' });
  const again = decide('mutate', makeRequest(patched), policy, EMPTY_CLUSTER);
  t.same(again.patch, [], 'reinvocation on the patched pod changes nothing');
});

t.test('a validating decision never carries a patch; an audit rule does not mutate', async (t) => {
  const policy = fakePolicy({ rules: [{ name: 'env', kind: 'addLabel', key: 'e', value: 'p' }] });
  t.same(decide('validate', makeRequest(pod), policy, EMPTY_CLUSTER).patch, []);
  const audit = fakePolicy({ rules: [{ name: 'env', kind: 'addLabel', key: 'e', value: 'p', action: 'audit' }] });
  t.same(decide('mutate', makeRequest(pod), audit, EMPTY_CLUSTER).patch, []);
});

t.test('a rule that throws is settled by its failurePolicy', async (t) => {
  const fails = decide('validate', makeRequest(pod), fakePolicy({ rules: [{ name: 'buggy', kind: 'alwaysThrows' }] }), EMPTY_CLUSTER);
  t.equal(fails.allowed, false);
  t.equal(
    fails.denial?.message,
    'Pod airflow/task-1: rule buggy (alwaysThrows) could not be evaluated: boom. This is a fault in podgate or its policy, not in your object; tell your platform team.',
  );
  t.equal(fails.reports[0]?.status, 'error');
  const ignores = decide('mutate', makeRequest(pod), fakePolicy({ rules: [{ name: 'buggy', kind: 'alwaysThrows', failurePolicy: 'ignore' }] }), EMPTY_CLUSTER);
  t.equal(ignores.allowed, true);
  t.match(ignores.warnings[0], /rule buggy \(alwaysThrows\) could not be evaluated: boom\..*Admitted because the rule's failurePolicy is ignore\.$/);
});

t.test('global exclude, rule match and rule exclude', async (t) => {
  const policy = fakePolicy({
    exclude: { namespaces: ['kube-system', 'podgate'] },
    rules: [
      {
        name: 'r',
        kind: 'requireLabel',
        key: 'team',
        match: { namespaces: ['airflow*'], labelSelector: { matchLabels: { app: 'x' } } },
        exclude: { usernames: ['system:serviceaccount:airflow:trusted-*'] },
      },
    ],
  });
  const cases: [string, Record<string, unknown>, { username?: string }, boolean][] = [
    ['matches', makePod({ namespace: 'airflow-prod', labels: { app: 'x' } }), {}, false],
    ['globally excluded namespace', makePod({ namespace: 'kube-system', labels: { app: 'x' } }), {}, true],
    ['namespace outside the match', makePod({ namespace: 'default', labels: { app: 'x' } }), {}, true],
    ['labels outside the selector', makePod({ namespace: 'airflow', labels: { app: 'y' } }), {}, true],
    ['excluded user', makePod({ namespace: 'airflow', labels: { app: 'x' } }), { username: 'system:serviceaccount:airflow:trusted-ci' }, true],
  ];
  for (const [name, object, options, allowed] of cases) {
    t.equal(decide('validate', makeRequest(object, options), policy, EMPTY_CLUSTER).allowed, allowed, name);
  }
});

t.test('kinds, operations and subresources a rule does not judge are allowed unchanged', async (t) => {
  const policy = fakePolicy({ rules: [{ name: 'r', kind: 'requireLabel', key: 'team' }, { name: 'm', kind: 'addLabel', key: 'a', value: 'b' }] });
  const configMap = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', namespace: 'airflow' } };
  const none = { allowed: true, warnings: [], patch: [], reports: [] };
  t.same(decide('mutate', makeRequest(configMap), policy, EMPTY_CLUSTER), none, 'unknown kind');
  t.same(decide('validate', makeRequest(pod, { operation: 'DELETE' }), policy, EMPTY_CLUSTER), none, 'DELETE is not judged unless the rule asks');
  t.same(decide('validate', makeRequest(pod, { operation: 'UPDATE', oldObject: pod, subResource: 'status' }), policy, EMPTY_CLUSTER), none, 'pods/status');
});

t.test('DELETE reviews are judged on oldObject', async (t) => {
  const policy = fakePolicy({ rules: [{ name: 'protect', kind: 'watchesDeletes' }] });
  const protectedPod = makePod({ name: 'keep', labels: { protected: 'true' } });
  const decision = decide('validate', makeRequest(protectedPod, { operation: 'DELETE' }), policy, EMPTY_CLUSTER);
  t.equal(decision.denial?.message, 'Pod airflow/keep: the pod is protected (rule protect). Leave it.');
});

t.test('a pod with only generateName is named by its prefix', async (t) => {
  const policy = fakePolicy({ rules: [{ name: 'r', kind: 'requireLabel', key: 'team' }] });
  const decision = decide('validate', makeRequest(makePod({ generateName: 'airflow-api-server-5f7d9c-' })), policy, EMPTY_CLUSTER);
  t.equal(decision.denial?.message, 'Pod airflow/airflow-api-server-5f7d9c-*: label team is missing (rule r). Add the label team.');
});

t.test('each webhook walks only the rules with logic for it, in policy order, with what they judge resolved', async (t) => {
  const policy = fakePolicy({
    rules: [
      { name: 'label', kind: 'addLabel', key: 'team', value: 'data' },
      { name: 'deletes', kind: 'watchesDeletes' },
      { name: 'needs-team', kind: 'requireLabel', key: 'team' },
    ],
  });
  t.same(policy.steps.mutate.map((step) => step.rule.name), ['label', 'needs-team']);
  t.same(policy.steps.validate.map((step) => step.rule.name), ['deletes', 'needs-team']);
  const [deletes, needsTeam] = policy.steps.validate;
  t.same([...(deletes?.operations ?? [])], ['DELETE'], 'operations as the rule kind names them');
  t.same([...(needsTeam?.operations ?? [])], ['CREATE', 'UPDATE'], 'CREATE and UPDATE when it names none');
  t.same([...(needsTeam?.kinds ?? [])], ['Pod']);
  // The mutating webhook's patch from "label" is seen by "needs-team" in the same phase; the validating one has no patch.
  const mutated = decide('mutate', makeRequest(pod), policy, EMPTY_CLUSTER);
  t.equal(mutated.allowed, true);
  t.same(mutated.reports.map((report) => report.rule), ['label', 'needs-team']);
  const validated = decide('validate', makeRequest(pod), policy, EMPTY_CLUSTER);
  t.equal(validated.allowed, false, 'the pod as sent has no team label');
  t.same(validated.reports.map((report) => report.rule), ['needs-team'], 'deletes judges DELETE only');
});

t.test('a rule matched on a label an earlier rule adds judges the first invocation as it judges the reinvocation', async (t) => {
  const policy = fakePolicy({
    rules: [
      { name: 'team', kind: 'addLabel', key: 'team', value: 'data' },
      { name: 'data-needs-owner', kind: 'requireLabel', key: 'owner', match: { labelSelector: { matchLabels: { team: 'data' } } } },
    ],
  });
  const first = decide('mutate', makeRequest(pod), policy, EMPTY_CLUSTER);
  t.equal(first.allowed, false, 'the label the first rule adds brings the pod into the second rule');
  t.equal(first.denial?.message, 'Pod airflow/task-1: label owner is missing (rule data-needs-owner). Add the label owner.');
  // What the API server's reinvocation would send: the pod with the first rule's patch applied.
  const labelled = jsonpatch.applyPatch(structuredClone(pod), [{ op: 'add', path: '/metadata/labels/team', value: 'data' }]).newDocument;
  const again = decide('mutate', makeRequest(labelled), policy, EMPTY_CLUSTER);
  t.same(again.denial, first.denial, 'the reinvocation says the same');
  const ownedPod = makePod({ name: 'task-1', namespace: 'airflow', labels: { app: 'x', owner: 'me' } });
  const owned = decide('mutate', makeRequest(ownedPod), policy, EMPTY_CLUSTER);
  t.equal(owned.allowed, true, 'a pod with an owner passes both rules');
  const result = jsonpatch.applyPatch(structuredClone(ownedPod), jsonpatch.deepClone(owned.patch) as jsonpatch.Operation[]).newDocument;
  t.same(result['metadata'], { name: 'task-1', namespace: 'airflow', labels: { app: 'x', owner: 'me', team: 'data' } }, 'and is labelled');
});

t.test('an object too large to walk: no rule runs, each rule it is matched by reports it with its action', async (t) => {
  const oversized = { path: ['request', 'object', 'metadata', 'annotations'], deeper: false, limit: 10_000 };
  const policy = fakePolicy({
    rules: [
      { name: 'must-team', kind: 'requireLabel', key: 'team' },
      { name: 'soft', kind: 'requireLabel', key: 'team', action: 'warn' },
      { name: 'elsewhere', kind: 'requireLabel', key: 'team', match: { namespaces: ['other'] } },
      { name: 'm', kind: 'addLabel', key: 'a', value: 'b' },
    ],
  });
  const labelled = makePod({ name: 'task-1', namespace: 'airflow', labels: { app: 'x', team: 'data' } });
  t.equal(decide('validate', makeRequest(labelled), policy, EMPTY_CLUSTER).allowed, true, 'without it, the pod passes');
  const decision = decide('validate', makeRequest(labelled), policy, EMPTY_CLUSTER, oversized);
  const finding = 'metadata.annotations holds more than 10,000 entries, more than podgate reads in one map to judge a review in time, so the rule could not judge it; remove entries from it (Kubernetes objects carry a few dozen)';
  t.equal(decision.denial?.message, `Pod airflow/task-1: ${finding} (rule must-team). Shrink the map, or exclude the object from the rule.`);
  t.same(decision.warnings, [`Pod airflow/task-1: ${finding} (rule soft). Shrink the map, or exclude the object from the rule.`]);
  t.same(decision.reports.map((report) => report.rule), ['must-team', 'soft'], 'a rule the object is not matched by says nothing');

  const mutated = decide('mutate', makeRequest(labelled), policy, EMPTY_CLUSTER, oversized);
  t.same(mutated.patch, [], 'no patch: the mutating rule did not run');
  t.match(mutated.denial?.message, /\(rule m\)/, 'the mutating rule reports it too, with its action (deny)');

  const stored = decide('validate', makeRequest(labelled, { operation: 'UPDATE', oldObject: labelled }), policy, EMPTY_CLUSTER, { ...oversized, path: ['request', 'oldObject', 'metadata', 'labels'] });
  t.match(stored.denial?.message, /metadata\.labels of the object as stored holds more than 10,000 entries/);
  const deletes = fakePolicy({ rules: [{ name: 'protect', kind: 'watchesDeletes' }] });
  const deleted = decide('validate', makeRequest(makePod({ name: 'gone', labels: { protected: 'false' } }), { operation: 'DELETE' }), deletes, EMPTY_CLUSTER, { ...oversized, path: ['request', 'oldObject', 'metadata', 'labels'] });
  t.same([deleted.allowed, deleted.reports[0]?.status], [true, undefined], 'a DELETE is judged as usual (here: not protected, so the rule skips), or such a pod could never be deleted');
  t.equal(decide('validate', makeRequest(makePod({ name: 'kept', labels: { protected: 'true' } }), { operation: 'DELETE' }), deletes, EMPTY_CLUSTER, oversized).allowed, false, 'and a DELETE the rule refuses stays refused');
  t.equal(decide('validate', makeRequest(makePod({ namespace: 'kube-system' })), fakePolicy({ exclude: { namespaces: ['kube-system'] }, rules: [{ name: 'r', kind: 'requireLabel', key: 'team' }] }), EMPTY_CLUSTER, oversized).allowed, true, 'an excluded object is not judged at all');
});
