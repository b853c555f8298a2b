import type { AdmissionRequest } from '../admission/review.ts';
import { arrayAt, at, atPath, jsonEqual, stringAt, stringMapAt } from '../lib/json.ts';

/**
 * Pods and the controllers that stamp pods out of a template. Rules about pods
 * judge a controller by its template, so `kubectl apply` / `helm upgrade` fails
 * at once instead of leaving a ReplicaSet that cannot create pods, or pods that
 * crash-loop.
 *
 * Keys are group/kind (the core group is empty, so a Pod is just `Pod`); values
 * are where the pod template sits in that object.
 */
const TEMPLATE_PATHS = {
  Pod: [],
  ReplicationController: ['spec', 'template'],
  'apps/Deployment': ['spec', 'template'],
  'apps/StatefulSet': ['spec', 'template'],
  'apps/DaemonSet': ['spec', 'template'],
  'apps/ReplicaSet': ['spec', 'template'],
  'batch/Job': ['spec', 'template'],
  'batch/CronJob': ['spec', 'jobTemplate', 'spec', 'template'],
} as const satisfies Record<string, readonly string[]>;

export type WorkloadKind = keyof typeof TEMPLATE_PATHS;
export const WORKLOAD_KINDS: readonly WorkloadKind[] = Object.keys(TEMPLATE_PATHS) as WorkloadKind[];
/** What a rule may judge: the workloads, and evictions (a pods/eviction review carries a policy/Eviction). */
export type ReviewedKind = WorkloadKind | 'policy/Eviction';

/** `apps/Deployment`, or `Pod` for the core group. */
export function groupKind(gvk: { readonly group: string; readonly kind: string }): string {
  return gvk.group === '' ? gvk.kind : `${gvk.group}/${gvk.kind}`;
}

function isWorkloadKind(value: string): value is WorkloadKind {
  return Object.hasOwn(TEMPLATE_PATHS, value);
}

/** A pod, or the pod template of a controller, with where it sits in the object. */
export interface Workload {
  readonly kind: WorkloadKind;
  /** Tokens from the object's root to the pod (template): [] for a Pod. */
  readonly podPath: readonly string[];
  readonly podMetadata: unknown;
  readonly podSpec: unknown;
  /** Labels the pods will carry: the pod's own, or the template's. */
  readonly podLabels: ReadonlyMap<string, string>;
}

export function workloadOf(request: AdmissionRequest, object: unknown): Workload | undefined {
  const kind = groupKind(request.kind);
  if (!isWorkloadKind(kind)) return undefined;
  const podPath = TEMPLATE_PATHS[kind];
  const pod = atPath(object, podPath);
  return {
    kind,
    podPath,
    podMetadata: at(pod, 'metadata'),
    podSpec: at(pod, 'spec'),
    podLabels: stringMapAt(pod, 'metadata', 'labels'),
  };
}

/**
 * How a message names the object: `Deployment airflow/airflow-api-server`, or for
 * a pod that only has a generateName yet, `Pod airflow/airflow-api-server-5f7d9c-*`.
 */
export function objectRef(request: AdmissionRequest, object: unknown): string {
  const name = objectName(request, object);
  const namespace = request.namespace || stringAt(object, 'metadata', 'namespace') || '';
  return `${request.kind.kind} ${namespace === '' ? '' : `${namespace}/`}${name}`;
}

/** The object's name as messages and logs give it: its own, the request's, or its generateName and `*`. */
export function objectName(request: AdmissionRequest, object: unknown): string {
  return stringAt(object, 'metadata', 'name') || request.name || generatedName(object);
}

function generatedName(object: unknown): string {
  const prefix = stringAt(object, 'metadata', 'generateName');
  return prefix ? `${prefix}*` : '(unnamed)';
}

/**
 * Whether this request brings a pod spec to judge: any CREATE, and an UPDATE
 * of a controller whose pod template changed. A Pod's spec is (nearly)
 * immutable, and an update that leaves a controller's template alone (a scale,
 * a label) should not be refused for what an older policy let in.
 */
export function bringsNewPodSpec(request: AdmissionRequest, workload: Workload): boolean {
  if (request.operation === 'CREATE') return true;
  if (request.operation !== 'UPDATE' || workload.kind === 'Pod') return false;
  return !jsonEqual(workload.podSpec, at(request.oldObject, ...workload.podPath, 'spec'));
}

/** Containers of a pod spec with their list (`containers` or `initContainers`), skipping malformed entries. */
export function containersOf(podSpec: unknown, lists: readonly ('containers' | 'initContainers')[]): readonly { readonly list: string; readonly name: string; readonly container: unknown }[] {
  return lists.flatMap((list) =>
    arrayAt(podSpec, list).flatMap((container) => {
      const name = stringAt(container, 'name');
      return name === undefined ? [] : [{ list, name, container }];
    }),
  );
}
