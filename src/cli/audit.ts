import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { readPolicyFile } from '../config/load.ts';
import type { AuditFinding } from '../engine/audit.ts';
import type { Action } from '../policy/rule.ts';
import { auditCluster, DEFAULT_AUDIT_PAGE_SIZE, type ClusterAudit } from '../kube/audit.ts';
import { connectToCluster } from '../kube/connect.ts';
import { ListError } from '../kube/lister.ts';
import { compilePolicy } from '../policy/registry.ts';
import type { Policy } from '../policy/policy.ts';
import { UsageError, type CommandIO } from './io.ts';

export const AUDIT_HELP = `Usage: podgate audit [options]

Judges what is already in the cluster with the policy: every Pod and pod
controller a rule audits, replayed as a CREATE, with the messages the webhook
would give; and the live KubernetesPodOperator pods: without an environment
label, from operators whose lookups are not scoped, and those of two
environments one task's lookup would match. Read-only: it only lists, a page at
a time. Findings count whatever the rule's action (deny, warn or audit).

Options:
  --policy <file>       the policy (default: the sample policy)
  --kubeconfig <file>   the cluster (default: in-cluster service account, else
                        $KUBECONFIG, else ~/.kube/config)
  -o, --output <fmt>    text (default), json, or policyreport (wgpolicyk8s.io/v1alpha2
                        PolicyReports, one per namespace, as YAML documents)
  --page-size <n>       objects per list page (default ${DEFAULT_AUDIT_PAGE_SIZE})
  --show <n>            text: objects shown per rule (default 20; 0: all)

Permissions: "list" on nodes and pods, and on the controllers the policy's rules
judge (deployments, statefulsets, daemonsets, replicasets, jobs, cronjobs,
replicationcontrollers), in every namespace; manifests/components/audit has a
ClusterRole.

Exit status: 0 nothing found, 1 something found, 2 usage error, or the cluster
could not be listed.

Example:
  podgate audit --policy podgate.yaml -o policyreport | kubectl apply -f -
`;

type Format = 'text' | 'json' | 'policyreport';
const FORMATS: readonly Format[] = ['text', 'json', 'policyreport'];
/** Results per PolicyReport at most: a namespace with more gets several (podgate-audit, podgate-audit-2, …), each well inside etcd's 1.5 MiB object limit. */
const RESULTS_PER_REPORT = 1000;

function isFormat(value: string): value is Format {
  return (FORMATS as readonly string[]).includes(value);
}

function positiveInteger(value: string | undefined, fallback: number, flag: string, allowZero = false): number {
  if (value === undefined) return fallback;
  const number = Number(value);
  if (!Number.isInteger(number) || number < (allowZero ? 0 : 1)) throw new UsageError(`${flag} takes a whole number${allowZero ? '' : ' above 0'}, got "${value}"`, AUDIT_HELP);
  return number;
}

export async function audit(argv: readonly string[], io: CommandIO, defaultPolicy: string, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      help: { type: 'boolean', short: 'h' },
      policy: { type: 'string' },
      kubeconfig: { type: 'string' },
      output: { type: 'string', short: 'o' },
      'page-size': { type: 'string' },
      show: { type: 'string' },
    },
  });
  if (values.help) {
    io.out(AUDIT_HELP);
    return 0;
  }
  const format = values.output ?? 'text';
  if (!isFormat(format)) throw new UsageError(`--output is text, json or policyreport, got "${format}"`, AUDIT_HELP);
  const pageSize = positiveInteger(values['page-size'], DEFAULT_AUDIT_PAGE_SIZE, '--page-size');
  const show = positiveInteger(values.show, 20, '--show', true);

  const loaded = await readPolicyFile(values.policy ?? defaultPolicy, compilePolicy);
  if (!loaded.ok) {
    io.err(`${loaded.errors.join('\n')}\n`);
    return 2;
  }
  const policy = loaded.policy;
  const connection = await connectToCluster({ kubeconfig: values.kubeconfig }, env);
  if (connection.mode === 'offline') {
    io.err(`podgate audit: no cluster to audit (${connection.detail}); give --kubeconfig, or run it in a pod (podgate review judges files offline)\n`);
    return 2;
  }
  if (policy.steps.audit.length === 0) io.err('podgate audit: note: no rule of this policy audits live objects (resourceFloors, gracePeriodFloor, nodeDenylist, kpoEnvironment and kpoCollisionGuard do)\n');

  const findings: AuditFinding[] = [];
  const progress = progressLine(io);
  let result: ClusterAudit;
  try {
    result = await auditCluster(connection.client, policy, {
      pageSize,
      onFindings: (found) => findings.push(...found),
      ...(progress ? { onProgress: progress.update } : {}),
    });
  } catch (error) {
    if (error instanceof ListError) {
      io.err(`podgate audit: ${error.message}\n`);
      return 2;
    }
    throw error;
  } finally {
    progress?.done();
  }

  switch (format) {
    case 'json':
      io.out(`${JSON.stringify({ cluster: connection.detail, objects: Object.fromEntries(result.objects), rules: [...result.rules.values()], findings }, null, 2)}\n`);
      break;
    case 'policyreport':
      io.out(policyReports(findings, result, new Date()));
      break;
    case 'text':
      io.out(textReport(connection.detail, policy, findings, result, show));
      break;
  }
  return findings.length > 0 ? 1 : 0;
}

