import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { mkdir, readFile, rename, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runLoad } from '../helpers/load.ts';
import { startProcess } from '../helpers/process.ts';
import { makePod, makeRequest, makeReview } from '../helpers/builders.ts';
import { generateCertificates } from '../../src/certs/generate.ts';
import { waitFor } from '../helpers/wait.ts';

const policy = (floor: string) =>
  `apiVersion: podgate.io/v1alpha1\nkind: Policy\nrules:\n  - name: floors\n    kind: resourceFloors\n    limits: { memory: ${floor} }\n`;
/** A pod whose 2Gi limit is allowed under a 1Gi floor and denied under a 4Gi one: tells which policy answered. */
const body = () => JSON.stringify(makeReview(makeRequest(makePod({ containers: [{ name: 'c', limits: { memory: '2Gi' } }] }))));
const verdict = (response: { status: number; body: unknown }) => (response.body as { response?: { allowed?: boolean } }).response?.allowed;

t.test('the policy file deleted, emptied, made invalid and swapped by symlink while under load: no request fails, the last good policy holds', async (t) => {
  const cwd = t.testdir();
  // The ConfigMap layout: podgate.yaml -> ..data/podgate.yaml, ..data -> ..v1
  await mkdir(join(cwd, 'cm', '..v1'), { recursive: true });
  await writeFile(join(cwd, 'cm', '..v1', 'podgate.yaml'), policy('1Gi'));
  await symlink('..v1', join(cwd, 'cm', '..data'));
  await symlink(join('..data', 'podgate.yaml'), join(cwd, 'cm', 'podgate.yaml'));
  const server = await startProcess(['--config', 'cm/podgate.yaml'], cwd);
  t.teardown(() => server.child.kill('SIGTERM'));
  const ca = await readFile(join(cwd, 'certs', 'ca.crt'), 'utf8');

  let done = false;
  const load = runLoad({ url: `https://localhost:${server.port}/validate`, ca, body, concurrency: 4, stop: () => done, maxMs: 40_000 });
  const rejected = () => server.lines.filter((line) => String(line['msg']).startsWith('policy file rejected')).length;
  const swap = async (version: string, text: string) => {
    await mkdir(join(cwd, 'cm', version));
    await writeFile(join(cwd, 'cm', version, 'podgate.yaml'), text);
    await symlink(version, join(cwd, 'cm', '..data_tmp'));
    await rename(join(cwd, 'cm', '..data_tmp'), join(cwd, 'cm', '..data'));
  };

  await new Promise((resolve) => setTimeout(resolve, 300));
  await writeFile(join(cwd, 'cm', '..v1', 'podgate.yaml'), ''); // emptied
  await waitFor('the empty file rejected', () => rejected() >= 1);
  await writeFile(join(cwd, 'cm', '..v1', 'podgate.yaml'), 'apiVersion: podgate.io/v1alpha1\nkind: Policy\nrules:\n  - name: floors\n    kind: resourceFloors\n    limits: { memory: 4 Gi }\n'); // invalid
  await waitFor('the invalid file rejected', () => rejected() >= 2);
  await unlink(join(cwd, 'cm', '..v1', 'podgate.yaml')); // deleted
  await waitFor('the deletion rejected', () => rejected() >= 3);
  const before = await runLoad({ url: `https://localhost:${server.port}/validate`, ca, body, concurrency: 1, stop: () => false, maxRequests: 5 });
  t.same(before.responses.map(verdict), [true, true, true, true, true], 'the last good policy (1Gi floor) still answers');

  await swap('..v2', policy('4Gi')); // a valid new version, by atomic swap
  await waitFor('the new policy', () => server.lines.some((line) => line['msg'] === 'policy loaded' && line['generation'] === 2));
  await new Promise((resolve) => setTimeout(resolve, 300));
  done = true;
  const result = await load;
  await rm(join(cwd, 'cm', '..v1'), { recursive: true, force: true });

  t.same(result.errors, [], 'no request failed');
  t.ok(result.responses.length > 50, `${result.responses.length} requests during the changes`);
  t.ok(result.responses.every((r) => r.status === 200), 'every answer a decision');
  const allowed = result.responses.filter((r) => verdict(r) === true);
  const denied = result.responses.filter((r) => verdict(r) === false);
  t.equal(allowed.length + denied.length, result.responses.length, 'every answer allowed or denied');
  t.ok(allowed.length > 0 && denied.length > 0, `${allowed.length} allowed under the old policy, ${denied.length} denied under the new one`);
  // A request sent after some denial came back was decided after that denial, so
  // it must be denied too. (The order answers are read in across connections is
  // not the order the server decided them, so this compares times, not positions.)
  const firstDenialBack = Math.min(...denied.map((r) => r.receivedAt));
  const lateAllowed = allowed.filter((r) => r.sentAt > firstDenialBack);
  t.same(lateAllowed.length, 0, 'nothing allowed once a denial came back: never flapping back to the old policy');
  t.match(server.lines.find((line) => String(line['msg']).includes('"4 Gi" is not a Kubernetes quantity')), { level: 50 }, 'the reason is logged');
});

