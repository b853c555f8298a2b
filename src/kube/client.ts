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
 * its CA and the bound token the kubelet keeps fresh in the mounted directory.
 * Both are read again for every request (a list, or a watch reconnecting every few
 * minutes), so a rotated token or a rotated cluster CA (kube-root-ca.crt) is picked
 * up without a restart.
 *
 * Written on node:https rather than taken from client-node's KubeConfig (whose
 * import alone costs about 85 MiB of memory in every replica) or undici (~5 MiB
 * more): podgate only lists and watches. Out of a cluster, kubeconfigClient()
 * uses client-node for the many ways a kubeconfig can authenticate.
 */
export async function inClusterClient(env: NodeJS.ProcessEnv, dir = SERVICE_ACCOUNT_DIR): Promise<ApiClient> {
  const host = env['KUBERNETES_SERVICE_HOST'] ?? '';
  const port = env['KUBERNETES_SERVICE_PORT'] ?? '443';
  let trusted = agentTrusting(await readFile(join(dir, 'ca.crt'), 'utf8'));
  const agent = async (): Promise<Agent> => {
    const ca = await readFile(join(dir, 'ca.crt'), 'utf8');
    if (ca !== trusted.ca) {
      // Connections made under the old CA end with it; their watches reconnect through the new agent.
      trusted.agent.destroy();
      trusted = agentTrusting(ca);
    }
    return trusted.agent;
  };
  return {
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    get: async (url, accept, signal) => {
      const [token, through] = await Promise.all([readFile(join(dir, 'token'), 'utf8'), agent()]);
      return new Promise((resolve, reject) => {
        const outgoing = request(url, { agent: through, signal, headers: { accept, authorization: `Bearer ${token.trim()}` } }, (incoming) => {
          resolve({ status: incoming.statusCode ?? 0, body: incoming });
        });
        outgoing.on('error', reject);
        outgoing.end();
      });
    },
  };
}

function agentTrusting(ca: string): { readonly ca: string; readonly agent: Agent } {
  return { ca, agent: new Agent({ ca, keepAlive: true }) };
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
