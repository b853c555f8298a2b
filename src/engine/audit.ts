import { syntheticRequest, type Identity } from '../admission/synthetic.ts';
import { arrayAt, at, stringAt } from '../lib/json.ts';
import type { ClusterState } from '../policy/cluster.ts';
import type { Policy } from '../policy/policy.ts';
import type { Action } from '../policy/rule.ts';
import { decide } from './decide.ts';

/**
 * Who an audit's replayed CREATE comes from: nobody in particular. A live object does not
 * record its creator, so rules judge what the object says; a rule matched on usernames or
 * groups does not select it, and the kpo* rules read the pod's environment label.
 */
export const AUDIT_IDENTITY: Identity = { username: 'system:podgate:audit', groups: [], extra: {} };

/** The object a finding is about, as a PolicyReport names it. */
export interface AuditedObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
  readonly uid: string | undefined;
  /** The uid of the object that controls it (a Deployment's ReplicaSet, a ReplicaSet's Pod), if any. */
  readonly controller: string | undefined;
}

/** What one rule found about one live object: the message the webhook would give for it. */
export interface AuditFinding {
  readonly rule: string;
  readonly ruleKind: string;
  /** What the webhook would do with it now: deny, warn or only audit. */
  readonly action: Action;
  /** fail: the rule found something; error: the rule threw on this object. */
  readonly result: 'fail' | 'error';
  readonly check: string | undefined;
  readonly message: string;
  readonly object: AuditedObject;
}

/**
 * Judges one object already in the cluster with the policy's audit logic (RuleLogic.audit):
 * replayed as a CREATE by AUDIT_IDENTITY, through the same decide() and fold the webhooks
 * use, so each finding is worded as the webhook words it. Every finding counts, whatever
 * the rule's action: the audit asks what the policy objects to, not what it blocks today.
 */
export function auditObject(policy: Policy, cluster: ClusterState, object: Record<string, unknown>): readonly AuditFinding[] {
  const decision = decide('audit', syntheticRequest(object, AUDIT_IDENTITY), policy, cluster);
  const findings: AuditFinding[] = [];
  let described: AuditedObject | undefined;
  for (const report of decision.reports) {
    if (report.status === 'pass') continue;
    described ??= describe(object);
    findings.push({ rule: report.rule, ruleKind: report.kind, action: report.action, result: report.status, check: report.check, message: report.message ?? '', object: described });
  }
  return findings;
}

function describe(object: Record<string, unknown>): AuditedObject {
  const controller = arrayAt(object, 'metadata', 'ownerReferences').find((owner) => at(owner, 'controller') === true);
  return {
    apiVersion: stringAt(object, 'apiVersion') ?? '',
    kind: stringAt(object, 'kind') ?? '',
    namespace: stringAt(object, 'metadata', 'namespace') ?? '',
    name: stringAt(object, 'metadata', 'name') ?? '',
    uid: stringAt(object, 'metadata', 'uid'),
    controller: stringAt(controller, 'uid'),
  };
}

/** Findings counted per rule and action (a rule's named check may take another action than the rule): what the background audit exports. */
export interface RuleTally {
  readonly rule: string;
  readonly ruleKind: string;
  readonly action: Action;
  count: number;
}

/** Adds findings to the counts (a map kept by the caller, one entry per rule and action that found something). */
export function tally(counts: Map<string, RuleTally>, findings: readonly AuditFinding[]): void {
  for (const finding of findings) {
    const key = `${finding.rule}\u0000${finding.action}`;
    const entry = counts.get(key);
    if (entry === undefined) counts.set(key, { rule: finding.rule, ruleKind: finding.ruleKind, action: finding.action, count: 1 });
    else entry.count += 1;
  }
}