/** A progress line on stderr, rewritten in place, when stderr is a terminal and the cluster is large enough to wait for. */
function progressLine(io: CommandIO): { update: (progress: { resource: string; objects: number }) => void; done: () => void } | undefined {
  if (io.errIsTerminal !== true) return undefined;
  let shown = false;
  return {
    update: ({ resource, objects }) => {
      if (objects < 1000 && !shown) return;
      shown = true;
      io.err(`\r\u001b[Klisting ${resource}: ${objects} judged`);
    },
    done: () => {
      if (shown) io.err('\r\u001b[K');
    },
  };
}

/**
 * The findings of one rule, each object's controller chain folded into the topmost object the
 * rule also found. Linear: each object's root is found once and remembered, and a chain that
 * loops (the API server does not forbid cycles of ownerReferences) stops where it closes.
 */
function folded(findings: readonly AuditFinding[]): { finding: AuditFinding; controlled: number }[] {
  const byUid = new Map<string, AuditFinding>();
  for (const finding of findings) if (finding.object.uid !== undefined) byUid.set(finding.object.uid, finding);
  const roots = new Map<AuditFinding, AuditFinding>();
  const rootOf = (finding: AuditFinding): AuditFinding => {
    const path: AuditFinding[] = [];
    const onPath = new Set<AuditFinding>();
    let current = finding;
    for (;;) {
      const known = roots.get(current);
      if (known !== undefined) {
        current = known;
        break;
      }
      path.push(current);
      onPath.add(current);
      const owner = current.object.controller === undefined ? undefined : byUid.get(current.object.controller);
      if (owner === undefined || onPath.has(owner)) break;
      current = owner;
    }
    for (const step of path) roots.set(step, current);
    return current;
  };
  const groups = new Map<AuditFinding, number>();
  for (const finding of findings) {
    const root = rootOf(finding);
    groups.set(root, (groups.get(root) ?? 0) + (root === finding ? 0 : 1));
  }
  return [...groups].map(([finding, controlled]) => ({ finding, controlled }));
}

function textReport(cluster: string, policy: Policy, findings: readonly AuditFinding[], result: ClusterAudit, show: number): string {
  const lines: string[] = [];
  const judged = [...result.objects].map(([kind, count]) => `${count} ${kind}${count === 1 ? '' : 's'}`).join(', ');
  lines.push(`podgate audit of ${cluster}: ${judged || 'nothing'} judged by ${policy.steps.audit.length} rule(s)`);
  const byRule = new Map<string, AuditFinding[]>();
  for (const finding of findings) {
    const list = byRule.get(finding.rule) ?? [];
    list.push(finding);
    byRule.set(finding.rule, list);
  }
  for (const [rule, list] of byRule) {
    lines.push('', `rule ${rule} (${list[0]?.ruleKind ?? ''}, ${actionsWording(list)}): ${list.length} finding(s)`);
    const groups = folded(list);
    const shown = show === 0 ? groups : groups.slice(0, show);
    for (const { finding, controlled } of shown) {
      lines.push(`  ${finding.result === 'error' ? 'ERROR ' : ''}${finding.message}`);
      if (controlled > 0) lines.push(`    (and ${controlled} object(s) it controls, for the same reason)`);
    }
    if (shown.length < groups.length) lines.push(`  … and ${groups.length - shown.length} more (--show 0, or -o json, lists them all)`);
  }
  lines.push('', findings.length === 0 ? 'nothing found' : `${findings.length} finding(s) by ${byRule.size} rule(s)`);
  return `${lines.join('\n')}\n`;
}

