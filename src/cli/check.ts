import { parseArgs } from 'node:util';
import { readPolicyFile } from '../config/load.ts';
import { compilePolicy } from '../policy/registry.ts';
import { UsageError, type CommandIO } from './io.ts';

export const CHECK_HELP = `Usage: podgate check <policy.yaml>...

Checks policy files against the schema and the semantic rules (quantities,
label values, selectors) and prints every problem as file:line:column.
Exit status: 0 all valid, 1 a file has problems, 2 usage error.

Example:
  podgate check manifests/base/podgate.yaml
`;

export async function check(argv: readonly string[], io: CommandIO): Promise<number> {
  const { positionals, values } = parseArgs({ args: [...argv], allowPositionals: true, options: { help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    io.out(CHECK_HELP);
    return 0;
  }
  if (positionals.length === 0) throw new UsageError('check needs at least one policy file', CHECK_HELP);
  let failed = false;
  for (const path of positionals) {
    const result = await readPolicyFile(path, compilePolicy);
    if (result.ok) {
      io.out(`${path}: valid, ${result.policy.rules.length} rule(s): ${result.policy.rules.map((rule) => rule.name).join(', ')}\n`);
    } else {
      failed = true;
      io.err(`${result.errors.join('\n')}\n`);
    }
  }
  return failed ? 1 : 0;
}
