import { Type, type Static } from '@sinclair/typebox';
import { compileValidator, formatPath, schemaProblems, StringEnum } from '../config/ajv.ts';

/**
 * The AdmissionReview envelope (admission.k8s.io/v1, and v1beta1 which has the
 * same shape): https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/#request
 *
 * Only what podgate relies on is required; everything else passes through, so a
 * newer API server adding fields does not break us. `object` and `oldObject`
 * stay `unknown`: rules narrow them.
 */
export const ADMISSION_VERSIONS = ['admission.k8s.io/v1', 'admission.k8s.io/v1beta1'] as const;
export const OPERATIONS = ['CREATE', 'UPDATE', 'DELETE', 'CONNECT'] as const;

const GroupVersionKind = Type.Object({ group: Type.String(), version: Type.String(), kind: Type.String({ minLength: 1 }) });
const GroupVersionResource = Type.Object({ group: Type.String(), version: Type.String(), resource: Type.String({ minLength: 1 }) });

const UserInfo = Type.Object({
  username: Type.Optional(Type.String()),
  uid: Type.Optional(Type.String()),
  groups: Type.Optional(Type.Array(Type.String())),
  extra: Type.Optional(Type.Record(Type.String(), Type.Array(Type.String()))),
});

const AdmissionRequestSchema = Type.Object({
  uid: Type.String({ minLength: 1 }),
  kind: GroupVersionKind,
  resource: GroupVersionResource,
  subResource: Type.Optional(Type.String()),
  requestKind: Type.Optional(GroupVersionKind),
  name: Type.Optional(Type.String()),
  namespace: Type.Optional(Type.String()),
  operation: StringEnum(OPERATIONS),
  userInfo: UserInfo,
  object: Type.Optional(Type.Unknown()),
  oldObject: Type.Optional(Type.Unknown()),
  dryRun: Type.Optional(Type.Boolean()),
});

const AdmissionReviewSchema = Type.Object({
  apiVersion: StringEnum(ADMISSION_VERSIONS),
  kind: Type.Literal('AdmissionReview'),
  request: AdmissionRequestSchema,
});

export type AdmissionRequest = Static<typeof AdmissionRequestSchema>;
export type AdmissionReview = Static<typeof AdmissionReviewSchema>;
export type AdmissionVersion = (typeof ADMISSION_VERSIONS)[number];
export type Operation = (typeof OPERATIONS)[number];
export type UserInfo = Static<typeof UserInfo>;

const isAdmissionReview = compileValidator(AdmissionReviewSchema);

export type ParsedReview =
  | { readonly ok: true; readonly review: AdmissionReview }
  | { readonly ok: false; readonly error: string };

/**
 * Checks that `body` is an AdmissionReview podgate can answer. The error names
 * every field that is wrong, so whoever hand-crafts a review (or a proxy that
 * mangles one) sees what to fix.
 */
export function parseAdmissionReview(body: unknown): ParsedReview {
  if (isAdmissionReview(body)) return { ok: true, review: body };
  const problems = schemaProblems(isAdmissionReview.errors, body);
  const detail = problems.map((p) => `${formatPath(p.path)}: ${p.message}`).join('; ');
  return { ok: false, error: `not an AdmissionReview podgate can answer: ${detail}` };
}

/**
 * The object a request is about. DELETE reviews carry it in `oldObject` only
 * (https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/#request).
 */
export function reviewedObject(request: AdmissionRequest): unknown {
  return request.operation === 'DELETE' ? request.oldObject : request.object;
}
