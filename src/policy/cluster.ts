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

/** A live KubernetesPodOperator pod, as the pod watch keeps it (metadata only). */
export interface KpoPod {
  readonly namespace: string;
  readonly name: string;
  readonly labels: ReadonlyMap<string, string>;
  /**
   * True when the cache kept only some of the pod's labels (a pod with very many): a
   * label the lookup selects on that `labels` lacks may still be on the pod.
   */
  readonly partialLabels?: boolean;
  /**
   * Of the labels it keeps, those podgate added itself (its injected-labels annotation):
   * not in the pod's own operator's lookup selector.
   */
  readonly injectedLabels?: readonly string[];
}

export interface KpoPodView {
  /** False until the pod watch has listed once. */
  readonly synced: boolean;
  /** False when no pod watch runs at all (podgate offline, or no policy needs one yet): nothing will be listed. */
  readonly watched?: false;
  /** Live KPO pods of one task instance (see kpoIdentity): the only ones a KPO lookup can match. */
  readonly withIdentity: (identity: string) => readonly KpoPod[];
  /** One live KPO pod by name (an eviction review names the pod but does not carry it). */
  readonly byName: (namespace: string, name: string) => KpoPod | undefined;
}

export interface ClusterState {
  readonly nodes: NodeView;
  readonly kpoPods: KpoPodView;
}

const NO_NODES: NodeView = { synced: false, all: () => [], byName: () => undefined };
const NO_KPO_PODS: KpoPodView = { synced: false, watched: false, withIdentity: () => [], byName: () => undefined };

export const EMPTY_CLUSTER: ClusterState = { nodes: NO_NODES, kpoPods: NO_KPO_PODS };

/** A cluster state over fixed nodes: for tests and the offline CLI. */
export function staticNodes(nodes: readonly NodeInfo[]): NodeView {
  const byName = new Map(nodes.map((node) => [node.name, node]));
  return { synced: true, all: () => byName.values(), byName: (name) => byName.get(name) };
}
