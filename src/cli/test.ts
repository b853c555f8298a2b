import { readFile, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Type, type Static } from '@sinclair/typebox';
import { LineCounter, parseDocument } from 'yaml';
import { compileValidator, schemaProblems, StringEnum } from '../lib/schema.ts';
import { duplicateKeyError, locatedProblems, yamlError } from '../config/validate.ts';
import { readPolicyFile } from '../config/load.ts';
import { OPERATIONS } from '../admission/review.ts';
import { stringMapAt } from '../lib/json.ts';
import { compilePolicy } from '../policy/registry.ts';
import { InputError, readObjects } from './objects.ts';
import { clusterFrom, simulate } from './simulate.ts';
import { UsageError, type CommandIO } from './io.ts';

export const TEST_HELP = `Usage: podgate test <dir|file>...

Runs test suites of a policy against objects, like kyverno test: each suite
(a file named podgate-test.yaml in a directory, or given directly) names a
policy, optional cluster state, and cases of an object, an identity and what
must happen. Paths in a suite are relative to it.

  apiVersion: podgate.io/v1alpha1
  kind: Test
  policy: ../../manifests/base/podgate.yaml
  cluster: [cluster.yaml]            # existing Pods and Nodes (optional)
  cases:
    - name: a too-small api-server is denied
      resource: resources/api-server-small.yaml
      user: system:serviceaccount:ci:helm
      groups: [system:serviceaccounts]
      operation: CREATE                # UPDATE (with oldResource: the object before) or DELETE (the object is the existing one)
      expect:
        result: denied                 # admitted | warned | denied
        messages: ["limits.memory 1Gi is below the floor 4Gi"]
        labels: { podgate.io/environment: production }
        annotations: { karpenter.sh/do-not-disrupt: "true" }

Exit status: 0 every case passed, 1 a case failed, 2 a suite could not be read.

Example:
  podgate test examples/policy-test
`;

