import { stringMapAt } from '../lib/json.ts';
import { reviewedObject, type AdmissionRequest } from '../admission/review.ts';
import type { OversizedObject } from '../admission/oversized.ts';
import { allowed, type Decision } from './decision.ts';
import { fold, type StepOutcome } from './fold.ts';
import { oversizedFinding, OVERSIZED_HINT } from './messages.ts';
import { applyPatchCopying, type PatchOp } from '../lib/patch.ts';
import type { ClusterState } from '../policy/cluster.ts';
import type { MatchSubject } from '../policy/match.ts';
import type { Policy, RuleStep } from '../policy/policy.ts';
import type { CompiledRule, RuleInput, Stage } from '../policy/rule.ts';
import { groupKind, objectRef, workloadOf } from '../policy/workload.ts';

const NO_PATCH: readonly PatchOp[] = [];

/**
 * The whole of podgate's judgement: pure, synchronous, no I/O. Rules run in policy
 * order; in the mutating phase each rule sees the object as the rules before it
 * patched it — to match on as well as to judge — and the patches are concatenated in
 * that order (so, applied to the original object, they give the same result). What
 * the outcomes amount to is decided in fold.ts.
 *
 * `oversized`, from the body's text (readAdmissionReview), is an object of the review
 * with more members than podgate walks: no rule runs, and each rule the review is in
 * scope of and matches reports that it could not judge it (its action decides: a deny
 * rule refuses it; a pod cannot escape a rule by growing a map), except on DELETE.
 * Matching reads labels one key at a time, which costs nothing whatever the map's size.
 */
export function decide(phase: Stage, request: AdmissionRequest, policy: Policy, cluster: ClusterState, oversized?: OversizedObject): Decision {
  // A DELETE is judged as usual: no rule walks the maps of what is being deleted, and refusing
  // it would leave a pod that was stored with such a map (while a webhook failed open) undeletable.
  const unjudged = request.operation === 'DELETE' ? undefined : oversized;
  const original = reviewedObject(request);
  let subject = matchSubject(request, original);
  if (policy.exclude?.(subject)) return allowed();

  const outcomes: StepOutcome[] = [];
  // One input for every rule until a patch changes the object (mutating phase).
  let input: RuleInput = { request, object: original, cluster };
  const kind = groupKind(request.kind);
  const steps = policy.steps[phase];
  for (let index = 0; index < steps.length; index += 1) {
    const step = steps[index];
    if (step === undefined || !inScope(step, kind, request) || !step.rule.match(subject) || step.rule.exclude?.(subject)) continue;
    const outcome = unjudged === undefined ? evaluate(phase, step, input) : notJudged(step.rule, unjudged);
    if (outcome === undefined) continue;
    outcomes.push(outcome);
    // Applied so the next rule sees it; after the last step nobody reads the object, and copying a
    // hostile pod's 100,000-label map on the path of the patch cost more than everything else together.
    if (outcome.type === 'evaluated' && outcome.patch.length > 0 && index < steps.length - 1) {
      const object = applyPatchCopying(input.object, outcome.patch);
      input = { request, object, cluster };
      subject = matchSubject(request, object);
    }
  }
  return fold(outcomes, () => objectRef(request, original));
}

/** What rules are matched on: the request, and the labels of the pods concerned (a controller's: its template's). */
function matchSubject(request: AdmissionRequest, object: unknown): MatchSubject {
  return { request, labels: workloadOf(request, object)?.podLabels ?? stringMapAt(object, 'metadata', 'labels') };
}

/** Whether a step judges this kind, operation and subresource (pods/status, pods/eviction… only for rules that say so). */
function inScope(step: RuleStep, kind: string, request: AdmissionRequest): boolean {
  if (!step.kinds.has(kind) || !step.operations.has(request.operation)) return false;
  return !request.subResource || step.subresources.has(request.subResource);
}

function notJudged(rule: CompiledRule, oversized: OversizedObject): StepOutcome {
  return { type: 'evaluated', rule, result: { status: 'fail', findings: [oversizedFinding(oversized)], hint: OVERSIZED_HINT, patch: NO_PATCH }, patch: NO_PATCH };
}

/** Runs one rule; undefined when it had nothing to say. A validating answer (or an audit) never carries a patch, and an audit rule only reports what it would change. */
function evaluate(phase: Stage, step: RuleStep, input: RuleInput): StepOutcome | undefined {
  const { rule } = step;
  try {
    const result = step.evaluate(input);
    if (result.status === 'skip') return undefined;
    const patch = phase === 'mutate' && rule.action !== 'audit' ? result.patch : NO_PATCH;
    return { type: 'evaluated', rule, result, patch };
  } catch (error) {
    return { type: 'threw', rule, error };
  }
}
