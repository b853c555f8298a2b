import type { PatchOp } from './patch.ts';
import type { Action } from '../policy/rule.ts';

/** How one rule ended for one request; logged and counted, never shown to the client as is. */
export interface RuleReport {
  readonly rule: string;
  readonly kind: string;
  readonly action: Action;
  readonly status: 'pass' | 'fail' | 'error';
  readonly patched: boolean;
  /** The worded finding or error, for audit logs. */
  readonly message?: string;
  /** The rule's metric dimensions, if it gave any. */
  readonly tags?: Readonly<Record<string, string>>;
}

/**
 * The answer to one admission request, before it is put on the wire. A decision
 * from the validating phase never carries a patch (enforced in decide.ts).
 */
export interface Decision {
  readonly allowed: boolean;
  /** Present exactly when denied. */
  readonly denial?: { readonly code: number; readonly reason: string; readonly message: string };
  readonly warnings: readonly string[];
  readonly patch: readonly PatchOp[];
  readonly reports: readonly RuleReport[];
}

/** Shared by every decision that has none of something (frozen, so no caller can fill it for the others). */
const NONE: readonly never[] = Object.freeze([]);
const NO_FIELDS = {};

export function allowed(fields: Partial<Pick<Decision, 'warnings' | 'patch' | 'reports'>> = NO_FIELDS): Decision {
  return { allowed: true, warnings: fields.warnings ?? NONE, patch: fields.patch ?? NONE, reports: fields.reports ?? NONE };
}

/** 403 Forbidden, as the API server and controller-runtime word a policy denial. */
export function denied(message: string, fields: Partial<Pick<Decision, 'warnings' | 'reports'>> = NO_FIELDS): Decision {
  return {
    allowed: false,
    denial: { code: 403, reason: 'Forbidden', message },
    warnings: fields.warnings ?? NONE,
    patch: NONE,
    reports: fields.reports ?? NONE,
  };
}
