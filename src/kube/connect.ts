import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';

export type KubeConnection = { readonly mode: 'in-cluster' | 'kubeconfig'; readonly kubeConfig: KubeConfig; readonly detail: string } | { readonly mode: 'offline'; readonly detail: string };

/**
 * How podgate reaches the API server for its watches: the pod's service account
 * when it runs in a cluster, else `--kubeconfig`, `$KUBECONFIG` or
 * ~/.kube/config, else offline (a developer's laptop): rules that read cluster
 * state then judge by what the request itself says.
 */
export function connectToCluster(options: { readonly kubeconfig?: string | undefined; readonly offline?: boolean }, env: NodeJS.ProcessEnv): KubeConnection {
  if (options.offline) return { mode: 'offline', detail: 'offline (--offline): no cluster watches' };
  const kubeConfig = new KubeConfig();
  if (options.kubeconfig === undefined && env['KUBERNETES_SERVICE_HOST']) {
    kubeConfig.loadFromCluster();
    return { mode: 'in-cluster', kubeConfig, detail: 'in-cluster service account' };
  }
  const path = options.kubeconfig ?? env['KUBECONFIG']?.split(':')[0] ?? join(homedir(), '.kube', 'config');
  if (!existsSync(path)) return { mode: 'offline', detail: `offline: no in-cluster service account and no kubeconfig at ${path}` };
  kubeConfig.loadFromFile(path);
  return { mode: 'kubeconfig', kubeConfig, detail: `kubeconfig ${path}, context ${kubeConfig.getCurrentContext()}` };
}
