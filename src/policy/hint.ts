/**
 * Wording shared by rule kinds for the hint they report (engine/messages.ts puts it after
 * the findings): the floors' "reason; fix" sentence and lists of names.
 */

/** The rule's configured reason (why the rule exists), then what to change, as one sentence. */
export function reasonAndFix(reason: string | undefined, fix: string): string {
  const text = reason ? `${reason}; ${fix}` : fix;
  return `${text.charAt(0).toUpperCase()}${text.slice(1)}.`;
}

/** `a`, `a and b`, `a, b and c`. */
export function listing(items: readonly string[]): string {
  return items.length <= 1 ? (items[0] ?? '') : `${items.slice(0, -1).join(', ')} and ${items.at(-1) ?? ''}`;
}
