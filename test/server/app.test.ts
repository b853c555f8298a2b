import t from 'tap';
import { Agent } from 'node:https';
import { connect, createServer as createTlsServer } from 'node:tls';
import { readFile } from 'node:fs/promises';
import { admissionResponseOf, applyResponsePatch, call, startServer, testCertificates } from '../helpers/https.ts';
import { fakePolicy } from '../helpers/fake-rules.ts';
import { makePod, makeRequest, makeReview } from '../helpers/builders.ts';
import { compilePolicy } from '../../src/policy/registry.ts';
import { readPolicyFile } from '../../src/config/load.ts';
import { DEFAULT_POLICY_PATH } from '../../src/cli/serve.ts';
import { buildApp } from '../../src/server/app.ts';
import { BODY_STEP_CHARS, readAdmissionReview, readInTurns } from '../../src/admission/review.ts';
import { OBJECT_MEMBER_LIMIT } from '../../src/admission/oversized.ts';
import { EMPTY_CLUSTER } from '../../src/policy/cluster.ts';
import { pino } from 'pino';

const policy = fakePolicy({
  exclude: { namespaces: ['kube-system'] },
  rules: [
    { name: 'environment', kind: 'addLabel', key: 'podgate.io/environment', value: 'production' },
    { name: 'needs-team', kind: 'requireLabel', key: 'team', match: { namespaces: ['strict'] } },
    { name: 'wants-owner', kind: 'requireLabel', key: 'owner', action: 'warn', match: { namespaces: ['strict', 'airflow'] } },
  ],
});

