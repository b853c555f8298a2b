import type { AdmissionVersion } from '../admission/review.ts';
import type { Decision } from '../engine/decision.ts';

/** The wire form of an AdmissionReview response (same shape in v1 and v1beta1). */
export interface AdmissionReviewResponse {
  readonly apiVersion: AdmissionVersion;
  readonly kind: 'AdmissionReview';
  readonly response: {
    readonly uid: string;
    readonly allowed: boolean;
    readonly status?: { readonly code: number; readonly reason: string; readonly message: string };
    readonly warnings?: readonly string[];
    readonly patchType?: 'JSONPatch';
    readonly patch?: string;
  };
}

/**
 * The one place a decision becomes an answer: answered in the version asked,
 * the request's uid copied, `status` only on denial, `warnings` only when there
 * are some, and `patchType` + base64 `patch` only when there are operations.
 */
export function admissionResponse(apiVersion: AdmissionVersion, uid: string, decision: Decision): AdmissionReviewResponse {
  // Built field by field rather than with conditional spreads: this runs for every review.
  const response: Mutable<AdmissionReviewResponse['response']> = { uid, allowed: decision.allowed };
  if (!decision.allowed) response.status = decision.denial;
  if (decision.warnings.length > 0) response.warnings = decision.warnings;
  if (decision.patch.length > 0) {
    response.patchType = 'JSONPatch';
    response.patch = Buffer.from(JSON.stringify(decision.patch)).toString('base64');
  }
  return { apiVersion, kind: 'AdmissionReview', response };
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
