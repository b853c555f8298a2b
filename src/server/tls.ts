import { createHash, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createSecureContext, type Server as TlsServer } from 'node:tls';
import type { Logger } from 'pino';
import { watchFiles } from '../lib/watch.ts';

export interface TlsMaterial {
  readonly cert: string;
  readonly key: string;
}

export async function readTlsFiles(certPath: string, keyPath: string): Promise<TlsMaterial> {
  const [cert, key] = await Promise.all([readFile(certPath, 'utf8'), readFile(keyPath, 'utf8')]);
  return { cert, key };
}

/** Who the certificate is for and until when: what an operator checks after a rotation. Never the key. */
export function describeCertificate(cert: string): { subject: string; validTo: string; fingerprint256: string } {
  const x509 = new X509Certificate(cert);
  return { subject: x509.subjectAltName ?? x509.subject, validTo: x509.validTo, fingerprint256: x509.fingerprint256 };
}

/**
 * Swaps the serving certificate when its files change (cert-manager renews by
 * rewriting the Secret volume). New TLS handshakes get the new pair; connections
 * already open, and the requests on them, are not touched. A half-written
 * rotation (a key that does not match the certificate) is refused and retried
 * on the next change.
 */
export function watchTls(options: {
  readonly server: TlsServer;
  readonly certPath: string;
  readonly keyPath: string;
  readonly current: TlsMaterial;
  readonly log: Logger;
  readonly pollMs?: number;
}): { close(): void } {
  const { server, certPath, keyPath, log } = options;
  const fingerprint = (material: TlsMaterial): string => createHash('sha256').update(material.cert).update(material.key).digest('hex');
  let loaded = fingerprint(options.current);
  const reload = async (): Promise<void> => {
    let material: TlsMaterial;
    try {
      material = await readTlsFiles(certPath, keyPath);
      if (fingerprint(material) === loaded) return;
      createSecureContext({ ...material }); // throws when the key does not match the certificate
    } catch (error) {
      log.warn({ certPath, keyPath, reason: error instanceof Error ? error.message : String(error) }, 'new TLS files not usable yet, keeping the current certificate');
      return;
    }
    server.setSecureContext({ ...material, minVersion: 'TLSv1.2' });
    loaded = fingerprint(material);
    log.info({ certPath, certificate: describeCertificate(material.cert) }, 'serving certificate reloaded');
  };
  return watchFiles([certPath, keyPath], reload, options.pollMs === undefined ? {} : { pollMs: options.pollMs });
}
