import type { AdmissionVersion } from './review.ts';
import type { Decision } from './decision.ts';

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
  return {
    apiVersion,
    kind: 'AdmissionReview',
    response: {
      uid,
      allowed: decision.allowed,
      ...(decision.denial ? { status: decision.denial } : {}),
      ...(decision.warnings.length > 0 ? { warnings: decision.warnings } : {}),
      ...(decision.allowed && decision.patch.length > 0
        ? { patchType: 'JSONPatch' as const, patch: Buffer.from(JSON.stringify(decision.patch)).toString('base64') }
        : {}),
    },
  };
}
