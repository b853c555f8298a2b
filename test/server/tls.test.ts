import t from 'tap';
import { Agent } from 'node:https';
import { X509Certificate } from 'node:crypto';
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Server as TlsServer } from 'node:tls';
import { generateCertificates } from '../../src/certs/generate.ts';
import { readTlsFiles, watchTls } from '../../src/server/tls.ts';
import { call, startServer } from '../helpers/https.ts';
import { fakePolicy } from '../helpers/fake-rules.ts';
import { recordingLogger, waitFor } from '../helpers/wait.ts';

const fingerprint = (pem: string) => new X509Certificate(pem).fingerprint256;

t.test('the serving certificate is reloaded when its files change, without dropping connections', async (t) => {
  const dir = t.testdir();
  const certPath = join(dir, 'tls.crt');
  const keyPath = join(dir, 'tls.key');
  const first = await generateCertificates({ hosts: ['localhost'] });
  await writeFile(certPath, first.cert);
  await writeFile(keyPath, first.key);

  const current = await readTlsFiles(certPath, keyPath);
  const server = await startServer(fakePolicy({ rules: [] }), { tls: current });
  t.teardown(() => server.close());
  if (!(server.app.server instanceof TlsServer)) throw new Error('not TLS');
  const { log, lines } = recordingLogger();
  const watch = watchTls({ server: server.app.server, certPath, keyPath, current, log, pollMs: 100 });
  t.teardown(() => { watch.close(); });

  const kept = new Agent({ keepAlive: true, maxSockets: 1, ca: [first.caCert] });
  t.teardown(() => { kept.destroy(); });
  const before = await call(`${server.url}/healthz`, { ca: first.caCert, agent: kept });
  t.equal(before.peerFingerprint, fingerprint(first.cert));

  // A rotation caught half-way (new certificate, old key) is refused; the old pair keeps serving.
  const second = await generateCertificates({ hosts: ['localhost'] });
  await writeFile(certPath, second.cert);
  await waitFor('the mismatch to be noticed', () => lines.some((line) => line['msg'] === 'new TLS files not usable yet, keeping the current certificate'));
  t.equal((await call(`${server.url}/healthz`, { ca: first.caCert })).peerFingerprint, fingerprint(first.cert));

  // The key arrives (atomically, as a Secret volume update does): new handshakes get the new certificate.
  await writeFile(`${keyPath}.tmp`, second.key);
  await rename(`${keyPath}.tmp`, keyPath);
  await waitFor('the reload', () => lines.some((line) => line['msg'] === 'serving certificate reloaded'));
  const fresh = await call(`${server.url}/healthz`, { ca: second.caCert });
  t.equal(fresh.status, 200);
  t.equal(fresh.peerFingerprint, fingerprint(second.cert));

  const reused = await call(`${server.url}/healthz`, { ca: first.caCert, agent: kept });
  t.equal(reused.status, 200, 'a connection opened before the rotation still works');
  t.equal(reused.peerFingerprint, fingerprint(first.cert), 'and still speaks the old certificate');
  t.notMatch(JSON.stringify(lines), /PRIVATE KEY/, 'no key material in the logs');
});