t.test('over HTTPS with certificate verification, as the kube-apiserver calls', async (t) => {
  const server = await startServer(policy);
  t.teardown(() => server.close());

  await t.test('mutate: a KPO pod without labels gets exactly the label, with a patch that applies', async (t) => {
    const pod = makePod({ name: 'export-action-log-4devg7t1', namespace: 'airflow' });
    const review = makeReview(makeRequest(pod));
    const response = admissionResponseOf(await call(`${server.url}/mutate`, { ca: server.ca, body: JSON.stringify(review) }), review);
    t.equal(response.allowed, true);
    t.equal(response.patchType, 'JSONPatch');
    const patched = applyResponsePatch(pod, response);
    t.same(patched.metadata, { namespace: 'airflow', name: 'export-action-log-4devg7t1', labels: { 'podgate.io/environment': 'production' } });
    t.same(response.warnings, ['Pod airflow/export-action-log-4devg7t1: label owner is missing (rule wants-owner). Add the label owner.']);
    const again = makeReview(makeRequest(patched));
    const second = admissionResponseOf(await call(`${server.url}/mutate`, { ca: server.ca, body: JSON.stringify(again) }), again);
    t.equal(second.patch, undefined, 'reinvocation: no patch');
    t.equal(second.patchType, undefined);
  });

  await t.test('validate: a denial carries code, reason and message; never a patch', async (t) => {
    const pod = makePod({ name: 'p', namespace: 'strict', labels: { owner: 'me' } });
    const review = makeReview(makeRequest(pod));
    const response = admissionResponseOf(await call(`${server.url}/validate`, { ca: server.ca, body: JSON.stringify(review) }), review);
    t.same(response, {
      uid: review.request.uid,
      allowed: false,
      status: { code: 403, reason: 'Forbidden', message: 'Pod strict/p: label team is missing (rule needs-team). Add the label team.' },
    });
  });

  await t.test('a body of several scan steps (read over several event-loop turns) is judged as a small one is', async (t) => {
    // Dense text (many short keys), so the scan's loop runs over all of it: about 3 MiB.
    const big = Array.from({ length: 120_000 }, (_, i) => ({ [`c${i}`]: { a: 'b' } }));
    const denied = makePod({ name: 'p', namespace: 'strict', labels: { owner: 'me' }, spec: { containers: [{ name: 'c', image: 'i' }], extraField: big } });
    const deniedReview = makeReview(makeRequest(denied));
    const body = JSON.stringify(deniedReview);
    t.ok(body.length > 2 * BODY_STEP_CHARS, `${body.length} characters, over two scan steps`);
    const response = admissionResponseOf(await call(`${server.url}/validate`, { ca: server.ca, body }), deniedReview);
    t.same(response.status, { code: 403, reason: 'Forbidden', message: 'Pod strict/p: label team is missing (rule needs-team). Add the label team.' });

    const kpo = makePod({ name: 'export-action-log-4devg7t1', namespace: 'airflow', labels: { owner: 'me' }, spec: { containers: [{ name: 'c', image: 'i' }], extraField: big } });
    const mutateReview = makeReview(makeRequest(kpo));
    const mutated = admissionResponseOf(await call(`${server.url}/mutate`, { ca: server.ca, body: JSON.stringify(mutateReview) }), mutateReview);
    t.same((applyResponsePatch(kpo, mutated)['metadata'] as { labels?: unknown }).labels, { owner: 'me', 'podgate.io/environment': 'production' }, 'the patch applies');

    const notJson = await call(`${server.url}/validate`, { ca: server.ca, body: `${body.slice(0, -2)}]` });
    t.equal(notJson.status, 400);
    t.match(notJson.body, { error: /^request body is not valid JSON/ });
  });

  await t.test('v1beta1 is answered in v1beta1', async (t) => {
    const review = makeReview(makeRequest(makePod({ namespace: 'kube-system' })), 'admission.k8s.io/v1beta1');
    const response = admissionResponseOf(await call(`${server.url}/mutate`, { ca: server.ca, body: JSON.stringify(review) }), review);
    t.same(response, { uid: review.request.uid, allowed: true }, 'globally excluded namespace: allowed, untouched');
  });

  await t.test('an object kind no rule handles is allowed unchanged', async (t) => {
    const review = makeReview(makeRequest({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', namespace: 'strict' } }));
    const response = admissionResponseOf(await call(`${server.url}/validate`, { ca: server.ca, body: JSON.stringify(review) }), review);
    t.same(response, { uid: review.request.uid, allowed: true });
  });

  await t.test('bad input: 400 with a JSON error that says what is wrong', async (t) => {
    const cases: [string, string, RegExp][] = [
      ['malformed JSON', '{"apiVersion": ', /^request body is not valid JSON: /],
      ['not an AdmissionReview', '{"hello": "world"}', /^not an AdmissionReview podgate can answer: \(top level\): missing required field "apiVersion"/],
      ['missing uid', JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { ...makeRequest(makePod()), uid: undefined } }), /request: missing required field "uid"/],
      ['wrong types', JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { ...makeRequest(makePod()), operation: 7 } }), /request\.operation: must be a string, found number/],
      ['an array', '[]', /\(top level\): must be a map, found array/],
      ['proto keys', '{"__proto__": {"allowed": true}, "apiVersion": "admission.k8s.io/v1"}', /missing required field/],
    ];
    for (const [name, body, error] of cases) {
      const res = await call(`${server.url}/validate`, { ca: server.ca, body });
      t.equal(res.status, 400, name);
      t.match((res.body as { error: string }).error, error, name);
    }
  });

  await t.test('a body without content-type JSON (curl -d) is still read as JSON', async (t) => {
    const review = makeReview(makeRequest(makePod({ namespace: 'airflow', labels: { owner: 'x' } })));
    const res = await call(`${server.url}/validate`, { ca: server.ca, body: JSON.stringify(review), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    t.equal(admissionResponseOf(res, review).allowed, true);
  });

  await t.test('an UPDATE carrying two 1.5 MB objects is admitted; a body over the limit is 413', async (t) => {
    const big = (name: string) => makePod({ name, namespace: 'airflow', labels: { owner: 'x' }, spec: { containers: [{ name: 'c', image: 'i', env: [{ name: 'BLOB', value: 'x'.repeat(1_500_000) }] }] } });
    const review = makeReview(makeRequest(big('large'), { operation: 'UPDATE', oldObject: big('large') }));
    const body = JSON.stringify(review);
    t.ok(body.length > 3_000_000);
    t.equal(admissionResponseOf(await call(`${server.url}/validate`, { ca: server.ca, body }), review).allowed, true);
    const huge = await call(`${server.url}/validate`, { ca: server.ca, body: `{"pad":"${'x'.repeat(9 * 1024 * 1024)}"}` });
    t.equal(huge.status, 413);
    t.same(huge.body, { error: `request body exceeds ${8 * 1024 * 1024} bytes` });
  });

  await t.test('health, readiness and unknown routes', async (t) => {
    t.same((await call(`${server.url}/healthz`, { ca: server.ca })).body, { status: 'ok' });
    const ready = await call(`${server.url}/readyz`, { ca: server.ca });
    t.equal(ready.status, 200);
    t.same(ready.body, { ready: true, checks: { policy: { ok: true } } }, 'the webhook port says which checks pass, not their details');
    const detailed = await call(`${server.opsUrl}/readyz`, { ca: server.ca });
    t.same(detailed.body, { ready: true, checks: { policy: { ok: true, detail: 'test policy' } } }, 'the operations port gives the details');
    t.equal((await call(`${server.url}/metrics`, { ca: server.ca })).status, 404, 'no metrics on the webhook port');
    t.equal((await call(`${server.opsUrl}/metrics`, { ca: server.ca })).status, 200, 'metrics on the operations port');
    const missing = await call(`${server.url}/nope`, { ca: server.ca });
    t.equal(missing.status, 404);
    t.match((missing.body as { error: string }).error, /podgate serves POST \/mutate, POST \/validate/);
  });

  await t.test('no policy loaded: 503 on review, not ready', async (t) => {
    server.setPolicy(undefined);
    t.teardown(() => { server.setPolicy(policy); });
    const review = makeReview(makeRequest(makePod()));
    const res = await call(`${server.url}/validate`, { ca: server.ca, body: JSON.stringify(review) });
    t.equal(res.status, 503);
    t.equal((await call(`${server.url}/readyz`, { ca: server.ca })).status, 503);
  });

  await t.test('keep-alive: many reviews over one connection, each answered with its own uid', async (t) => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    t.teardown(() => { agent.destroy(); });
    for (let i = 0; i < 20; i += 1) {
      const review = makeReview(makeRequest(makePod({ name: `p-${i}`, namespace: 'airflow', labels: { owner: 'x' } })));
      t.equal(admissionResponseOf(await call(`${server.url}/validate`, { ca: server.ca, body: JSON.stringify(review), agent }), review).allowed, true);
    }
  });

  await t.test('TLS 1.1 and older are refused', async (t) => {
    // A client that can speak TLS 1.1 (Node's defaults alone would refuse it on their own side, so the test could not fail).
    const legacy = { ca: server.ca, servername: 'localhost', maxVersion: 'TLSv1.1', minVersion: 'TLSv1', ciphers: 'DEFAULT@SECLEVEL=0' } as const;
    const handshake = (port: number) =>
      new Promise<string>((resolve) => {
        const socket = connect({ host: '127.0.0.1', port, ...legacy });
        socket.on('secureConnect', () => {
          resolve(`connected with ${socket.getProtocol() ?? '?'}`);
          socket.destroy();
        });
        socket.on('error', (error: NodeJS.ErrnoException) => { resolve(error.code ?? error.message); });
      });
    // The control: a server that allows TLS 1.1 accepts this client.
    const certificates = await testCertificates();
    const permissive = createTlsServer({ key: certificates.key, cert: certificates.cert, minVersion: 'TLSv1', ciphers: 'DEFAULT@SECLEVEL=0' }, (socket) => socket.end());
    await new Promise<void>((resolve) => permissive.listen(0, '127.0.0.1', resolve));
    t.teardown(() => permissive.close());
    const address = permissive.address();
    t.equal(await handshake(typeof address === 'object' && address ? address.port : 0), 'connected with TLSv1.1', 'the client can speak TLS 1.1');
    t.equal(await handshake(Number(new URL(server.url).port)), 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION', 'podgate refuses it: protocol version');
  });
});

t.test('the README example: the sample policy denies the too-small api-server Deployment', async (t) => {
  const sample = await readPolicyFile(DEFAULT_POLICY_PATH, compilePolicy);
  if (!sample.ok) throw new Error(sample.errors.join('\n'));
  const server = await startServer(sample.policy);
  t.teardown(() => server.close());
  const text = await readFile(new URL('../../examples/api-server-too-small.json', import.meta.url), 'utf8');
  const review = JSON.parse(text) as { apiVersion: string; request: { uid: string } };
  const response = admissionResponseOf(await call(`${server.url}/validate`, { ca: server.ca, body: text }), review);
  t.equal(response.allowed, false);
  t.equal(
    response.status?.message,
    'Deployment airflow/airflow-api-server: container "api-server" requests.cpu 500m is below the floor 1; ' +
      'container "api-server" requests.memory 1Gi is below the floor 4Gi; container "api-server" limits.memory 1Gi is below the floor 4Gi (rule api-server-floors). ' +
      "Airflow's API server crash-loops under tight limits; raise apiServer.resources.requests.cpu, apiServer.resources.requests.memory and apiServer.resources.limits.memory in your Helm values.",
  );
});

t.test("a fault inside podgate answers 500 without details and is logged at error, with the base fields, by podgate's logger", async (t) => {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ base: { service: 'podgate' } }, { write: (line: string) => { lines.push(JSON.parse(line) as Record<string, unknown>); } });
  const app = buildApp({
    logger,
    policy: () => { throw new Error('the policy store broke'); },
    cluster: () => EMPTY_CLUSTER,
    readiness: () => ({ ready: true, checks: {} }),
  });
  t.teardown(() => app.close());
  const review = makeReview(makeRequest(makePod({ name: 'p', namespace: 'airflow' })));
  const first = await app.inject({ method: 'POST', url: '/validate', payload: review });
  const second = await app.inject({ method: 'POST', url: '/validate', payload: review });
  t.equal(first.statusCode, 500);
  t.same(first.json(), { error: 'internal error; see the podgate logs' }, 'nothing of the fault reaches the client');
  t.equal(second.statusCode, 500, 'and the next request is served the same way');
  t.equal(lines.length, 2);
  t.match(lines[0], { level: 50, service: 'podgate', url: '/validate', msg: 'request failed', err: { message: 'the policy store broke' } });
});

