import t from 'tap';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { decide } from '../../src/engine/decide.ts';
import { EMPTY_CLUSTER } from '../../src/policy/cluster.ts';
import { compileAirflow } from '../../src/policy/airflow.ts';
import { compilePolicy } from '../../src/policy/registry.ts';
import { makeRequest } from '../helpers/builders.ts';
import { AIRFLOW_SECTION, makeKpoPod, PRODUCTION } from '../helpers/kpo.ts';

// podgate's Airflow side (airflow/podgate_airflow): its Python tests, and that what it adds is what podgate reads.
const AIRFLOW_DIR = fileURLToPath(new URL('../../airflow/', import.meta.url));
const run = promisify(execFile);

t.test("the cluster policy's own tests (Python's unittest, Airflow stubbed) pass", async (t) => {
  const { stderr } = await run('python3', ['-m', 'unittest', 'discover', '-s', 'tests'], { cwd: AIRFLOW_DIR });
  const ran = Number(/^Ran (\d+) tests?/m.exec(stderr)?.[1] ?? 0);
  t.ok(ran >= 10, `ran ${ran} tests`);
  t.match(stderr, /\nOK\n?$/);
});

t.test('the label the cluster policy adds is the one kpoEnvironment reads, and scopes the lookups', async (t) => {
  const { stdout } = await run('python3', ['tests/test_policy.py', '--labels', 'production'], { cwd: AIRFLOW_DIR });
  const operatorLabels = JSON.parse(stdout) as Record<string, string>;
  const compiled = compileAirflow(AIRFLOW_SECTION);
  if (!('airflow' in compiled)) throw new Error('airflow section');
  t.equal(operatorLabels[compiled.airflow.environmentKey], 'production', `the policy sets ${compiled.airflow.environmentKey}`);

  const policy = compilePolicy({ apiVersion: 'podgate.io/v1alpha1', kind: 'Policy', airflow: AIRFLOW_SECTION, rules: [{ name: 'environment-labels', kind: 'kpoEnvironment', scopedLookups: 'deny' }] });
  if (!policy.ok) throw new Error(JSON.stringify(policy.problems));
  const scoped = decide('mutate', makeRequest(makeKpoPod({ operatorLabels }), PRODUCTION), policy.policy, EMPTY_CLUSTER);
  t.same([scoped.allowed, scoped.warnings], [true, []], 'a pod built with the operator labels passes scopedLookups: deny');
  const unscoped = decide('mutate', makeRequest(makeKpoPod(), PRODUCTION), policy.policy, EMPTY_CLUSTER);
  t.equal(unscoped.allowed, false, 'without the cluster policy, the same pod is refused');
});
