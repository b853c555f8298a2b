import t from 'tap';
import { readFile } from 'node:fs/promises';
import { RULE_KINDS } from '../src/policy/registry.ts';
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
