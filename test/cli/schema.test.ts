import t from 'tap';
import { readFile } from 'node:fs/promises';
import { Ajv } from 'ajv';
import { parse } from 'yaml';
import { policySchemaDocument } from '../../src/cli/schema.ts';

t.test('the shipped schema file is the generated one (run `npm run schema` after changing a rule kind)', async (t) => {
  const shipped = await readFile(new URL('../../schema/policy.schema.json', import.meta.url), 'utf8');
  t.equal(shipped, policySchemaDocument());
});

t.test('an editor validating with the shipped schema accepts the sample policy and flags a wrong field', async (t) => {
  const schema = JSON.parse(policySchemaDocument()) as Record<string, unknown>;
  const validate = new Ajv({ strict: false, allErrors: true }).compile(schema);
  const sample: unknown = parse(await readFile(new URL('../../manifests/base/podgate.yaml', import.meta.url), 'utf8'));
  t.ok(validate(sample), JSON.stringify(validate.errors));
  const wrong = { apiVersion: 'podgate.io/v1alpha1', kind: 'Policy', rules: [{ name: 'x', kind: 'resourceFloors', limits: { memory: '1Gi' }, limts: {} }] };
  t.notOk(validate(wrong));
});
