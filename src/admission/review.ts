import { Type, type Static, type TObject } from '@sinclair/typebox';
import { compileFirstErrorValidator, formatPath, schemaProblems, StringEnum, type DocPath, type Problem } from '../lib/schema.ts';
import { isRecord } from '../lib/json.ts';
import { BodyScanner, scanBody, type BodyScan, type OversizedObject } from './oversized.ts';
import { JsonInSteps } from './jsonInSteps.ts';
import { formatCount } from '../lib/format.ts';

/**
 * The AdmissionReview envelope (admission.k8s.io/v1, and v1beta1 which has the
 * same shape): https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/#request
 *
 * Only what podgate relies on is required; everything else passes through, so a
 * newer API server adding fields does not break us. `object` and `oldObject`
 * stay `unknown`: rules narrow them.
 */
const ADMISSION_VERSIONS = ['admission.k8s.io/v1', 'admission.k8s.io/v1beta1'] as const;
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
  // The kind as the client sent it, before matchPolicy: Equivalent converted it. Checked with the rest
  // of the envelope but not read: rules judge `kind`, the version the webhook registered for.
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

const isAdmissionReview = compileFirstErrorValidator(AdmissionReviewSchema);

export type ParsedReview =
  | { readonly ok: true; readonly review: AdmissionReview }
  | { readonly ok: false; readonly error: string };

/** A body read as podgate reads it: a review, and the object too large to walk if it has one. */
export type ReadReview =
  | { readonly ok: true; readonly review: AdmissionReview; readonly oversized: OversizedObject | undefined }
  | { readonly ok: false; readonly error: string };

/**
 * A request body, from text to a checked review: the scan (oversized.ts), JSON.parse,
 * the envelope. An object past the member limit inside `object` or `oldObject` is
 * passed on for the rules to report (a pod's author can put it there, and answering
 * 400 would let the API server admit the pod unjudged); anywhere else it is refused:
 * no API server sends a review whose own fields (userInfo.extra…) hold 10,000 keys, and
 * the envelope check would walk them.
 *
 * `parse` is JSON.parse; the bench passes a timed one, to tell podgate's work from the
 * parse any webhook pays.
 */
export function readAdmissionReview(text: string, parse: (text: string) => unknown = JSON.parse): ReadReview {
  return readScannedReview(text, scanBody(text), parse);
}

/**
 * Characters of a large body scanned (oversized.ts), or parsed (jsonInSteps.ts), per
 * event-loop turn: 5-30 ms each for the densest text (npm run bench, worst cases). The
 * server reads and judges a body no longer than this in one turn, as nearly every review
 * is (a few KiB); a larger one in several (readInTurns), so that no turn holds the event
 * loop for the scan, JSON.parse and the rules of an 8 MiB body at once (120-200 ms for
 * the densest, 40-80 ms of it one JSON.parse): other reviews and /healthz are answered
 * in between.
 */
export const BODY_STEP_CHARS = 1 << 19;

/**
 * A large body read as readAdmissionReview reads it, in event-loop turns of
 * BODY_STEP_CHARS each: the scan (BodyScanner) a step per turn, then JSON.parse's work
 * a step per turn (JsonInSteps). `turn` waits for the next one (the server: setImmediate;
 * tests count them; the bench times them).
 */
export async function readInTurns(text: string, turn: () => Promise<unknown>): Promise<ReadReview> {
  const scanner = new BodyScanner(text);
  let scan = scanner.step(BODY_STEP_CHARS);
  while (scan === undefined) {
    await turn();
    scan = scanner.step(BODY_STEP_CHARS);
  }
  const refused = refusedBeforeParsing(scan);
  if (refused !== undefined) return refused;
  const parser = new JsonInSteps(text);
  let body: unknown;
  try {
    let parsed: { readonly value: unknown } | undefined;
    while (parsed === undefined) {
      await turn();
      parsed = parser.step(BODY_STEP_CHARS);
    }
    body = parsed.value;
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error; // a fault of podgate's: a 500, not the client's 400
    return notJson(error);
  }
  return reviewOfBody(body, scan);
}

/** readAdmissionReview with the scan already done. */
function readScannedReview(text: string, scan: BodyScan, parse: (text: string) => unknown = JSON.parse): ReadReview {
  const refused = refusedBeforeParsing(scan);
  if (refused !== undefined) return refused;
  let body: unknown;
  try {
    body = parse(text);
  } catch (error) {
    return notJson(error);
  }
  return reviewOfBody(body, scan);
}