t.test('a rule that throws is logged at error; an uneventful admission at debug', async (t) => {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => { lines.push(JSON.parse(line) as Record<string, unknown>); } });
  const throwing = fakePolicy({ rules: [{ name: 'broken', kind: 'alwaysThrows', failurePolicy: 'ignore', match: { namespaces: ['broken'] } }] });
  const app = buildApp({ logger, policy: () => throwing, cluster: () => EMPTY_CLUSTER, readiness: () => ({ ready: true, checks: {} }) });
  t.teardown(() => app.close());
  await app.inject({ method: 'POST', url: '/validate', payload: makeReview(makeRequest(makePod({ name: 'p', namespace: 'broken' }))) });
  await app.inject({ method: 'POST', url: '/validate', payload: makeReview(makeRequest(makePod({ name: 'q', namespace: 'quiet' }))) });
  t.match(lines, [{ level: 50, name: 'p', allowed: true, rules: [{ rule: 'broken', status: 'error' }] }, { level: 20, name: 'q', allowed: true, rules: [] }]);
});

t.test('a large body is read in turns: a scan step per turn, then a parse step per turn, the same reading as in one go', async (t) => {
  const entries = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, 'v']));
  const filler = Array.from({ length: 60_000 }, (_, i) => ({ [`x${i}`]: entries(3) }));
  const dense = JSON.stringify(makeReview(makeRequest(makePod({ spec: { containers: [{ name: 'c', image: 'i' }], filler } }))));
  const annotated = makePod({ spec: { filler } });
  (annotated['metadata'] as Record<string, unknown>)['annotations'] = entries(OBJECT_MEMBER_LIMIT + 1);
  const oversized = JSON.stringify(makeReview(makeRequest(annotated)));
  const cases = [
    { name: 'dense', text: dense, shape: 'a review' },
    { name: 'oversized annotations', text: oversized, shape: 'a review with its oversized object' },
  ];
  for (const { name, text, shape } of cases) {
    let turns = 0;
    const read = await readInTurns(text, async () => { turns += 1; });
    t.same(read, readAdmissionReview(text), `${name}: read as in one go (${shape})`);
    const steps = Math.ceil(text.length / BODY_STEP_CHARS);
    t.ok(steps >= 3 && turns === 2 * steps - 1, `${name}: ${text.length} characters, ${turns} turns given up: one after each of the ${steps} scan steps but the last, and one before each of the ${steps} parse steps`);
  }
  for (const broken of [dense.slice(0, -1), `${dense.slice(0, 700_000)},,${dense.slice(700_000)}`]) {
    const read = await readInTurns(broken, async () => {});
    t.match(read, { ok: false, error: /^request body is not valid JSON: / }, 'a large body that is not JSON: the 400 JSON.parse would give');
    t.equal(readAdmissionReview(broken).ok, false);
  }
  const found = readAdmissionReview(oversized);
  t.same(found.ok ? found.oversized?.path : found.error, ['request', 'object', 'metadata', 'annotations'], 'the oversized case is found oversized');

  let turns = 0;
  const deep = `${'['.repeat(1_200_000)}${']'.repeat(1_200_000)}`;
  t.same(await readInTurns(deep, async () => { turns += 1; }), readAdmissionReview(deep), 'too deep: the same 400');
  t.equal(turns, 0, 'too deep: refused in the first scan step, and never parsed');
});

