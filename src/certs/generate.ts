import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';

/** PEM files of a private CA and a serving certificate it signed. */
export interface CertificateSet {
  readonly caCert: string;
  readonly caKey: string;
  readonly cert: string;
  readonly key: string;
}

export interface CertificateRequest {
  /** DNS names and IP addresses the serving certificate is valid for; the first is its common name. */
  readonly hosts: readonly string[];
  readonly days?: number;
  /** Sign with this CA instead of making a new one (a renewal that keeps the caBundle). */
  readonly ca?: { readonly caCert: string; readonly caKey: string } | undefined;
}

const DAY_MS = 24 * 60 * 60 * 1000;

/** Loaded only to generate: a replica that mounts its certificates does not carry its code (~3 MiB). */
const selfsigned = () => import('selfsigned');

/**
 * A CA and a serving certificate signed by it (ECDSA P-256, SHA-256). The API
 * server verifies the webhook's certificate against the `caBundle` and requires
 * the service's DNS name in the subjectAltName (the common name is ignored).
 */
export async function generateCertificates(request: CertificateRequest, now = new Date()): Promise<CertificateSet> {
  const [commonName] = request.hosts;
  if (commonName === undefined) throw new Error('a serving certificate needs at least one host name');
  const notAfterDate = new Date(now.getTime() + (request.days ?? 365) * DAY_MS);
  const validity = { notBeforeDate: new Date(now.getTime() - 5 * 60 * 1000), notAfterDate, keyType: 'ec', algorithm: 'sha256' } as const;

  const ca = request.ca ?? (await newCa(now));
  const { generate } = await selfsigned();
  const serving = await generate([{ name: 'commonName', value: commonName }], {
    ...validity,
    ca: { key: ca.caKey, cert: ca.caCert },
    extensions: [
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: request.hosts.map((host) => (isIP(host) ? { type: 7 as const, ip: host } : { type: 2 as const, value: host })),
      },
    ],
  });
  return { caCert: ca.caCert, caKey: ca.caKey, cert: serving.cert, key: serving.private };
}

/** A CA valid for ten years: it only signs podgate's serving certificates, which are renewed far more often. */
async function newCa(now: Date): Promise<{ caCert: string; caKey: string }> {
  const { generate } = await selfsigned();
  const ca = await generate([{ name: 'commonName', value: 'podgate-ca' }], {
    notBeforeDate: new Date(now.getTime() - 5 * 60 * 1000),
    notAfterDate: new Date(now.getTime() + 3650 * DAY_MS),
    keyType: 'ec',
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  return { caCert: ca.cert, caKey: ca.private };
}

/** Whether a certificate stays valid for at least `days` more days. */
export function validForDays(pem: string, days: number, now = new Date()): boolean {
  try {
    return new Date(new X509Certificate(pem).validTo).getTime() - now.getTime() >= days * DAY_MS;
  } catch {
    return false;
  }
}

/**
 * Why an existing serving certificate should not be reused, or undefined if it
 * is fine: it must be signed by the CA, cover every host and stay valid for
 * at least `marginDays` more.
 */
export function certificateProblem(set: Pick<CertificateSet, 'caCert' | 'cert'>, hosts: readonly string[], now = new Date(), marginDays = 30): string | undefined {
  let ca: X509Certificate;
  let cert: X509Certificate;
  try {
    ca = new X509Certificate(set.caCert);
    cert = new X509Certificate(set.cert);
  } catch (error) {
    return `not a readable certificate (${error instanceof Error ? error.message : String(error)})`;
  }
  if (!cert.verify(ca.publicKey)) return 'not signed by the CA next to it';
  if (new Date(cert.validTo).getTime() - now.getTime() < marginDays * DAY_MS) return `expires ${cert.validTo}`;
  const missing = hosts.filter((host) => (isIP(host) ? cert.checkIP(host) : cert.checkHost(host)) === undefined);
  if (missing.length > 0) return `does not cover ${missing.join(', ')}`;
  return undefined;
}
