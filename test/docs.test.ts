import t from 'tap';
import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import { compilePolicy, RULE_KINDS } from '../src/policy/registry.ts';
import { readPolicyFile } from '../src/config/load.ts';
import { DEFAULT_POLICY_PATH } from '../src/cli/serve.ts';
import { readObjects } from '../src/cli/objects.ts';
import { simulate } from '../src/cli/simulate.ts';
import { EMPTY_CLUSTER } from '../src/policy/cluster.ts';
import { AirflowSchema } from '../src/policy/airflow.ts';

// The policy reference in the README is checked against the schema, so it cannot drift from it.
const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8');
const COMMON = ['name', 'kind', 'action', 'failurePolicy', 'match', 'exclude', 'message'];

t.test('every rule kind is in the rule table and has its fields documented', async (t) => {
  for (const kind of RULE_KINDS) {
    t.match(readme, new RegExp(`^\\| \\[\`${kind.kind}\`\\]`, 'm'), `${kind.kind} has a row in the rule kinds table`);
    const own = Object.keys(kind.schema.properties).filter((field) => !COMMON.includes(field));
    const start = readme.search(new RegExp(`^#### .*${kind.kind.startsWith('kpo') ? 'the kpo rule kinds' : kind.kind}`, 'm'));
    t.ok(start >= 0, `${kind.kind} has a section`);
    const section = readme.slice(start);
    for (const field of own) t.match(section.slice(0, 6000), `\`${field}\``, `${kind.kind}.${field} is documented`);
  }
});

t.test('the common rule fields and the airflow section are documented', async (t) => {
  for (const field of COMMON) t.match(readme, new RegExp(`^ +(- )?${field}:`, 'm'), `rule field ${field} in the example`);
  for (const field of Object.keys(AirflowSchema.properties)) t.match(readme, new RegExp(`^ {2}${field}:`, 'm'), `airflow.${field} in the example`);
});

t.test("the README's Verify step: the object it applies is refused with the message it quotes", async (t) => {
  const path = /^kubectl apply --dry-run=server -f (\S+)$/m.exec(readme)?.[1];
  t.ok(path, 'the Verify step applies a file from the repository');
  const quoted = /^# → admission webhook "validate\.podgate\.io" denied the request: (.+)\n#\s+(.+?) …/m.exec(readme);
  const sample = await readPolicyFile(DEFAULT_POLICY_PATH, compilePolicy);
  if (!sample.ok || path === undefined || quoted === null) throw new Error('README or sample policy');
  const [object] = await readObjects([new URL(`../${path}`, import.meta.url).pathname], () => Promise.reject(new Error('no stdin')));
  if (object === undefined) throw new Error(`${path} holds no object`);
  const result = simulate(sample.policy, EMPTY_CLUSTER, object, { username: 'kubernetes-admin', groups: ['system:masters'], extra: {} });
  t.equal(result.admitted, false, `${path} is refused`);
  t.ok(result.messages[0]?.startsWith(`${quoted[1] ?? ''} ${quoted[2] ?? ''}`), `with the message the README quotes: ${result.messages[0] ?? ''}`);
});

t.test("the rollout's stage-1 policy is the sample policy with every rule reporting instead of refusing", async (t) => {
  const stagePath = new URL('../examples/rollout/podgate-stage1-audit.yaml', import.meta.url).pathname;
  const [stage, sample] = await Promise.all([readPolicyFile(stagePath, compilePolicy), readPolicyFile(DEFAULT_POLICY_PATH, compilePolicy)]);
  if (!stage.ok || !sample.ok) throw new Error('a policy does not load');
  t.ok(readme.includes('examples/rollout/podgate-stage1-audit.yaml'), 'the README names it');
  const levels = new Set(['action', 'scopedLookups', 'unknownCreator', 'whileUnsynced']);
  const shape = async (path: string) => ((parse(await readFile(path, 'utf8')) as { rules: Record<string, unknown>[] }).rules).map((rule) => Object.fromEntries(Object.entries(rule).filter(([key]) => !levels.has(key))));
  t.same(await shape(stagePath), await shape(DEFAULT_POLICY_PATH), 'the same rules, selectors and floors: only how loudly they speak differs');
  t.same(stage.policy.rules.map((rule) => rule.action), ['audit', 'audit', 'audit', 'audit', 'deny', 'warn', 'audit', 'audit'], 'nothing denies (podMetadata only adds metadata; kpoEnvironment warns, so its labels are applied)');
  const [object] = await readObjects([new URL('../examples/policy-test/resources/api-server-too-small.yaml', import.meta.url).pathname], () => Promise.reject(new Error('no stdin')));
  if (object === undefined) throw new Error('no object');
  const admin = { username: 'kubernetes-admin', groups: ['system:masters'], extra: {} };
  t.equal(simulate(sample.policy, EMPTY_CLUSTER, object, admin).admitted, false, 'the sample policy refuses the too-small api-server');
  t.equal(simulate(stage.policy, EMPTY_CLUSTER, object, admin).admitted, true, 'stage 1 admits it and only reports it');
});