t.test('the serving certificate rotated on disk under load: new connections get the new certificate, no request fails', async (t) => {
  const cwd = t.testdir();
  const first = await generateCertificates({ hosts: ['localhost'] });
  const second = await generateCertificates({ hosts: ['localhost'], ca: { caCert: first.caCert, caKey: first.caKey } });
  await writeFile(join(cwd, 'tls.crt'), first.cert);
  await writeFile(join(cwd, 'tls.key'), first.key);
  const server = await startProcess(['--tls-cert', 'tls.crt', '--tls-key', 'tls.key'], cwd);
  t.teardown(() => server.child.kill('SIGTERM'));

  let done = false;
  const load = runLoad({ url: `https://localhost:${server.port}/validate`, ca: first.caCert, body, concurrency: 4, stop: () => done, maxMs: 30_000 });
  await new Promise((resolve) => setTimeout(resolve, 300));
  // As a Secret volume update lands: both files replaced atomically.
  await writeFile(join(cwd, 'tls.crt.new'), second.cert);
  await writeFile(join(cwd, 'tls.key.new'), second.key);
  await rename(join(cwd, 'tls.key.new'), join(cwd, 'tls.key'));
  await rename(join(cwd, 'tls.crt.new'), join(cwd, 'tls.crt'));
  await waitFor('the reload', () => server.lines.some((line) => line['msg'] === 'serving certificate reloaded'));
  const fresh = await runLoad({ url: `https://localhost:${server.port}/healthz`, ca: first.caCert, body: () => '', concurrency: 1, stop: () => false, maxRequests: 1 });
  t.equal(fresh.responses[0]?.peerFingerprint, new X509Certificate(second.cert).fingerprint256, 'a new connection gets the new certificate');
  await new Promise((resolve) => setTimeout(resolve, 300));
  done = true;
  const result = await load;
  t.same(result.errors, [], 'no request failed');
  t.ok(result.responses.length > 50 && result.responses.every((r) => r.status === 200), `${result.responses.length} answered`);
});

t.test('SIGTERM under load: every request that reached the server is answered, and it exits 0', async (t) => {
  const cwd = t.testdir();
  // debug: uneventful admissions are logged too, so every decision has its line to count.
  const server = await startProcess([], cwd, { LOG_LEVEL: 'debug' });
  const ca = await readFile(join(cwd, 'certs', 'ca.crt'), 'utf8');
  let exited = false;
  void server.exited.then(() => (exited = true));
  const load = runLoad({ url: `https://localhost:${server.port}/validate`, ca, body, concurrency: 6, stop: () => exited, maxMs: 20_000 });
  await new Promise((resolve) => setTimeout(resolve, 500));
  server.child.kill('SIGTERM');
  t.same(await server.exited, { code: 0, signal: null });
  const result = await load;
  const decisions = server.lines.filter((line) => line['msg'] === 'admitted' || line['msg'] === 'denied').length;
  const answered = result.responses.filter((r) => r.status === 200).length;
  t.ok(answered > 20, `${answered} decisions before and during the shutdown`);
  t.equal(answered, decisions, 'every decision podgate made reached its client');
  t.ok(result.responses.every((r) => r.status === 200 || r.status === 503), 'the rest were told podgate is closing (503), not cut off');
  const unanswered = result.errors.filter((e) => e.code !== 'ECONNREFUSED' && e.code !== 'ECONNRESET');
  t.same(unanswered, [], 'after the listener closed, connections are refused (never reached the server)');
});
