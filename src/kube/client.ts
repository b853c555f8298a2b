import { readFile } from 'node:fs/promises';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import { Readable } from 'node:stream';

/** A response whose body streams (a watch never ends on its own). */
export interface ApiResponse {
  readonly status: number;
  readonly body: AsyncIterable<Uint8Array>;
}

/**
 * How a watch reaches the API server: its URL, and one authenticated GET
 * (a fresh credential for every request; `signal` ends the request and its body).
 */
export interface ApiClient {
  readonly server: string;
  readonly get: (url: URL, accept: string, signal: AbortSignal) => Promise<ApiResponse>;
}

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/**
 * The pod's own service account: the API server from KUBERNETES_SERVICE_HOST/PORT,
 * its CA and the bound token the kubelet keeps fresh in the mounted directory
 * (read again for every request, so a rotated token is picked up).
 *
 * Written on node:https rather than taken from client-node's KubeConfig (whose
 * import alone costs about 85 MiB of memory in every replica) or undici (~5 MiB
 * more): podgate only lists and watches. Out of a cluster, kubeconfigClient()
 * uses client-node for the many ways a kubeconfig can authenticate.
 */
export async function inClusterClient(env: NodeJS.ProcessEnv, dir = SERVICE_ACCOUNT_DIR): Promise<ApiClient> {
  const host = env['KUBERNETES_SERVICE_HOST'] ?? '';
  const port = env['KUBERNETES_SERVICE_PORT'] ?? '443';
  const agent = new Agent({ ca: await readFile(join(dir, 'ca.crt'), 'utf8'), keepAlive: true });
  return {
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    get: async (url, accept, signal) => {
      const token = (await readFile(join(dir, 'token'), 'utf8')).trim();
      return new Promise((resolve, reject) => {
        const outgoing = request(url, { agent, signal, headers: { accept, authorization: `Bearer ${token}` } }, (incoming) => {
          resolve({ status: incoming.statusCode ?? 0, body: incoming });
        });
        outgoing.on('error', reject);
        outgoing.end();
      });
    },
  };
}

/** A kubeconfig file, through client-node and undici (loaded only on this path): tokens, client certificates, exec plugins, OIDC. */
export async function kubeconfigClient(path: string): Promise<{ client: ApiClient; context: string }> {
  const [{ KubeConfig, RequestContext, HttpMethod }, { fetch }] = await Promise.all([import('@kubernetes/client-node'), import('undici')]);
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(path);
  const cluster = kubeConfig.getCurrentCluster();
  if (cluster === null) throw new Error(`${path} has no current cluster`);
  return {
    context: kubeConfig.getCurrentContext(),
    client: {
      server: cluster.server,
      get: async (url, accept, signal) => {
        const context = new RequestContext(url.toString(), HttpMethod.GET);
        await kubeConfig.applySecurityAuthentication(context);
        const dispatcher = context.getDispatcher();
        const response = await fetch(url, { headers: { ...context.getHeaders(), accept }, signal, ...(dispatcher ? { dispatcher } : {}) });
        return { status: response.status, body: response.body ?? Readable.from([]) };
      },
    },
  };
}