/** What the webhook does with a rule's findings: one phrase when they share an action, counts per action when a rule's named checks act differently. */
function actionsWording(findings: readonly AuditFinding[]): string {
  const counts = new Map<Action, number>();
  for (const finding of findings) counts.set(finding.action, (counts.get(finding.action) ?? 0) + 1);
  if (counts.size === 1) {
    const [action] = counts.keys();
    if (action !== undefined) return `the webhook ${actionVerb(action)} these`;
  }
  return `the webhook ${[...counts].map(([action, count]) => `${actionVerb(action)} ${count}`).join(' and ')}`;
}

function actionVerb(action: Action): string {
  switch (action) {
    case 'deny':
      return 'denies';
    case 'warn':
      return 'warns of';
    case 'audit':
      return 'only logs';
  }
}

/**
 * The findings as the Kubernetes Policy WG's PolicyReports (wgpolicyk8s.io/v1alpha2), which
 * Kyverno's and Kubewarden's tools already read: per namespace with findings (reports are
 * namespaced), at most RESULTS_PER_REPORT results each, and a ClusterPolicyReport for cluster-scoped objects. A finding the webhook would only warn of is
 * `warn`; one it would deny or log is `fail`; a rule that threw is `error`.
 */
function policyReports(findings: readonly AuditFinding[], result: ClusterAudit, now: Date): string {
  const byNamespace = new Map<string, AuditFinding[]>();
  for (const finding of findings) {
    const list = byNamespace.get(finding.object.namespace) ?? [];
    list.push(finding);
    byNamespace.set(finding.object.namespace, list);
  }
  const timestamp = { seconds: Math.floor(now.getTime() / 1000), nanos: 0 };
  const chunks = [...byNamespace].flatMap(([namespace, list]) => Array.from({ length: Math.ceil(list.length / RESULTS_PER_REPORT) }, (_, i) => ({ namespace, index: i, list: list.slice(i * RESULTS_PER_REPORT, (i + 1) * RESULTS_PER_REPORT) })));
  const reports = chunks.map(({ namespace, index, list }) => {
    const results = list.map((finding) => ({
      source: 'podgate',
      policy: 'podgate',
      rule: finding.rule,
      result: finding.result === 'error' ? 'error' : finding.action === 'warn' ? 'warn' : 'fail',
      message: finding.message,
      scored: true,
      timestamp,
      resources: [{ apiVersion: finding.object.apiVersion, kind: finding.object.kind, ...(namespace === '' ? {} : { namespace }), name: finding.object.name, ...(finding.object.uid === undefined ? {} : { uid: finding.object.uid }) }],
      properties: { ruleKind: finding.ruleKind, action: finding.action, ...(finding.check === undefined ? {} : { check: finding.check }) },
    }));
    const count = (kind: string) => results.filter((r) => r.result === kind).length;
    return {
      apiVersion: 'wgpolicyk8s.io/v1alpha2',
      kind: namespace === '' ? 'ClusterPolicyReport' : 'PolicyReport',
      metadata: { name: index === 0 ? 'podgate-audit' : `podgate-audit-${index + 1}`, ...(namespace === '' ? {} : { namespace }), labels: { 'app.kubernetes.io/managed-by': 'podgate' } },
      summary: { pass: 0, fail: count('fail'), warn: count('warn'), error: count('error'), skip: 0 },
      results,
    };
  });
  if (reports.length === 0) return `# podgate audit: nothing found in ${[...result.objects.values()].reduce((a, b) => a + b, 0)} objects\n`;
  return reports.map((report) => stringify(report, { lineWidth: 0, aliasDuplicateObjects: false })).join('---\n');
}
