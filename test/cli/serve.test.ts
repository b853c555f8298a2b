import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { connect } from 'node:tls';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { call } from '../helpers/https.ts';
import { waitFor } from '../helpers/wait.ts';
import { runCommand, startProcess } from '../helpers/process.ts';
import { makePod, makeRequest, makeReview } from '../helpers/builders.ts';
import { certificateProblem } from '../../src/certs/generate.ts';

const example = new URL('../../examples/api-server-too-small.json', import.meta.url);

t.test('first start on the embedded defaults: certificates generated, sample policy, answers the README example', async (t) => {
  const cwd = t.testdir();
  const server = await startProcess([], cwd);
  const ca = await readFile(join(cwd, 'certs', 'ca.crt'), 'utf8');
  const generated = server.lines.find((line) => line['generated'] === true);
  t.match(generated, { caPath: 'certs/ca.crt', certificateHosts: ['localhost', '127.0.0.1', '::1'], msg: /valid for localhost, 127\.0\.0\.1, ::1 only; add --cert-host <name> for others/ });
  t.equal(generated?.['caBundle'], Buffer.from(ca).toString('base64'), 'the caBundle, in a field of its own, is the CA in base64');
  t.notMatch(String(generated?.['msg']), /LS0t/, 'and not inside the message');
  t.equal(certificateProblem({ caCert: ca, cert: await readFile(join(cwd, 'certs', 'tls.crt'), 'utf8') }, ['localhost', '127.0.0.1']), undefined);

  const uneventful = makeReview(makeRequest(makePod({ name: 'quiet', namespace: 'default' })));
  t.match((await call(`https://localhost:${server.port}/validate`, { ca, body: JSON.stringify(uneventful) })).body, { response: { allowed: true } });
  const body = await readFile(example, 'utf8');
  const res = await call(`https://localhost:${server.port}/validate`, { ca, body });
  t.equal(res.status, 200);
  t.match(res.body, { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: '6f2c4a8e-2b1d-4a3e-9a8f-0c5d7e1b2a39', allowed: false, status: { code: 403 } } });
  await waitFor('the decision log line', () => server.lines.some((line) => line['msg'] === 'denied'));
  const decision = server.lines.find((line) => line['msg'] === 'denied');
  t.match(decision, {
    uid: '6f2c4a8e-2b1d-4a3e-9a8f-0c5d7e1b2a39',
    webhook: 'validate',
    operation: 'CREATE',
    kind: 'Deployment',
    namespace: 'airflow',
    name: 'airflow-api-server',
    user: 'system:serviceaccount:ci:helm-deployer',
    allowed: false,
    rules: [{ rule: 'api-server-floors', status: 'fail', action: 'deny' }],
  });
  t.type(decision?.['latencyMs'], 'number');
  t.equal(decision?.['level'], 30, 'a denial is logged at info');
  t.notOk(server.lines.some((line) => line['uid'] === uneventful.request.uid), 'an admission with nothing to report is not logged at info (written before the denial, so it would be there)');
  t.notMatch(JSON.stringify(server.lines), /apache\/airflow:3\.1\.3|exec airflow api-server/, 'the object itself is never logged');

  server.child.kill('SIGTERM');
  t.same(await server.exited, { code: 0, signal: null });

  const again = await startProcess([], cwd);
  t.match(again.lines.find((line) => 'generated' in line), { generated: false, msg: /^reusing a self-signed CA/ });
  t.equal(new X509Certificate(await readFile(join(cwd, 'certs', 'ca.crt'), 'utf8')).fingerprint256, new X509Certificate(ca).fingerprint256, 'same CA on the next start');
  again.child.kill('SIGTERM');
  t.same(await again.exited, { code: 0, signal: null });
});

t.test('LOG_LEVEL=debug also logs the admissions with nothing to report, at debug', async (t) => {
  const cwd = t.testdir();
  const server = await startProcess([], cwd, { LOG_LEVEL: 'debug' });
  t.teardown(() => server.child.kill('SIGTERM'));
  const ca = await readFile(join(cwd, 'certs', 'ca.crt'), 'utf8');
  const review = makeReview(makeRequest(makePod({ name: 'quiet', namespace: 'default' })));
  t.match((await call(`https://localhost:${server.port}/validate`, { ca, body: JSON.stringify(review) })).body, { response: { allowed: true } });
  await waitFor('the decision log line', () => server.lines.some((line) => line['uid'] === review.request.uid));
  t.match(
    server.lines.find((line) => line['uid'] === review.request.uid),
    { level: 20, msg: 'admitted', webhook: 'validate', kind: 'Pod', namespace: 'default', name: 'quiet', allowed: true, rules: [] },
  );
});

