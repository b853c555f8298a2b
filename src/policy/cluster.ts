/**
 * What podgate knows of the cluster: read-only views over informer caches,
 * filled by the shell (src/kube). Rules read it; nothing in the request path
 * ever calls the Kubernetes API.
 */
export interface NodeInfo {
  readonly name: string;
  readonly labels: ReadonlyMap<string, string>;
}

export interface NodeView {
  /** False until the node watch has listed once: rules then judge by names alone. */
  readonly synced: boolean;
  readonly all: () => Iterable<NodeInfo>;
  readonly byName: (name: string) => NodeInfo | undefined;
}

export interface ClusterState {
  readonly nodes: NodeView;
}

export const NO_NODES: NodeView = { synced: false, all: () => [], byName: () => undefined };

export const EMPTY_CLUSTER: ClusterState = { nodes: NO_NODES };

/** A cluster state over fixed nodes: for tests and the offline CLI. */
export function staticNodes(nodes: readonly NodeInfo[]): NodeView {
  const byName = new Map(nodes.map((node) => [node.name, node]));
  return { synced: true, all: () => byName.values(), byName: (name) => byName.get(name) };
}
