import { allowed, denied, type Decision, type RuleReport } from './decision.ts';
import { findingMessage, ignoredErrorWarning, ruleErrorMessage } from './messages.ts';
import type { PatchOp } from '../lib/patch.ts';
import type { CompiledRule, RuleResult } from '../policy/rule.ts';
import { assertNever } from '../lib/assert-never.ts';

/** How one rule's evaluation ended, before anything is decided from it. */
export type StepOutcome =
  | { readonly type: 'evaluated'; readonly rule: CompiledRule; readonly result: Exclude<RuleResult, { status: 'skip' }>; readonly patch: readonly PatchOp[] }
  | { readonly type: 'threw'; readonly rule: CompiledRule; readonly error: unknown };

/**
 * The one place where what rules found becomes an answer. Each finding takes its
 * check's action if it came from a named check, otherwise its rule's: `deny` rejects,
 * `warn` becomes a warning, `audit` is only reported, a check set to `admit` is not
 * reported at all. A rule that threw is settled by its failurePolicy. Patches are
 * concatenated in rule order; a denied review carries none.
 *
 * Whether a rule patches is the rule's `action`, not a check's (decide.ts): a rule in
 * `audit` only reports what it would change, while a check's severity is about its
 * finding alone — kpoEnvironment still labels a pod whose lookups it reports at audit.
 *
 * `ref` names the object in messages; it is built only if something is worded.
 */
export function fold(outcomes: readonly StepOutcome[], ref: () => string): Decision {
  let named: string | undefined;
  const name = () => (named ??= ref());
  const denials: string[] = [];
  const warnings: string[] = [];
  const patch: PatchOp[] = [];
  const reports: RuleReport[] = [];
  for (const outcome of outcomes) {
    const { rule } = outcome;
    if (outcome.type === 'threw') {
      const message = ruleErrorMessage(name(), rule, outcome.error);
      reports.push({ rule: rule.name, kind: rule.kind, action: rule.action, status: 'error', patched: false, message });
      if (rule.failurePolicy === 'fail') denials.push(message);
      else warnings.push(ignoredErrorWarning(message));
      continue;
    }
    const { result } = outcome;
    const patched = outcome.patch.length > 0;
    if (patched) patch.push(...outcome.patch);
    // A pass, or a finding of a check set to admit: reported as a pass (its patch, if any, stands).
    const action = result.status === 'fail' ? (result.check?.action ?? rule.action) : 'admit';
    if (result.status === 'pass' || action === 'admit') {
      reports.push({ rule: rule.name, kind: rule.kind, action: rule.action, status: 'pass', patched });
      continue;
    }
    const message = findingMessage(name(), rule, result.findings, result.hint, result.note);
    reports.push({
      rule: rule.name,
      kind: rule.kind,
      action,
      status: 'fail',
      patched,
      message,
      ...(result.check ? { check: result.check.name } : {}),
      ...(result.counter ? { counter: result.counter } : {}),
    });
    switch (action) {
      case 'deny':
        denials.push(message);
        break;
      case 'warn':
        warnings.push(message);
        break;
      case 'audit':
        break;
      default:
        assertNever(action);
    }
  }
  if (denials.length > 0) return denied(denials.join('\n'), { warnings, reports });
  return allowed({ warnings, patch, reports });
}
