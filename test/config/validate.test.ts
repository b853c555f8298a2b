import t from 'tap';
import { validatePolicyText } from '../../src/config/validate.ts';
import { compilePolicy, RULE_KINDS } from '../../src/policy/registry.ts';

const check = (text: string) => validatePolicyText(text, 'podgate.yaml', compilePolicy);

const header = 'apiVersion: podgate.io/v1alpha1\nkind: Policy\n';

t.test('a valid policy compiles, rules in file order, defaults resolved', async (t) => {
  const result = check(`${header}rules:\n  - name: floors\n    kind: resourceFloors\n    limits: { memory: 4Gi }\n  - name: second\n    kind: resourceFloors\n    action: warn\n    requests: { cpu: 500m }\n`);
  if (!result.ok) throw new Error(result.errors.join('\n'));
  t.same(result.policy.rules.map((rule) => [rule.name, rule.action, rule.failurePolicy]), [['floors', 'deny', 'fail'], ['second', 'warn', 'fail']]);
});

t.test('every problem, one line each, file:line:column path: message, in file order', async (t) => {
  const text = [
    header.trimEnd(),
    'exclude:',
    '  namespaces: kube-system',
    'rules:',
    '  - name: floors',
    '    kind: resourceFloors',
    '    limits:',
    '      cpu: "2 cores"',
    '      memory: 4Gi',
    '  - name: Bad_Name',
    '    kind: resourceFloors',
    '    action: block',
    '    requests: { cpu: "1" }',
    '  - name: floors',
    '    kind: podDisruptionBudgetFloor',
    '  - name: selectors',
    '    kind: resourceFloors',
    '    limits: { memory: 1Gi }',
    '    match:',
    '      labelSelector:',
    '        matchExpressions:',
    '          - { key: component, operator: In }',
    '    colour: blue',
    '',
  ].join('\n');
  const rules = [
    'podgate.yaml:9:12 rules[0].limits.cpu: "2 cores" is not a Kubernetes quantity (examples: 500m, 2, 4Gi, 1.5G)',
    'podgate.yaml:11:11 rules[1].name: "Bad_Name" does not match ^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$',
    'podgate.yaml:13:13 rules[1].action: "block" is not one of: deny, warn, audit',
    'podgate.yaml:15:11 rules[2].name: duplicate rule name "floors"',
    `podgate.yaml:16:11 rules[2].kind: unknown rule kind "podDisruptionBudgetFloor"; podgate knows: ${RULE_KINDS.map((kind) => kind.kind).join(', ')}`,
    'podgate.yaml:23:13 rules[3].match.labelSelector.matchExpressions[0].values: operator In needs at least one value',
    'podgate.yaml:24:5 rules[3].colour: unknown field',
  ];
  t.same(check(text), { ok: false, errors: ['podgate.yaml:4:15 exclude.namespaces: must be a list, found string "kube-system"', ...rules] }, 'the envelope’s problems, the schema’s and the semantic ones, in one pass');
  t.same(check(text.replace('namespaces: kube-system', 'namespaces: [kube-system]')), { ok: false, errors: rules }, 'the rest when the envelope is fixed');
});

t.test('an unknown field gets the closest known one; a YAML boolean where a string belongs is told to quote it', async (t) => {
  const result = check(`${header}rulez: []\nrules:\n  - name: x\n    kind: resourceFloors\n    contaners: [api]\n    limits: { memory: 1Gi }\n  - name: y\n    kind: podMetadata\n    annotations: { karpenter.sh/do-not-disrupt: true }\n`);
  t.same(result, {
    ok: false,
    errors: [
      'podgate.yaml:3:1 rulez: unknown field; did you mean "rules"?',
      'podgate.yaml:7:5 rules[0].contaners: unknown field; did you mean "containers"?',
      'podgate.yaml:11:49 rules[1].annotations["karpenter.sh/do-not-disrupt"]: must be a string, found boolean (quote it: "true")',
    ],
  });
  t.same(check(`${header}rules:\n  - name: x\n    kind: resourceFloors\n    colour: blue\n    limits: { memory: 1Gi }\n`), { ok: false, errors: ['podgate.yaml:6:5 rules[0].colour: unknown field'] }, 'no guess when nothing is close');
});

