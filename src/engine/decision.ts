import type { PatchOp } from '../lib/patch.ts';
import type { Action, FindingCounter } from '../policy/rule.ts';

/** How one rule ended for one request; logged and counted, never shown to the client as is. */
export interface RuleReport {
  readonly rule: string;
  readonly kind: string;
  readonly action: Action;
  readonly status: 'pass' | 'fail' | 'error';
  readonly patched: boolean;
  /** The worded finding or error, for audit logs. */
  readonly message?: string;
  /** The named check that found it, when its severity is its own (see Check). */
  readonly check?: string;
  /** What the finding counts in the metrics, if anything. */
  readonly counter?: FindingCounter;
}

/** Why a review was refused: 403 Forbidden, as the API server and controller-runtime word a policy denial. */
export interface Denial {
  readonly code: 403;
  readonly reason: 'Forbidden';
  readonly message: string;
}

interface Outcome {
  /** Said to the client whatever the outcome (kubectl prints them). */
  readonly warnings: readonly string[];
  /** How each rule that judged ended, for logs and metrics. */
  readonly reports: readonly RuleReport[];
}

/** Admitted, with the JSON Patch to apply (empty when nothing changes; always empty from the validating webhook). */
export interface Admitted extends Outcome {
  readonly allowed: true;
  readonly patch: readonly PatchOp[];
  readonly denial?: undefined;
}

/** Refused: a denied review is never patched. */
export interface Denied extends Outcome {
  readonly allowed: false;
  readonly denial: Denial;
  readonly patch: readonly [];
}

/**
 * The answer to one admission request, before it is put on the wire. `allowed` tells
 * the two apart, so a denial is there exactly when the review is refused.
 *
 * What is not here: a review podgate cannot judge (a malformed envelope, no policy
 * loaded) is answered with an HTTP error by the server, not with an AdmissionReview.
 * controller-runtime answers those `Errored`, an AdmissionReview with allowed false,
 * which the API server enforces as a denial; podgate's webhooks fail open, and an HTTP
 * error is what lets their failurePolicy decide.
 */
export type Decision = Admitted | Denied;

/** Shared by every decision that has none of something (frozen, so no caller can fill it for the others). */
const NONE: readonly [] = Object.freeze<[]>([]);
const NO_FIELDS = {};

export function allowed(fields: Partial<Pick<Admitted, 'warnings' | 'patch' | 'reports'>> = NO_FIELDS): Admitted {
  return { allowed: true, warnings: fields.warnings ?? NONE, patch: fields.patch ?? NONE, reports: fields.reports ?? NONE };
}

export function denied(message: string, fields: Partial<Pick<Denied, 'warnings' | 'reports'>> = NO_FIELDS): Denied {
  return { allowed: false, denial: { code: 403, reason: 'Forbidden', message }, warnings: fields.warnings ?? NONE, patch: NONE, reports: fields.reports ?? NONE };
}