const Case = Type.Object(
  {
    name: Type.String({ minLength: 1 }),
    resource: Type.String({ minLength: 1 }),
    user: Type.Optional(Type.String()),
    groups: Type.Optional(Type.Array(Type.String())),
    extra: Type.Optional(Type.Record(Type.String(), Type.Array(Type.String()))),
    namespace: Type.Optional(Type.String()),
    operation: Type.Optional(StringEnum(OPERATIONS)),
    /** UPDATE: the object as it is in the cluster before the change (`resource` is the object after it). */
    oldResource: Type.Optional(Type.String({ minLength: 1 })),
    expect: Type.Object(
      {
        result: StringEnum(['admitted', 'warned', 'denied'] as const),
        messages: Type.Optional(Type.Array(Type.String())),
        labels: Type.Optional(Type.Record(Type.String(), Type.String())),
        annotations: Type.Optional(Type.Record(Type.String(), Type.String())),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);
const Suite = Type.Object(
  {
    apiVersion: Type.Literal('podgate.io/v1alpha1'),
    kind: Type.Literal('Test'),
    policy: Type.String({ minLength: 1 }),
    cluster: Type.Optional(Type.Array(Type.String())),
    cases: Type.Array(Case, { minItems: 1 }),
  },
  { additionalProperties: false },
);
type TestCase = Static<typeof Case>;
const isSuite = compileValidator(Suite);

async function suiteFiles(paths: readonly string[]): Promise<string[]> {
  return Promise.all(paths.map(async (path) => ((await stat(path).catch(() => undefined))?.isDirectory() ? join(path, 'podgate-test.yaml') : path)));
}

async function runSuite(file: string, io: CommandIO): Promise<{ passed: number; failed: number }> {
  const text = await readFile(file, 'utf8');
  const lineCounter = new LineCounter();
  const parsed = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: false });
  if (parsed.errors.length > 0) throw new InputError(yamlError(text, file, lineCounter, parsed.errors));
  const duplicate = duplicateKeyError(parsed.contents, lineCounter, file);
  if (duplicate !== undefined) throw new InputError(duplicate);
  const document: unknown = parsed.toJS({ maxAliasCount: 100 });
  if (!isSuite(document)) throw new InputError(locatedProblems(parsed.contents, lineCounter, file, schemaProblems(isSuite.errors, document)).join('\n'));
  const base = dirname(file);
  const policy = await readPolicyFile(resolve(base, document.policy), compilePolicy);
  if (!policy.ok) throw new InputError(`${file}: its policy is not valid:\n${policy.errors.join('\n')}`);
  const noStdin = () => Promise.reject(new InputError('a test suite cannot read standard input'));
  const cluster = clusterFrom(await readObjects((document.cluster ?? []).map((path) => resolve(base, path)), noStdin));
  io.out(`${file} (policy ${document.policy})\n`);
  let passed = 0;
  let failed = 0;
  for (const testCase of document.cases) {
    const problems = await runCase(testCase, base, policy.policy, cluster, noStdin);
    if (problems.length === 0) passed += 1;
    else failed += 1;
    io.out(`  ${problems.length === 0 ? 'PASS' : 'FAIL'}  ${testCase.name}\n${problems.map((p) => `        ${p}\n`).join('')}`);
  }
  return { passed, failed };
}

async function runCase(testCase: TestCase, base: string, policy: Parameters<typeof simulate>[0], cluster: Parameters<typeof simulate>[1], stdin: () => Promise<string>): Promise<string[]> {
  const [object] = await readObjects([resolve(base, testCase.resource)], stdin);
  if (object === undefined) return [`${testCase.resource} holds no object`];
  const identity = { username: testCase.user ?? 'kubernetes-admin', groups: testCase.groups ?? ['system:authenticated'], extra: testCase.extra ?? {} };
  const operation = testCase.operation ?? 'CREATE';
  if ((testCase.oldResource !== undefined) !== (operation === 'UPDATE')) return [testCase.oldResource === undefined ? 'an UPDATE needs oldResource: the object before the change' : `oldResource is only for an UPDATE (this case is a ${operation})`];
  const [oldObject] = testCase.oldResource === undefined ? [] : await readObjects([resolve(base, testCase.oldResource)], stdin);
  if (testCase.oldResource !== undefined && oldObject === undefined) return [`${testCase.oldResource} holds no object`];
  const result = simulate(policy, cluster, object, identity, { operation, defaultNamespace: testCase.namespace ?? 'default', ...(oldObject ? { oldObject: oldObject.object } : {}) });
  const got = !result.admitted ? 'denied' : result.warnings.length > 0 ? 'warned' : 'admitted';
  const problems: string[] = [];
  if (got !== testCase.expect.result) problems.push(`expected ${testCase.expect.result}, got ${got}: ${[...result.messages, ...result.warnings].join(' | ') || '(no message)'}`);
  const said = [...result.messages, ...result.warnings];
  const missing = (testCase.expect.messages ?? []).filter((expected) => !said.some((message) => message.includes(expected)));
  for (const expected of missing) problems.push(`no message contains "${expected}"`);
  if (missing.length > 0 && got === testCase.expect.result) problems.push(`the messages were: ${said.join(' | ') || '(none)'}`);
  for (const map of ['labels', 'annotations'] as const) {
    const found = stringMapAt(result.result, 'metadata', map);
    for (const [key, value] of Object.entries(testCase.expect[map] ?? {})) {
      if (found.get(key) !== value) problems.push(`${map === 'labels' ? 'label' : 'annotation'} ${key}: expected "${value}", got ${found.has(key) ? `"${found.get(key) ?? ''}"` : 'none'}`);
    }
  }
  return problems;
}

export async function test(argv: readonly string[], io: CommandIO): Promise<number> {
  const { values, positionals } = parseArgs({ args: [...argv], allowPositionals: true, options: { help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    io.out(TEST_HELP);
    return 0;
  }
  if (positionals.length === 0) throw new UsageError('test needs a suite directory or file', TEST_HELP);
  let passed = 0;
  let failed = 0;
  try {
    for (const file of await suiteFiles(positionals)) {
      const counts = await runSuite(file, io);
      passed += counts.passed;
      failed += counts.failed;
    }
  } catch (error) {
    if (error instanceof InputError) {
      io.err(`podgate test: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  io.out(`${passed} passed, ${failed} failed\n`);
  return failed > 0 ? 1 : 0;
}
