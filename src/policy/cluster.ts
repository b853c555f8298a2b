/**
 * What podgate knows of the cluster: read-only views over informer caches,
 * filled by the shell (src/kube). Rules read it; nothing in the request path
 * ever calls the Kubernetes API.
 */
export interface ClusterState {
  /** Watches that have not finished their first list; a rule needing one decides how to fail. */
  readonly unsynced: ReadonlySet<string>;
}

export const EMPTY_CLUSTER: ClusterState = { unsynced: new Set() };
