import { stringAt } from '../lib/json.ts';
import type { AdmissionRequest, Operation } from './review.ts';

/**
 * The review the API server would send for an object: for `podgate review` and
 * `podgate test` (objects from files) and for audits (objects already in the cluster).
 */
export interface Identity {
  readonly username: string;
  readonly groups: readonly string[];
  readonly extra: Readonly<Record<string, readonly string[]>>;
}

/** How the object reaches the API server: the operation, the object it replaces (UPDATE), and the namespace when the object names none. */
export interface SimulatedRequest {
  readonly operation?: Operation;
  readonly oldObject?: Record<string, unknown>;
  readonly defaultNamespace?: string;
}

/** The resource of each kind podgate judges (the API server's plural); others are guessed as kind + s. */
const RESOURCES: Readonly<Record<string, string>> = {
  Pod: 'pods',
  Deployment: 'deployments',
  StatefulSet: 'statefulsets',
  DaemonSet: 'daemonsets',
  ReplicaSet: 'replicasets',
  Job: 'jobs',
  CronJob: 'cronjobs',
  ReplicationController: 'replicationcontrollers',
};

/** Kinds without a namespace: named `ClusterRole x`, not `ClusterRole default/x`. */
const CLUSTER_SCOPED = new Set(['Namespace', 'Node', 'PersistentVolume', 'ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition', 'StorageClass', 'PriorityClass', 'RuntimeClass', 'IngressClass', 'MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration', 'APIService', 'CSIDriver', 'VolumeAttachment']);

let counter = 0;

export function syntheticRequest(object: Record<string, unknown>, identity: Identity, { operation = 'CREATE', oldObject, defaultNamespace = 'default' }: SimulatedRequest = {}): AdmissionRequest {
  const apiVersion = stringAt(object, 'apiVersion') ?? 'v1';
  const [group, version] = apiVersion.includes('/') ? (apiVersion.split('/') as [string, string]) : ['', apiVersion];
  const kind = stringAt(object, 'kind') ?? '';
  const name = stringAt(object, 'metadata', 'name');
  counter += 1;
  return {
    uid: `podgate-review-${counter}`,
    kind: { group, version, kind },
    resource: { group, version, resource: RESOURCES[kind] ?? `${kind.toLowerCase()}s` },
    ...(name ? { name } : {}),
    namespace: CLUSTER_SCOPED.has(kind) ? '' : (stringAt(object, 'metadata', 'namespace') ?? defaultNamespace),
    operation,
    userInfo: { username: identity.username, groups: [...identity.groups], extra: Object.fromEntries(Object.entries(identity.extra).map(([k, v]) => [k, [...v]])) },
    ...(operation === 'DELETE' ? { oldObject: object } : { object, ...(oldObject === undefined ? {} : { oldObject }) }),
  };
}