t.test('SIGTERM: a request in flight is answered, then the process exits 0', async (t) => {
  const cwd = t.testdir();
  const server = await startProcess([], cwd);
  const ca = await readFile(join(cwd, 'certs', 'ca.crt'), 'utf8');
  const review = makeReview(makeRequest(makePod({ name: 'in-flight' })));
  const body = Buffer.from(JSON.stringify(review));

  const socket = connect({ host: '127.0.0.1', port: server.port, ca, servername: 'localhost' });
  await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
  let answer = '';
  socket.on('data', (chunk: Buffer) => (answer += chunk.toString('utf8')));
  const closed = new Promise<void>((resolve) => socket.on('close', () => { resolve(); }));
  // Half a request: headers and part of the body. The server is now in the middle of it.
  socket.write(`POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
  socket.write(body.subarray(0, 100));
  await new Promise((resolve) => setTimeout(resolve, 200));

  server.child.kill('SIGTERM');
  await new Promise((resolve) => setTimeout(resolve, 300));
  t.equal(server.child.exitCode, null, 'still running while the request is in flight');
  socket.end(body.subarray(100));
  await closed;
  t.match(answer, /^HTTP\/1\.1 200 OK\r\n/);
  t.match(answer, new RegExp(`"uid":"${review.request.uid}","allowed":true`));
  t.same(await server.exited, { code: 0, signal: null });
  t.ok(server.lines.some((line) => line['msg'] === 'stopping: no new connections, finishing requests in flight'));
  t.ok(server.lines.some((line) => line['msg'] === 'stopped'));
});

t.test('given certificate files and policy: --tls-cert/--tls-key/--config', async (t) => {
  const cwd = t.testdir({ 'policy.yaml': 'apiVersion: podgate.io/v1alpha1\nkind: Policy\nrules: []\n' });
  const first = await startProcess([], cwd); // only to get a certificate set made
  first.child.kill('SIGTERM');
  await first.exited;
  const server = await startProcess(['--config', 'policy.yaml', '--tls-cert', 'certs/tls.crt', '--tls-key', 'certs/tls.key', '--certs-dir', 'unused'], cwd);
  t.teardown(() => server.child.kill('SIGTERM'));
  t.notOk(server.lines.some((line) => 'generated' in line), 'no certificates generated');
  t.match(server.lines.find((line) => line['msg'] === 'policy loaded'), { rules: [], policy: 'policy.yaml' });
  const ready = await call(`https://localhost:${server.port}/readyz`, { ca: await readFile(join(cwd, 'certs', 'ca.crt'), 'utf8') });
  t.equal(ready.status, 200);
});

t.test('an invalid policy at start: not ready with every problem said, and ready once the file is fixed (no crash loop)', async (t) => {
  const bad = 'apiVersion: podgate.io/v1alpha1\nkind: Policy\nrules:\n  - name: x\n    kind: resourceFloors\n    limits: { cpu: "2 cores" }\n';
  const cwd = t.testdir({ 'bad.yaml': bad });
  const server = await startProcess(['--config', 'bad.yaml', '--offline'], cwd);
  t.teardown(() => server.child.kill('SIGTERM'));
  const ca = await readFile(join(cwd, 'certs', 'ca.crt'), 'utf8');
  t.match(server.stderr(), 'podgate: the policy bad.yaml is not valid; serving not-ready until it is fixed:\nbad.yaml:6:20 rules[0].limits.cpu: "2 cores" is not a Kubernetes quantity');
  t.match(server.lines.find((line) => String(line['msg']).startsWith('policy file rejected')), { level: 50, msg: /no policy in force: not ready/ });
  t.same((await call(`https://localhost:${server.port}/readyz`, { ca })).body, { ready: false, checks: { policy: { ok: false }, serving: { ok: true } } });
  t.match((await call(`https://localhost:${server.metricsPort}/readyz`, { ca })).body, { ready: false, checks: { policy: { ok: false, detail: /no valid policy loaded from bad\.yaml.*"2 cores" is not a Kubernetes quantity/ } } });
  const review = makeReview(makeRequest(makePod()));
  t.equal((await call(`https://localhost:${server.port}/validate`, { ca, body: JSON.stringify(review) })).status, 503, 'admission answered 503: the webhook fails open');

  await writeFile(join(cwd, 'bad.yaml'), bad.replace('2 cores', '2'));
  await waitFor('ready once the file is fixed', async () => (await call(`https://localhost:${server.port}/readyz`, { ca })).status === 200, 15_000);
  t.equal((await call(`https://localhost:${server.port}/validate`, { ca, body: JSON.stringify(review) })).status, 200, 'and it decides');
  t.equal(server.child.exitCode, null, 'never exited');
});

t.test('listening: on every IPv6 and IPv4 address by default; a port in use is one line naming the flag', async (t) => {
  const cwd = t.testdir();
  const server = await startProcess(['--host', '::'], cwd);
  const ca = await readFile(join(cwd, 'certs', 'ca.crt'), 'utf8');
  const listening = server.lines.find((line) => String(line['msg']).startsWith('podgate listening'));
  t.match((await call(`https://127.0.0.1:${server.port}/healthz`, { ca })).body, { status: 'ok' }, 'IPv4');
  if (listening?.['host'] === '::') t.match((await call(`https://[::1]:${server.port}/healthz`, { ca })).body, { status: 'ok' }, 'and IPv6, which the certificate names');
  else t.equal(listening?.['host'], '0.0.0.0', 'a machine without IPv6 falls back to every IPv4 address');
  t.match(listening?.['msg'], /^podgate listening on https:\/\/(\[::\]|0\.0\.0\.0):\d+ /);

  const busy = await runCommand(['serve', '--offline', '--port', String(server.port), '--metrics-port', '0', '--host', '::', '--log-format', 'json', '--certs-dir', join(cwd, 'certs')], cwd);
  t.equal(busy.code, 1);
  t.match(busy.stderr, new RegExp(`^podgate: port ${server.port} on :: is already in use \\(another podgate, or one still stopping\\); choose another with --port <n>\\n$`));
  const lastLine = JSON.parse(busy.stdout.trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>;
  t.match(lastLine, { level: 50, msg: /already in use/ }, 'the log ends with the error, after the lines buffered before it');
  server.child.kill('SIGTERM');
  t.same(await server.exited, { code: 0, signal: null });
});

t.test('usage errors exit 2 with help', async (t) => {
  const cwd = t.testdir();
  const cases: [string[], RegExp][] = [
    [['serve', '--tls-cert', 'x'], /--tls-cert and --tls-key go together/],
    [['serve', '--port', 'http'], /--port must be a whole number of at least 0, got "http"/],
    [['serve', '--bogus'], /Unknown option '--bogus'/],
    [['frobnicate'], /unknown command "frobnicate"/],
  ];
  for (const [args, message] of cases) {
    const result = await runCommand(args, cwd);
    t.equal(result.code, 2, args.join(' '));
    t.match(result.stderr, message);
  }
  const manifest = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  for (const args of [['--version'], ['version']]) {
    const version = await runCommand(args, cwd);
    t.same(version, { code: 0, stdout: `podgate ${manifest.version} (Node ${process.version})\n`, stderr: '' }, `${args.join(' ')}: the package's version and the Node running it`);
  }
  const help = await runCommand(['--help'], cwd);
  t.equal(help.code, 0);
  t.match(help.stdout, /Commands:\n {2}serve .*\n {2}check /);
  const serveHelp = await runCommand(['serve', '--help'], cwd);
  t.match(serveHelp.stdout, /Example:\n {2}podgate serve --config/);
});

t.test('podgate check', async (t) => {
  const cwd = t.testdir({
    'good.yaml': await readFile(new URL('../../manifests/base/podgate.yaml', import.meta.url), 'utf8'),
    'bad.yaml': 'apiVersion: podgate.io/v1alpha1\nkind: Policy\nrules:\n  - name: x\n    kind: resourceFloors\n    requests:\n      memory: 4 Gi\n',
  });
  const good = await runCommand(['check', 'good.yaml'], cwd);
  // The sample policy's rules, read from the file: the sample may grow without this test changing.
  const sampleRules = [...(await readFile(new URL('../../manifests/base/podgate.yaml', import.meta.url), 'utf8')).matchAll(/^ {2}- name: ([a-z0-9-]+)$/gm)].map((match) => match[1]);
  t.ok(sampleRules.length > 0);
  t.same(good, { code: 0, stdout: `good.yaml: valid, ${sampleRules.length} rule(s): ${sampleRules.join(', ')}\n`, stderr: '' });
  const bad = await runCommand(['check', 'good.yaml', 'bad.yaml'], cwd);
  t.equal(bad.code, 1);
  t.equal(bad.stderr, 'bad.yaml:7:15 rules[0].requests.memory: "4 Gi" is not a Kubernetes quantity (examples: 500m, 2, 4Gi, 1.5G)\n');
  const missing = await runCommand(['check', 'nope.yaml'], cwd);
  t.equal(missing.code, 1);
  t.equal(missing.stderr, 'nope.yaml: cannot read the policy file (ENOENT)\n');
  t.equal((await runCommand(['check'], cwd)).code, 2);
});

t.test('SIGTERM still ends the process when whoever read its log has gone', async (t) => {
  const cwd = t.testdir();
  // A parent that starts podgate, fills its stdout pipe with decisions it never reads, and exits.
  const pid = Number((await promisify(execFile)(process.execPath, [fileURLToPath(new URL('../helpers/leave-running.ts', import.meta.url)), cwd])).stdout.trim());
  t.ok(pid > 0);
  const alive = () => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  t.ok(alive(), 'podgate outlived its parent');
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 10_000;
  while (alive() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
  const stillRunning = alive();
  if (stillRunning) process.kill(pid, 'SIGKILL');
  t.notOk(stillRunning, 'exited within 10 s of SIGTERM');
});