t.test('a policy of 14,000 unknown fields is reported as 100 lines and a count (a report never grows with the file)', async (t) => {
  const fields = Array.from({ length: 14_000 }, (_, i) => `    unknown-field-number-${String(i).padStart(40, '0')}: 1`).join('\n');
  const result = check(`${header}rules:\n  - name: a\n    kind: resourceFloors\n    limits: { memory: 1Gi }\n${fields}\n`);
  t.equal(result.ok ? 0 : result.errors.length, 101);
  t.match(result.ok ? '' : result.errors.at(-1), /^podgate\.yaml: and 13900 more problem\(s\) like these; fix these first$/);
});

t.test('YAML mistakes are said where they are, once', async (t) => {
  t.same(check(`${header}rules:\n  - name: a\n    kind: resourceFloors\n   limits: { memory: 1Gi }\n`), {
    ok: false,
    errors: ["podgate.yaml:6:4 Sequence item without - indicator: check this line's indentation against the lines above it (YAML nests by spaces)"],
  });
  t.same(check(`${header}rules: []\n---\nrules: []\n`), { ok: false, errors: ['podgate.yaml:4:1 a second YAML document starts here (---); a policy file holds one policy, with every rule under its rules'] });
  t.same(check(`${header}rules:\n  - name: a\n    kind: resourceFloors\n    limits: { memory: 1Gi }\n    limits: { memory: 2Gi }\n`), { ok: false, errors: ['podgate.yaml:7:5 this key appears twice in the same map; keep one ("limits")'] }, 'a duplicate key, where its second appearance is');
  const cascade = check(`${header}rules:\n  - name: a\n\tkind: x\n  - name: b\n\tkind: y\n`);
  t.equal(cascade.ok ? 0 : cascade.errors.length, 1, 'one line, however many errors follow from it');
});

t.test('a semantic problem inside match is found once the schema fits', async (t) => {
  const result = check(`${header}rules:\n  - name: s\n    kind: resourceFloors\n    limits: { memory: 1Gi }\n    match:\n      labelSelector:\n        matchExpressions:\n          - { key: component, operator: In }\n`);
  t.same(result, { ok: false, errors: ['podgate.yaml:10:13 rules[0].match.labelSelector.matchExpressions[0].values: operator In needs at least one value'] });
});

t.test('YAML syntax errors, empty files and wrong documents', async (t) => {
  t.same(check(''), { ok: false, errors: ['podgate.yaml:1:1 the policy file is empty; see the sample policy for the shape'] });
  t.same(check('# only a comment\n'), { ok: false, errors: ['podgate.yaml:1:1 the policy file is empty; see the sample policy for the shape'] });
  const syntax = check(`${header}rules: [\n`);
  t.equal(syntax.ok, false);
  t.match(!syntax.ok && syntax.errors[0], /^podgate\.yaml:\d+:\d+ /);
  const duplicateKey = check(`${header}kind: Policy\nrules: []\n`);
  t.match(!duplicateKey.ok && duplicateKey.errors[0], /^podgate\.yaml:3:1 this key appears twice in the same map; keep one/);
  t.same(check('apiVersion: v1\nkind: ConfigMap\n'), {
    ok: false,
    errors: [
      'podgate.yaml:1:1 (top level): missing required field "rules"',
      'podgate.yaml:1:13 apiVersion: must be "podgate.io/v1alpha1", found "v1"',
      'podgate.yaml:2:7 kind: must be "Policy", found "ConfigMap"',
    ],
  });
  t.same(check(`${header}rules:\n  - name: floors\n    kind: resourceFloors\n`), {
    ok: false,
    errors: ['podgate.yaml:4:5 rules[0]: set at least one floor under requests or limits'],
  });
});
