import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { inClusterClient, kubeconfigClient, SERVICE_ACCOUNT_DIR, type ApiClient } from './client.ts';

export type KubeConnection =
  | { readonly mode: 'in-cluster' | 'kubeconfig'; readonly client: ApiClient; readonly detail: string }
  | { readonly mode: 'offline'; readonly detail: string };

/**
 * How podgate reaches the API server for its watches: the pod's service account
 * when it runs in a cluster, else `--kubeconfig`, `$KUBECONFIG` or
 * ~/.kube/config, else offline (a developer's laptop): rules that read cluster
 * state then judge by what the request itself says.
 */
export async function connectToCluster(options: { readonly kubeconfig?: string | undefined; readonly offline?: boolean }, env: NodeJS.ProcessEnv): Promise<KubeConnection> {
  if (options.offline) return { mode: 'offline', detail: 'offline (--offline): no cluster watches' };
  if (options.kubeconfig === undefined && env['KUBERNETES_SERVICE_HOST']) {
    // PODGATE_SERVICEACCOUNT_DIR: only for a token mounted elsewhere (and tests); the default is the kubelet's path.
    const dir = env['PODGATE_SERVICEACCOUNT_DIR'] ?? SERVICE_ACCOUNT_DIR;
    const client = await inClusterClient(env, dir);
    return { mode: 'in-cluster', client, detail: `in-cluster service account (${client.server})` };
  }
  const path = options.kubeconfig ?? env['KUBECONFIG']?.split(':')[0] ?? join(homedir(), '.kube', 'config');
  if (!existsSync(path)) return { mode: 'offline', detail: `offline: no in-cluster service account and no kubeconfig at ${path}` };
  const { client, context } = await kubeconfigClient(path);
  return { mode: 'kubeconfig', client, detail: `kubeconfig ${path}, context ${context}` };
}
