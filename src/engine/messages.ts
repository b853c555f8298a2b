import type { CompiledRule } from '../policy/rule.ts';
import type { OversizedObject } from '../admission/oversized.ts';
import { formatPath } from '../lib/schema.ts';
import { formatCount } from '../lib/format.ts';

/**
 * How podgate words what it says to a client: one place, so every rule's message has
 * the same shape — the object, the facts, the rule (and its note), then the fix — and
 * the rule modules only supply the facts and the fix.
 */

/** `Pod airflow/export-1: <facts> (rule <name>[: note]). <fix>` */
export function findingMessage(ref: string, rule: CompiledRule, findings: readonly string[], hint: string, note: string | undefined): string {
  return `${ref}: ${findings.join('; ')} (rule ${rule.name}${note ? `: ${note}` : ''}). ${rule.message ?? hint}`;
}

/** A rule that threw: a fault in podgate or its policy, which the object's author cannot fix. */
export function ruleErrorMessage(ref: string, rule: CompiledRule, error: unknown): string {
  const reason = error instanceof Error ? error.message : String(error);
  return `${ref}: rule ${rule.name} (${rule.kind}) could not be evaluated: ${reason}. This is a fault in podgate or its policy, not in your object; tell your platform team.`;
}

/** The warning for a rule that threw under `failurePolicy: ignore`. */
export function ignoredErrorWarning(message: string): string {
  return `${message} Admitted because the rule's failurePolicy is ignore.`;
}

/**
 * An object too large to walk (decide.ts): where, from the reviewed object down
 * (`metadata.annotations`). The finding carries its own fix, since a rule's configured
 * message replaces the hint and speaks of what the rule checks.
 */
export function oversizedFinding({ path, deeper, limit }: OversizedObject): string {
  const [, side, ...rest] = path;
  const where = `${rest.length > 0 ? formatPath(rest) : 'the object'}${deeper ? '…' : ''}`;
  const whose = side === 'oldObject' ? ' of the object as stored' : '';
  return `${where}${whose} holds more than ${formatCount(limit)} entries, more than podgate reads in one map to judge a review in time, so the rule could not judge it; remove entries from it (Kubernetes objects carry a few dozen)`;
}

export const OVERSIZED_HINT = 'Shrink the map, or exclude the object from the rule.';
