import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { certificateProblem, generateCertificates, type CertificateSet } from './generate.ts';

/** File names inside a certificate directory, as a kubernetes.io/tls Secret names them (plus the CA). */
export const CERT_FILES = { caCert: 'ca.crt', caKey: 'ca.key', cert: 'tls.crt', key: 'tls.key' } as const;

export interface DevCertificates {
  readonly dir: string;
  readonly caPath: string;
  readonly certPath: string;
  readonly keyPath: string;
  /** base64 of the CA PEM: the `caBundle` of a webhook configuration. */
  readonly caBundle: string;
  readonly generated: boolean;
  /** Why existing files were replaced, when they were. */
  readonly replaced?: string;
}

async function readSet(dir: string): Promise<CertificateSet | undefined> {
  try {
    const [caCert, caKey, cert, key] = await Promise.all(
      [CERT_FILES.caCert, CERT_FILES.caKey, CERT_FILES.cert, CERT_FILES.key].map((name) => readFile(join(dir, name), 'utf8')),
    );
    if (caCert === undefined || caKey === undefined || cert === undefined || key === undefined) return undefined;
    return { caCert, caKey, cert, key };
  } catch {
    return undefined;
  }
}

export async function writeCertificateSet(dir: string, set: CertificateSet): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFile(join(dir, CERT_FILES.caCert), set.caCert, { mode: 0o644 });
  await writeFile(join(dir, CERT_FILES.cert), set.cert, { mode: 0o644 });
  await writeFile(join(dir, CERT_FILES.caKey), set.caKey, { mode: 0o600 });
  await writeFile(join(dir, CERT_FILES.key), set.key, { mode: 0o600 });
}

/**
 * The certificates `podgate serve` uses when none were given: reused from `dir`
 * when they are still good for `hosts`, generated there otherwise.
 */
export async function ensureDevCertificates(dir: string, hosts: readonly string[]): Promise<DevCertificates> {
  const existing = await readSet(dir);
  const problem = existing ? certificateProblem(existing, hosts) : 'none yet';
  const set = existing !== undefined && problem === undefined ? existing : await generateCertificates({ hosts });
  if (set !== existing) await writeCertificateSet(dir, set);
  return {
    dir,
    caPath: join(dir, CERT_FILES.caCert),
    certPath: join(dir, CERT_FILES.cert),
    keyPath: join(dir, CERT_FILES.key),
    caBundle: Buffer.from(set.caCert).toString('base64'),
    generated: set !== existing,
    ...(existing !== undefined && problem !== undefined ? { replaced: problem } : {}),
  };
}
