import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { certificateProblem, generateCertificates } from '../../src/certs/generate.ts';
import { ensureDevCertificates } from '../../src/certs/files.ts';

t.test('a CA and a serving certificate for every host, verifiable against the CA', async (t) => {
  const hosts = ['podgate', 'podgate.podgate', 'podgate.podgate.svc', 'podgate.podgate.svc.cluster.local', '127.0.0.1'];
  const set = await generateCertificates({ hosts, days: 90 });
  const ca = new X509Certificate(set.caCert);
  const cert = new X509Certificate(set.cert);
  t.ok(ca.ca, 'the CA is a CA');
  t.notOk(cert.ca, 'the serving certificate is not');
  t.ok(cert.verify(ca.publicKey), 'signed by the CA');
  for (const host of hosts.slice(0, 4)) t.equal(cert.checkHost(host), host, host);
  t.equal(cert.checkIP('127.0.0.1'), '127.0.0.1');
  t.equal(cert.checkHost('evil.example'), undefined);
  t.equal(certificateProblem(set, hosts), undefined);
  t.equal(certificateProblem(set, ['other.svc']), 'does not cover other.svc');
  t.match(certificateProblem(set, hosts, new Date(), 120), /^expires /, 'ninety days left is less than the margin asked');
  const stranger = await generateCertificates({ hosts });
  t.equal(certificateProblem({ caCert: stranger.caCert, cert: set.cert }, hosts), 'not signed by the CA next to it');
  t.match(certificateProblem({ caCert: 'junk', cert: set.cert }, hosts), /^not a readable certificate/);
});

t.test('development certificates: generated once, reused, replaced when they no longer fit', async (t) => {
  const dir = join(t.testdir(), 'certs');
  const first = await ensureDevCertificates(dir, ['localhost']);
  t.equal(first.generated, true);
  t.equal((await stat(join(dir, 'tls.key'))).mode & 0o777, 0o600, 'the private key is readable by its owner only');
  t.equal(first.caBundle, Buffer.from(await readFile(join(dir, 'ca.crt'), 'utf8')).toString('base64'));
  const second = await ensureDevCertificates(dir, ['localhost']);
  t.equal(second.generated, false);
  t.equal(second.caBundle, first.caBundle);
  const widened = await ensureDevCertificates(dir, ['localhost', 'podgate.local']);
  t.same([widened.generated, widened.replaced], [true, 'does not cover podgate.local']);
  await writeFile(join(dir, 'tls.crt'), 'garbage');
  t.equal((await ensureDevCertificates(dir, ['localhost'])).generated, true, 'unreadable files are replaced');
});
