import { stringMapAt } from './json.ts';
import { reviewedObject, type AdmissionRequest } from './review.ts';
import { allowed, denied, type Decision, type RuleReport } from './decision.ts';
import { applyPatchCopying, type PatchOp } from './patch.ts';
import type { ClusterState } from '../policy/cluster.ts';
import type { Policy } from '../policy/policy.ts';
import type { CompiledRule, Phase, RuleResult } from '../policy/rule.ts';
import { groupKind, objectRef, workloadOf } from '../policy/workload.ts';
import { assertNever } from '../lib/assert-never.ts';

const NO_PATCH: readonly PatchOp[] = [];

/**
 * The whole of podgate's judgement: pure, synchronous, no I/O. Rules run in
 * policy order; in the mutating phase each rule sees the object as the rules
 * before it patched it, and the patches are concatenated in that order (so,
 * applied to the original object, they give the same result).
 *
 * Folding rule results into one answer happens here and nowhere else: `deny`
 * findings reject, `warn` findings become warnings, `audit` findings are only
 * reported, and a rule that throws is settled by its failure policy.
 */
export function decide(phase: Phase, request: AdmissionRequest, policy: Policy, cluster: ClusterState): Decision {
  const original = reviewedObject(request);
  const labels = workloadOf(request, original)?.podLabels ?? stringMapAt(original, 'metadata', 'labels');
  const matchInput = { request, labels };
  if (policy.exclude?.(matchInput)) return allowed();

  // How messages name the object; built only when a rule has something to say (`named ??= objectRef(…)`).
  let named: string | undefined;
  const denials: string[] = [];
  const warnings: string[] = [];
  const patch: PatchOp[] = [];
  const reports: RuleReport[] = [];
  let object = original;
  // One input for every rule until a patch changes the object (mutating phase).
  let input = { request, object, cluster };

  const kind = groupKind(request.kind);
  const steps = policy.steps[phase];
  for (let index = 0; index < steps.length; index += 1) {
    const step = steps[index];
    if (step === undefined) break;
    const { rule, evaluate, kinds, operations, subresources } = step;
    if (!kinds.has(kind) || !operations.has(request.operation)) continue;
    // A subresource (pods/status, pods/eviction, …) carries another object or intent: only rules that say so judge it.
    if (request.subResource && !subresources.has(request.subResource)) continue;
    if (!rule.match(matchInput) || rule.exclude?.(matchInput)) continue;

    let result: RuleResult;
    let rulePatch: readonly PatchOp[];
    try {
      result = evaluate(input);
      rulePatch = patchToApply(phase, rule, result);
      // Applied so the next rule sees it; after the last step nobody reads the object, and copying a
      // hostile pod's 100,000-label map on the path of the patch cost more than everything else together.
      if (rulePatch.length > 0 && index < steps.length - 1) {
        object = applyPatchCopying(object, rulePatch);
        input = { request, object, cluster };
      }
    } catch (error) {
      const message = ruleErrorMessage((named ??= objectRef(request, original)), rule, error);
      reports.push({ rule: rule.name, kind: rule.kind, action: rule.action, status: 'error', patched: false, message });
      if (rule.failurePolicy === 'fail') denials.push(message);
      else warnings.push(`${message} Admitted because the rule's failurePolicy is ignore.`);
      continue;
    }
    const patched = rulePatch.length > 0;
    if (patched) patch.push(...rulePatch);
    switch (result.status) {
      case 'skip':
        break;
      case 'pass':
        reports.push({ rule: rule.name, kind: rule.kind, action: rule.action, status: 'pass', patched });
        break;
      case 'fail': {
        const message = `${(named ??= objectRef(request, original))}: ${result.findings.join('; ')} (rule ${rule.name}${result.note ? `: ${result.note}` : ''}). ${rule.message ?? result.hint}`;
        const action = result.action ?? rule.action;
        reports.push({ rule: rule.name, kind: rule.kind, action, status: 'fail', patched, message, ...(result.tags ? { tags: result.tags } : {}) });
        if (action === 'deny') denials.push(message);
        else if (action === 'warn') warnings.push(message);
        break;
      }
      default:
        assertNever(result);
    }
  }

  if (denials.length > 0) return denied(denials.join('\n'), { warnings, reports });
  return allowed({ warnings, patch, reports });
}

/** A validating answer never carries a patch, and an audit rule only reports what it would change. */
function patchToApply(phase: Phase, rule: CompiledRule, result: RuleResult): readonly PatchOp[] {
  if (phase !== 'mutate' || rule.action === 'audit' || result.status === 'skip') return NO_PATCH;
  return result.patch;
}

function ruleErrorMessage(ref: string, rule: CompiledRule, error: unknown): string {
  const reason = error instanceof Error ? error.message : String(error);
  return `${ref}: rule ${rule.name} (${rule.kind}) could not be evaluated: ${reason}. This is a fault in podgate or its policy, not in your object; tell your platform team.`;
}