t.test('the server gives the event loop up between the steps of a large body, and not for a small one', async (t) => {
  // Turns that ran between the handler's start and the moment it asked for the policy (which it does once the body is parsed).
  let turns = 0;
  let counting = false;
  const seen: number[] = [];
  const app = buildApp({
    logger: pino({ level: 'silent' }),
    policy: () => {
      seen.push(turns);
      counting = false;
      return policy;
    },
    cluster: () => EMPTY_CLUSTER,
    readiness: () => ({ ready: true, checks: {} }),
  });
  const count = () => {
    if (!counting) return;
    turns += 1;
    setImmediate(count);
  };
  app.addHook('preHandler', (_request, _reply, done) => {
    turns = 0;
    counting = true;
    setImmediate(count);
    done();
  });
  t.teardown(() => app.close());
  const small = makeReview(makeRequest(makePod({ name: 'p', namespace: 'strict' })));
  const large = makeReview(makeRequest(makePod({ name: 'p', namespace: 'strict', spec: { filler: Array.from({ length: 200_000 }, (_, i) => ({ [`c${i}`]: { a: 'b' } })) } })));
  const largeBody = JSON.stringify(large);
  const answers = [await app.inject({ method: 'POST', url: '/validate', payload: small }), await app.inject({ method: 'POST', url: '/validate', payload: largeBody, headers: { 'content-type': 'application/json' } })];
  t.same(answers.map((answer) => answer.json<{ response: { status: { message: string } } }>().response.status.message), Array(2).fill('Pod strict/p: label team is missing (rule needs-team). Add the label team.'));
  t.equal(seen[0], 0, 'a small body: read and judged in the turn it arrived in');
  const steps = Math.ceil(largeBody.length / BODY_STEP_CHARS);
  t.ok(steps >= 3 && (seen[1] ?? 0) >= 2 * steps, `a ${largeBody.length}-character body: ${seen[1]} turns ran before it was judged (${steps - 1} between scan steps, ${steps} before parse steps, then the rules)`);
});

