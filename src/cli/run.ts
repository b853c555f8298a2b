import { audit, AUDIT_HELP } from './audit.ts';
import { certs, CERTS_HELP } from './certs.ts';
import { review, REVIEW_HELP } from './review.ts';
import { test, TEST_HELP } from './test.ts';
import { DEFAULT_POLICY_PATH } from './serve.ts';
import { text } from 'node:stream/consumers';
import { check, CHECK_HELP } from './check.ts';
import { UsageError, type CommandIO } from './io.ts';
import { schema, SCHEMA_HELP } from './schema.ts';
import { serve, SERVE_HELP } from './serve.ts';
import { versionLine } from '../server/version.ts';

const HELP = `podgate: admission webhooks for Apache Airflow on shared Kubernetes clusters

Usage: podgate <command> [options]

Commands:
  serve    serve the webhooks over HTTPS (the default when no command is given)
  check    check policy files and print every problem with its line
  review   run manifests through the policy as the API server would, offline
  test     run a policy's test suites (cases with expected outcomes)
  audit    judge what is already in a cluster with the policy (read-only)
  schema   print the policy file's JSON Schema (for editors)
  certs    make a CA and serving certificate for the in-cluster Service (no cert-manager)
  version  print podgate's version and the Node running it (also --version)

Run podgate <command> --help for a command's options and an example.
`;

type Command = (argv: readonly string[], io: CommandIO) => Promise<number>;
const COMMANDS: Readonly<Record<string, { run: Command; help: string }>> = {
  serve: { run: serve, help: SERVE_HELP },
  check: { run: check, help: CHECK_HELP },
  review: { run: (argv, io) => review(argv, io, () => text(process.stdin), DEFAULT_POLICY_PATH), help: REVIEW_HELP },
  test: { run: test, help: TEST_HELP },
  audit: { run: (argv, io) => audit(argv, io, DEFAULT_POLICY_PATH), help: AUDIT_HELP },
  schema: { run: schema, help: SCHEMA_HELP },
  certs: { run: certs, help: CERTS_HELP },
};

export async function main(argv: readonly string[], io: CommandIO): Promise<number> {
  const [first, ...rest] = argv;
  if (first === '--help' || first === '-h' || first === 'help') {
    io.out(HELP);
    return 0;
  }
  if (first === '--version' || first === 'version') {
    io.out(`${versionLine()}\n`);
    return 0;
  }
  const named = first !== undefined && !first.startsWith('-');
  const command = named ? COMMANDS[first] : COMMANDS['serve'];
  if (command === undefined) {
    io.err(`podgate: unknown command "${first ?? ''}"\n\n${HELP}`);
    return 2;
  }
  try {
    return await command.run(named ? rest : argv, io);
  } catch (error) {
    if (error instanceof UsageError) {
      io.err(`podgate: ${error.message}\n\n${error.help}`);
      return 2;
    }
    // parseArgs reports unknown or malformed options as TypeErrors with a code.
    if (error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS')) {
      io.err(`podgate: ${error.message}\n`);
      return 2;
    }
    io.err(`podgate: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}
