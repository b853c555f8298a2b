import { parseArgs } from 'node:util';
import { readPolicyFile } from '../config/load.ts';
import { compilePolicy } from '../policy/registry.ts';
import { InputError, readObjects, type SourcedObject } from './objects.ts';
import type { WatchName } from '../policy/rule.ts';
import { clusterFrom, describePatch, simulate, type Identity } from './simulate.ts';
import { UsageError, type CommandIO } from './io.ts';

export const REVIEW_HELP = `Usage: podgate review --policy <policy.yaml> [options] <file|dir|->...

Runs Kubernetes objects through podgate as the API server would on CREATE by
the given identity: the mutating webhook, its patch, then the validating
webhook; the same engine the server runs. Reads YAML or JSON files, directories
and standard input (-): multi-document YAML as helm template prints it, kind:
List and kubectl get -o yaml output.

Options:
  --policy <file>       the policy (default: the sample policy)
  --user <name>         the requester's username (default: kubernetes-admin)
  --group <name>        a group of the requester (repeatable)
  --extra <key=value>   a userInfo.extra value (repeatable), e.g. canonicalArn=arn:aws:iam::…
  --namespace <ns>      for objects without a namespace (default: default)
  --cluster <files>     comma-separated files of existing Pods and Nodes
                        (kubectl get pods,nodes -A -o yaml), for collisions and
                        label-selected node denylists
  -o, --output <fmt>    text (default) or json (with the JSONPatch)

Exit status: 0 all admitted, 1 something denied, 2 usage or input error.

Example:
  helm template airflow apache-airflow/airflow -f values.yaml | podgate review --policy podgate.yaml -
`;

export async function review(argv: readonly string[], io: CommandIO, stdin: () => Promise<string>, defaultPolicy: string): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      help: { type: 'boolean', short: 'h' },
      policy: { type: 'string' },
      user: { type: 'string' },
      group: { type: 'string', multiple: true },
      extra: { type: 'string', multiple: true },
      namespace: { type: 'string' },
      cluster: { type: 'string' },
      output: { type: 'string', short: 'o' },
    },
  });
  if (values.help) {
    io.out(REVIEW_HELP);
    return 0;
  }
  const format = values.output ?? 'text';
  if (format !== 'text' && format !== 'json') throw new UsageError(`--output is text or json, got "${format}"`, REVIEW_HELP);
  if (positionals.length === 0) throw new UsageError('review needs at least one file, directory or - (stdin)', REVIEW_HELP);
  const extra: Record<string, string[]> = {};
  for (const pair of values.extra ?? []) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new UsageError(`--extra takes key=value, got "${pair}"`, REVIEW_HELP);
    (extra[pair.slice(0, at)] ??= []).push(pair.slice(at + 1));
  }
  const identity: Identity = { username: values.user ?? 'kubernetes-admin', groups: values.group ?? ['system:authenticated'], extra };

  const policyPath = values.policy ?? defaultPolicy;
  const loaded = await readPolicyFile(policyPath, compilePolicy);
  if (!loaded.ok) {
    io.err(`${loaded.errors.join('\n')}\n`);
    return 2;
  }
  try {
    const state = values.cluster ? await readObjects(values.cluster.split(','), stdin) : [];
    const cluster = clusterFrom(state);
    const objects = await readObjects(positionals, stdin);
    // `helm template … | podgate review -` after helm failed must not pass a CI step.
    if (objects.length === 0) throw new InputError(`no Kubernetes object in ${positionals.map((p) => (p === '-' ? 'standard input' : p)).join(', ')}: nothing was reviewed (did the command producing it fail?)`);
    for (const note of missingState(loaded.policy.watches, state)) io.err(`podgate review: note: ${note}\n`);
    const results = objects.map((object) => simulate(loaded.policy, cluster, object, identity, { defaultNamespace: values.namespace ?? 'default' }));
    if (format === 'json') {
      const report = results.map((r) => ({ ref: r.ref, source: r.source, admitted: r.admitted, messages: r.messages, warnings: r.warnings, patch: r.patch }));
      io.out(`${JSON.stringify(report, null, 2)}\n`);
    } else {
      for (const r of results) {
        const verdict = !r.admitted ? 'DENIED  ' : r.warnings.length > 0 ? 'WARNED  ' : 'ADMITTED';
        io.out(`${verdict} ${r.ref}  (${r.source})\n`);
        for (const message of r.messages) io.out(`  denied: ${message}\n`);
        for (const warning of r.warnings) io.out(`  warning: ${warning}\n`);
        for (const line of describePatch(r.patch)) io.out(`  ${line}\n`);
      }
      const denied = results.filter((r) => !r.admitted).length;
      io.out(`${results.length} object(s): ${results.length - denied} admitted, ${denied} denied\n`);
    }
    return results.some((r) => !r.admitted) ? 1 : 0;
  } catch (error) {
    if (error instanceof InputError) {
      io.err(`podgate review: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
}

/** What the policy's rules would read from the cluster that the review was not given: said, so an admission is not read as a clean bill. */
function missingState(watches: ReadonlySet<WatchName>, state: readonly SourcedObject[]): string[] {
  const given = (kind: string) => state.some(({ object }) => object['kind'] === kind);
  const notes: string[] = [];
  if (watches.has('nodes') && !given('Node')) notes.push('no nodes were given (--cluster nodes.yaml, from kubectl get nodes -o yaml): node denylist entries by selector match no node, so a pod pinned to such a node by hostname or affinity is judged by names alone');
  if (watches.has('kpoPods') && !given('Pod')) notes.push('no live pods were given (--cluster pods.yaml, from kubectl get pods -A -o yaml): KubernetesPodOperator collisions are judged against an empty cluster');
  return notes;
}