t.test('over HTTPS, a large body gives its bytes back once answered, judged or failed (500)', async (t) => {
  let broken = true;
  const server = await startServer(policy, {
    policy: () => {
      if (broken) throw new Error('the policy store broke');
      return policy;
    },
    maxInflightBytes: 4 * BODY_STEP_CHARS,
  });
  t.teardown(() => server.close());
  const body = JSON.stringify(makeReview(makeRequest(makePod({ name: 'p', namespace: 'strict', spec: { filler: Array.from({ length: 65_000 }, (_, i) => ({ [`c${i}`]: { a: 'b' } })) } }))));
  t.ok(body.length > 2 * BODY_STEP_CHARS && body.length < 4 * BODY_STEP_CHARS, 'over two scan steps; two would not fit the in-flight budget at once');
  // In a row: each fits the in-flight budget only if the one before gave its bytes back (else 503).
  const answers: unknown[] = [];
  for (let i = 0; i < 5; i += 1) {
    broken = i < 2;
    const answer = await call(`${server.url}/validate`, { ca: server.ca, body });
    answers.push(answer.status === 200 ? (answer.body as { response: { status: { code: number } } }).response.status.code : answer.status);
  }
  t.same(answers, [500, 500, 403, 403, 403], 'two failed, then three judged (denied: no team label), none shed');
});
