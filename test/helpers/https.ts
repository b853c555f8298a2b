import type { LookupFunction } from 'node:net';
import type { Agent } from 'node:https';
import { request } from 'node:https';
import { TLSSocket } from 'node:tls';
import jsonpatch from 'fast-json-patch';
import { pino } from 'pino';
import { generateCertificates, type CertificateSet } from '../../src/certs/generate.ts';
import { buildApp, buildOpsApp, type AppDeps } from '../../src/server/app.ts';
import { Metrics } from '../../src/server/metrics.ts';
import { readiness } from '../../src/server/readiness.ts';
import { EMPTY_CLUSTER } from '../../src/policy/cluster.ts';
import type { Policy } from '../../src/policy/policy.ts';

export interface HttpsResponse {
  readonly status: number;
  readonly body: unknown;
  readonly text: string;
  /** SHA-256 fingerprint of the certificate the server presented. */
  readonly peerFingerprint: string;
}

let shared: Promise<CertificateSet> | undefined;
/** One CA + localhost certificate for the whole test file (EC keys make this quick anyway). */
export function testCertificates(): Promise<CertificateSet> {
  shared ??= generateCertificates({ hosts: ['localhost', '127.0.0.1'] });
  return shared;
}

/** POSTs (or GETs) with certificate verification on, trusting only `ca`, as the API server does with a caBundle. */
export function call(
  url: string,
  options: { ca: string; method?: string; body?: string | Buffer; agent?: Agent; servername?: string; headers?: Record<string, string>; resolveTo?: string },
): Promise<HttpsResponse> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const req = request(
      {
        hostname: target.hostname.replace(/^\[(.*)\]$/, '$1'), // an IPv6 URL host is bracketed; the address is not
        port: target.port,
        path: target.pathname,
        method: options.method ?? (options.body === undefined ? 'GET' : 'POST'),
        ca: options.ca,
        agent: options.agent ?? false,
        ...(options.servername ? { servername: options.servername } : {}),
        // Map the URL's host name to an address, as cluster DNS would map a Service name.
        ...(options.resolveTo ? { lookup: fixedLookup(options.resolveTo) } : {}),
        headers: { 'content-type': 'application/json', ...options.headers },
        rejectUnauthorized: true,
      },
      (res) => {
        const peerFingerprint = res.socket instanceof TLSSocket ? res.socket.getPeerCertificate().fingerprint256 : '';
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown;
          try {
            body = JSON.parse(text);
          } catch {
            body = undefined;
          }
          resolve({ status: res.statusCode ?? 0, body, text, peerFingerprint });
        });
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

function fixedLookup(address: string): LookupFunction {
  return (_hostname, options, callback) => {
    if (options.all) (callback as (error: null, addresses: { address: string; family: number }[]) => void)(null, [{ address, family: 4 }]);
    else (callback as (error: null, address: string, family: number) => void)(null, address, 4);
  };
}

export interface RunningServer {
  readonly url: string;
  /** The operations port: /metrics and detailed /readyz. */
  readonly opsUrl: string;
  readonly ca: string;
  readonly app: ReturnType<typeof buildApp>;
  /** Swap the policy in force, as a reload does. */
  setPolicy(policy: Policy | undefined): void;
  close(): Promise<void>;
}

/** The real app over real HTTPS on an ephemeral port, with a policy the test controls. */
export async function startServer(initial: Policy | undefined, overrides: Partial<AppDeps> = {}): Promise<RunningServer> {
  const certs = await testCertificates();
  let policy = initial;
  const deps: AppDeps = {
    logger: pino({ level: 'silent' }),
    policy: () => policy,
    cluster: () => EMPTY_CLUSTER,
    readiness: () => readiness({ policy: policy ? { ok: true, detail: 'test policy' } : { ok: false, detail: 'no policy' } }),
    tls: { cert: certs.cert, key: certs.key },
    metrics: new Metrics(),
    ...overrides,
  };
  const app = buildApp(deps);
  const ops = buildOpsApp({ ...deps, metrics: deps.metrics ?? new Metrics() });
  await app.listen({ port: 0, host: '127.0.0.1' });
  await ops.listen({ port: 0, host: '127.0.0.1' });
  const portOf = (server: typeof app.server) => {
    const address = server.address();
    return typeof address === 'object' && address !== null ? address.port : 0;
  };
  return {
    url: `https://localhost:${portOf(app.server)}`,
    opsUrl: `https://localhost:${portOf(ops.server)}`,
    ca: certs.caCert,
    app,
    setPolicy: (next) => {
      policy = next;
    },
    close: async () => {
      await Promise.all([app.close(), ops.close()]);
    },
  };
}

/** The AdmissionReview response checked the way the kube-apiserver checks it; returns the response. */
export function admissionResponseOf(res: HttpsResponse, sent: { apiVersion: string; request: { uid: string } }) {
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${res.text}`);
  const body = res.body as { apiVersion?: unknown; kind?: unknown; response?: Record<string, unknown> };
  if (body.apiVersion !== sent.apiVersion) throw new Error(`apiVersion ${String(body.apiVersion)} is not the one sent (${sent.apiVersion})`);
  if (body.kind !== 'AdmissionReview') throw new Error(`kind ${String(body.kind)}`);
  const response = body.response;
  if (response?.['uid'] !== sent.request.uid) throw new Error(`uid ${String(response?.['uid'])} is not the one sent`);
  if (('patch' in response) !== ('patchType' in response)) throw new Error('patch and patchType must come together');
  return response as {
    uid: string;
    allowed: boolean;
    status?: { code: number; reason: string; message: string };
    warnings?: string[];
    patchType?: string;
    patch?: string;
  };
}

/** Applies the response's base64 JSONPatch with a real RFC 6902 implementation (validating every operation). */
export function applyResponsePatch<T>(object: T, response: { patch?: string }): T {
  if (response.patch === undefined) return object;
  const operations = JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')) as jsonpatch.Operation[];
  return jsonpatch.applyPatch(structuredClone(object), operations, true, false).newDocument;
}
