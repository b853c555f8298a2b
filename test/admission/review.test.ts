import t from 'tap';
import { parseAdmissionReview, readAdmissionReview, reviewedObject } from '../../src/admission/review.ts';
import { NESTING_LIMIT, OBJECT_MEMBER_LIMIT } from '../../src/admission/oversized.ts';
import { admissionResponse } from '../../src/server/response.ts';
import { allowed, denied } from '../../src/engine/decision.ts';
import { makePod, makeRequest, makeReview } from '../helpers/builders.ts';

const good = makeReview(makeRequest(makePod()));

t.test('well-formed v1 and v1beta1 reviews parse', async (t) => {
  t.ok(parseAdmissionReview(good).ok);
  t.ok(parseAdmissionReview({ ...good, apiVersion: 'admission.k8s.io/v1beta1' }).ok);
  t.ok(parseAdmissionReview({ ...good, request: { ...good.request, futureField: { x: 1 } } }).ok, 'fields a newer API server adds pass through');
});

t.test('anything else gets an error that names what is wrong', async (t) => {
  const cases: [string, unknown, string][] = [
    ['not an object', 'hello', 'not an AdmissionReview podgate can answer: (top level): must be a map, found string "hello"'],
    ['null', null, 'not an AdmissionReview podgate can answer: (top level): must be a map, found null'],
    ['wrong kind', { ...good, kind: 'Pod' }, 'not an AdmissionReview podgate can answer: kind: must be "AdmissionReview", found "Pod"'],
    ['unknown version', { ...good, apiVersion: 'admission.k8s.io/v2' }, 'not an AdmissionReview podgate can answer: apiVersion: "admission.k8s.io/v2" is not one of: admission.k8s.io/v1, admission.k8s.io/v1beta1'],
    ['no request', { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }, 'not an AdmissionReview podgate can answer: (top level): missing required field "request"'],
    ['missing uid', { ...good, request: { ...good.request, uid: undefined } }, 'not an AdmissionReview podgate can answer: request: missing required field "uid"'],
    ['empty uid', { ...good, request: { ...good.request, uid: '' } }, 'not an AdmissionReview podgate can answer: request.uid: must not be empty'],
    ['uid of the wrong type', { ...good, request: { ...good.request, uid: 42 } }, 'not an AdmissionReview podgate can answer: request.uid: must be a string, found number'],
    ['unknown operation', { ...good, request: { ...good.request, operation: 'PATCH' } }, 'not an AdmissionReview podgate can answer: request.operation: "PATCH" is not one of: CREATE, UPDATE, DELETE, CONNECT'],
    ['groups not strings', { ...good, request: { ...good.request, userInfo: { groups: [1] } } }, 'not an AdmissionReview podgate can answer: request.userInfo.groups[0]: must be a string, found number'],
  ];
  for (const [name, body, error] of cases) {
    const parsed = parseAdmissionReview(JSON.parse(JSON.stringify(body)) as unknown);
    t.same(parsed, { ok: false, error }, name);
  }
});

t.test('hostile envelopes cost one error per field, and the error stays short', async (t) => {
  const groups = Array.from({ length: 200_000 }, (_, i) => ({ i }));
  const flooded = parseAdmissionReview({ ...good, request: { ...good.request, userInfo: { username: 'x', groups } } });
  t.same(flooded, { ok: false, error: 'not an AdmissionReview podgate can answer: request.userInfo.groups[0]: must be a string, found object' });

  const longKind = 'K'.repeat(100_000);
  const long = parseAdmissionReview({ ...good, kind: longKind });
  t.ok(!long.ok && long.error.length < 300, 'a 100,000-character value is quoted cut short');
  t.match(long.ok ? '' : long.error, /kind: must be "AdmissionReview", found "K{60}"… \(100000 characters\)$/);

  const everythingWrong = parseAdmissionReview({ apiVersion: 1, kind: 2, request: { uid: 3, kind: 4, resource: 5, operation: 6, userInfo: 7, name: 8, namespace: 9 } });
  t.same(everythingWrong, {
    ok: false,
    error:
      'not an AdmissionReview podgate can answer: apiVersion: must be a string, found number; kind: must be a string, found number; ' +
      'request.uid: must be a string, found number; request.kind: must be a map, found number; request.resource: must be a map, found number; and 4 more',
  });
});

t.test('a body is read as text: scanned, parsed, checked; an oversized map in the object is passed on, anywhere else refused', async (t) => {
  const many = Object.fromEntries(Array.from({ length: OBJECT_MEMBER_LIMIT + 1 }, (_, i) => [`k${i}`, 'v']));
  t.same(readAdmissionReview(JSON.stringify(good)), { ok: true, review: good, oversized: undefined });

  const pod = makePod();
  (pod['metadata'] as Record<string, unknown>)['annotations'] = many;
  const read = readAdmissionReview(JSON.stringify(makeReview(makeRequest(pod))));
  t.equal(read.ok, true, 'the object is the rules to judge (a 400 would let the API server admit it unjudged)');
  t.same(read.ok ? read.oversized : undefined, { path: ['request', 'object', 'metadata', 'annotations'], deeper: false, limit: OBJECT_MEMBER_LIMIT });
  const stored = readAdmissionReview(JSON.stringify(makeReview(makeRequest(makePod(), { operation: 'UPDATE', oldObject: pod }))));
  t.same(stored.ok ? stored.oversized?.path : undefined, ['request', 'oldObject', 'metadata', 'annotations']);

  const extra = readAdmissionReview(JSON.stringify({ ...good, request: { ...good.request, userInfo: { username: 'x', extra: many } } }));
  t.same(extra, { ok: false, error: `not an AdmissionReview podgate can answer: request.userInfo.extra holds more than 10,000 entries` });

  const deep = `{"pad":"${'x'.repeat(OBJECT_MEMBER_LIMIT * 5)}","a":${'['.repeat(NESTING_LIMIT)}${']'.repeat(NESTING_LIMIT)}}`;
  t.same(readAdmissionReview(deep), { ok: false, error: `request body nests deeper than 10,010 levels; an API server sends at most 10,000` });
  t.match(readAdmissionReview('{"apiVersion": '), { ok: false, error: /^request body is not valid JSON: / });
  t.match(readAdmissionReview('{"kind": 1}'), { ok: false, error: /^not an AdmissionReview podgate can answer: / });
});

t.test('DELETE reviews carry the object in oldObject', async (t) => {
  const pod = makePod({ name: 'gone' });
  t.equal(reviewedObject(makeRequest(pod, { operation: 'DELETE' })), pod);
  t.equal(reviewedObject(makeRequest(pod)), pod);
});

t.test('the response: uid copied, status only on denial, patchType only with a patch', async (t) => {
  t.same(admissionResponse('admission.k8s.io/v1', 'u1', allowed()), { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: 'u1', allowed: true } });
  const withPatch = admissionResponse('admission.k8s.io/v1beta1', 'u2', allowed({ patch: [{ op: 'add', path: '/a', value: 1 }], warnings: ['careful'] }));
  t.same(withPatch, {
    apiVersion: 'admission.k8s.io/v1beta1',
    kind: 'AdmissionReview',
    response: { uid: 'u2', allowed: true, warnings: ['careful'], patchType: 'JSONPatch', patch: Buffer.from('[{"op":"add","path":"/a","value":1}]').toString('base64') },
  });
  t.same(admissionResponse('admission.k8s.io/v1', 'u3', denied('no')).response, { uid: 'u3', allowed: false, status: { code: 403, reason: 'Forbidden', message: 'no' } });
});
