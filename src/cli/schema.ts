import { parseArgs } from 'node:util';
import { POLICY_SCHEMA } from '../policy/registry.ts';
import type { CommandIO } from './io.ts';

export const SCHEMA_HELP = `Usage: podgate schema

Prints the JSON Schema of podgate's policy file. The same schema ships as
schema/policy.schema.json; point your editor at it with a first line of
  # yaml-language-server: $schema=<path or URL of policy.schema.json>

Example:
  podgate schema > policy.schema.json
`;

/** The policy schema as a standalone JSON Schema document (draft-07, which editors read). */
export function policySchemaDocument(): string {
  const document = { $schema: 'http://json-schema.org/draft-07/schema#', ...POLICY_SCHEMA };
  return `${JSON.stringify(document, null, 2)}\n`;
}

export async function schema(argv: readonly string[], io: CommandIO): Promise<number> {
  const { values } = parseArgs({ args: [...argv], options: { help: { type: 'boolean', short: 'h' } } });
  io.out(values.help ? SCHEMA_HELP : policySchemaDocument());
  return Promise.resolve(0);
}