/** A body whose scan alone refuses it: nesting JSON.parse would pay for before anything is checked. */
function refusedBeforeParsing(scan: BodyScan): ReadReview | undefined {
  return scan.shape === 'tooDeep' ? { ok: false, error: `request body nests deeper than ${formatCount(scan.limit)} levels; an API server sends at most 10,000` } : undefined;
}

/** The 400 for a body JSON.parse (or JsonInSteps) refuses, with the parser's reason. */
function notJson(error: unknown): ReadReview {
  return { ok: false, error: `request body is not valid JSON: ${error instanceof Error ? error.message : String(error)}` };
}

/** The parsed body, checked: the envelope, and an oversized object only where the rules report it. */
function reviewOfBody(body: unknown, scan: BodyScan): ReadReview {
  const oversized = scan.shape === 'oversized' ? scan.object : undefined;
  if (oversized !== undefined && !inReviewedObject(oversized.path)) {
    return { ok: false, error: `not an AdmissionReview podgate can answer: ${formatPath(oversized.path)}${oversized.deeper ? '…' : ''} holds more than ${formatCount(oversized.limit)} entries` };
  }
  const parsed = parseAdmissionReview(body);
  return parsed.ok ? { ok: true, review: parsed.review, oversized } : parsed;
}

function inReviewedObject(path: DocPath): boolean {
  return path[0] === 'request' && (path[1] === 'object' || path[1] === 'oldObject');
}

/** How many problems a 400 names; the rest are counted. */
const PROBLEMS_SHOWN = 5;

/**
 * Checks that `body` is an AdmissionReview podgate can answer. The error names
 * the first few fields that are wrong, so whoever hand-crafts a review (or a
 * proxy that mangles one) sees what to fix.
 *
 * Every check stops at its first error, and there is one check per field of the
 * envelope: a review whose `userInfo.groups` holds 200,000 numbers costs one
 * error, not 200,000 (collecting them all ran the heap out).
 */
export function parseAdmissionReview(body: unknown): ParsedReview {
  if (isAdmissionReview(body)) return { ok: true, review: body };
  const problems = envelopeProblems(body);
  const shown = problems.slice(0, PROBLEMS_SHOWN).map((p) => `${formatPath(p.path)}: ${p.message}`);
  const more = problems.length > PROBLEMS_SHOWN ? `; and ${problems.length - PROBLEMS_SHOWN} more` : '';
  return { ok: false, error: `not an AdmissionReview podgate can answer: ${shown.join('; ')}${more}` };
}

type FieldCheck = { readonly key: string; readonly required: boolean; readonly check: (value: unknown, path: DocPath) => Problem[] };

/** One first-error check per property of `schema`, in schema order; `nested` ones are checked field by field again. */
function fieldChecks(schema: TObject, nested: Readonly<Record<string, readonly FieldCheck[]>> = {}): readonly FieldCheck[] {
  const required = new Set(schema.required ?? []);
  return Object.entries(schema.properties).map(([key, property]) => {
    const validate = compileFirstErrorValidator(property);
    const inner = nested[key];
    const check = (value: unknown, path: DocPath): Problem[] => {
      if (inner !== undefined && isRecord(value)) return objectProblems(inner, value, path);
      return validate(value) ? [] : schemaProblems(validate.errors, value, path);
    };
    return { key, required: required.has(key), check };
  });
}

function objectProblems(checks: readonly FieldCheck[], value: Readonly<Record<string, unknown>>, path: DocPath): Problem[] {
  const problems: Problem[] = [];
  for (const { key, required, check } of checks) {
    if (!Object.hasOwn(value, key) || value[key] === undefined) {
      if (required) problems.push({ path, message: `missing required field "${key}"` });
    } else problems.push(...check(value[key], [...path, key]));
  }
  return problems;
}

const REVIEW_CHECKS = fieldChecks(AdmissionReviewSchema, { request: fieldChecks(AdmissionRequestSchema) });

function envelopeProblems(body: unknown): Problem[] {
  if (!isRecord(body)) return schemaProblems(isAdmissionReview.errors, body);
  return objectProblems(REVIEW_CHECKS, body, []);
}

/**
 * The object a request is about. DELETE reviews carry it in `oldObject` only
 * (https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/#request).
 */
export function reviewedObject(request: AdmissionRequest): unknown {
  return request.operation === 'DELETE' ? request.oldObject : request.object;
}
