import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';
import { runCommand, startProcess } from '../helpers/process.ts';
import { call } from '../helpers/https.ts';
import { serviceDnsNames, webhookNames } from '../../src/cli/certs.ts';

const NAMES = ['podgate', 'podgate.podgate', 'podgate.podgate.svc', 'podgate.podgate.svc.cluster.local'];

t.test('podgate certs: a CA and a serving certificate for the Service, and the caBundle patches', async (t) => {
  t.same(serviceDnsNames('podgate', 'podgate'), NAMES);
  const out = t.testdir();
  const first = await runCommand(['certs', '--out', out], out);
  t.equal(first.code, 0, first.stderr);
  t.match(first.stdout, /a new CA, serving certificate for podgate, podgate\.podgate, podgate\.podgate\.svc, podgate\.podgate\.svc\.cluster\.local, valid 365 days/);

  const ca = await readFile(join(out, 'tls', 'ca.crt'), 'utf8');
  const cert = new X509Certificate(await readFile(join(out, 'tls', 'tls.crt'), 'utf8'));
  t.ok(cert.verify(new X509Certificate(ca).publicKey), 'signed by the CA');
  for (const name of NAMES) t.equal(cert.checkHost(name), name, `valid for ${name}`);

  const webhooks = webhookNames(await readFile(new URL('../../manifests/base/webhooks.yaml', import.meta.url), 'utf8'));
  t.same(webhooks.map((w) => [w.kind, w.webhooks]), [['MutatingWebhookConfiguration', ['mutate.podgate.io']], ['ValidatingWebhookConfiguration', ['validate.podgate.io']]]);
  const caBundle = Buffer.from(ca).toString('base64');
  for (const [file, kind, hook] of [['mutating-webhook-ca.yaml', 'MutatingWebhookConfiguration', 'mutate.podgate.io'], ['validating-webhook-ca.yaml', 'ValidatingWebhookConfiguration', 'validate.podgate.io']] as const) {
    const patch = parse(await readFile(join(out, file), 'utf8')) as { kind: string; metadata: { name: string }; webhooks: { name: string; clientConfig: { caBundle: string } }[] };
    t.same(patch, { apiVersion: 'admissionregistration.k8s.io/v1', kind, metadata: { name: 'podgate' }, webhooks: [{ name: hook, clientConfig: { caBundle } }] }, file);
  }

  // A TLS client that trusts only the caBundle calls the running server by the Service's name.
  const server = await startProcess(['--tls-cert', join(out, 'tls', 'tls.crt'), '--tls-key', join(out, 'tls', 'tls.key')], out);
  t.teardown(() => server.child.kill('SIGTERM'));
  const trusted = Buffer.from(caBundle, 'base64').toString('utf8');
  for (const name of ['podgate.podgate.svc', 'podgate.podgate.svc.cluster.local']) {
    const res = await call(`https://${name}:${server.port}/healthz`, { ca: trusted, resolveTo: '127.0.0.1' });
    t.equal(res.status, 200, name);
  }
  await t.rejects(call(`https://localhost:${server.port}/healthz`, { ca: trusted }), /does not match|altnames/i, 'and only by those names');

  // Renewal keeps the CA (the caBundle in the cluster stays right), replaces the serving certificate.
  const second = await runCommand(['certs', '--out', out], out);
  t.match(second.stdout, /kept the existing CA/);
  t.equal(await readFile(join(out, 'tls', 'ca.crt'), 'utf8'), ca);
  t.not(new X509Certificate(await readFile(join(out, 'tls', 'tls.crt'), 'utf8')).serialNumber, cert.serialNumber);
  const third = await runCommand(['certs', '--out', out, '--new-ca'], out);
  t.match(third.stdout, /a new CA/);
  t.not(await readFile(join(out, 'tls', 'ca.crt'), 'utf8'), ca);
  t.equal((await runCommand(['certs', '--days', 'soon'], out)).code, 2);
});
