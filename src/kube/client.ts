import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Agent, type Dispatcher } from 'undici';

/**
 * How a watch reaches the API server: the server's URL, and the headers (with a
 * fresh credential) and connection settings for one request.
 */
export interface ApiClient {
  readonly server: string;
  readonly prepare: (url: URL) => Promise<{ readonly headers: Record<string, string>; readonly dispatcher?: Dispatcher }>;
}

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/**
 * The pod's own service account: the API server from KUBERNETES_SERVICE_HOST/PORT,
 * its CA and the bound token the kubelet keeps fresh in the mounted directory
 * (read again for every request, so a rotated token is picked up).
 *
 * Written here rather than taken from client-node's KubeConfig, whose import
 * alone costs about 85 MiB of memory in every replica; podgate only lists and
 * watches. Out of a cluster, kubeconfigClient() uses client-node for the many
 * ways a kubeconfig can authenticate.
 */
export async function inClusterClient(env: NodeJS.ProcessEnv, dir = SERVICE_ACCOUNT_DIR): Promise<ApiClient> {
  const host = env['KUBERNETES_SERVICE_HOST'] ?? '';
  const port = env['KUBERNETES_SERVICE_PORT'] ?? '443';
  const ca = await readFile(join(dir, 'ca.crt'), 'utf8');
  const dispatcher = new Agent({ connect: { ca } });
  return {
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    prepare: async () => ({ headers: { authorization: `Bearer ${(await readFile(join(dir, 'token'), 'utf8')).trim()}` }, dispatcher }),
  };
}

/** A kubeconfig file, through client-node (loaded only on this path): tokens, client certificates, exec plugins, OIDC. */
export async function kubeconfigClient(path: string): Promise<{ client: ApiClient; context: string }> {
  const { KubeConfig, RequestContext, HttpMethod } = await import('@kubernetes/client-node');
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(path);
  const cluster = kubeConfig.getCurrentCluster();
  if (cluster === null) throw new Error(`${path} has no current cluster`);
  return {
    context: kubeConfig.getCurrentContext(),
    client: {
      server: cluster.server,
      prepare: async (url) => {
        const context = new RequestContext(url.toString(), HttpMethod.GET);
        await kubeConfig.applySecurityAuthentication(context);
        const headers = { ...context.getHeaders() };
        const dispatcher = context.getDispatcher();
        return dispatcher ? { headers, dispatcher } : { headers };
      },
    },
  };
}
