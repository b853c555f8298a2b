import { kpoIdentity } from '../policy/airflow.ts';
import type { KpoPod, KpoPodView } from '../policy/cluster.ts';

/**
 * Live KubernetesPodOperator pods grouped by task-instance identity, so the
 * collision check looks at the handful of pods of one task instance rather than
 * at every pod in the cluster. Fed by the pod watch (or a file, offline).
 *
 * Kept lean for 50,000 pods: one small array per identity (almost always one
 * pod), nothing per pod that the pod itself does not already hold; removing a
 * pod needs the pod as it was indexed (the watch has it).
 */
const NO_PODS: readonly KpoPod[] = [];

export class KpoPodIndex implements KpoPodView {
  readonly #byIdentity = new Map<string, KpoPod[]>();
  readonly #byName = new Map<string, KpoPod>();
  readonly #isSynced: () => boolean;
  #size = 0;

  constructor(isSynced: () => boolean = () => true) {
    this.#isSynced = isSynced;
  }

  get synced(): boolean {
    return this.#isSynced();
  }

  get size(): number {
    return this.#size;
  }

  readonly withIdentity = (identity: string): readonly KpoPod[] => this.#byIdentity.get(identity) ?? NO_PODS;

  readonly byName = (namespace: string, name: string): KpoPod | undefined => this.#byName.get(nameKey(namespace, name));

  /** Adds `pod`, replacing `previous` (the same pod as it was indexed before), if any. */
  upsert(pod: KpoPod, previous?: KpoPod): void {
    if (previous) this.delete(previous);
    this.#byName.set(nameKey(pod.namespace, pod.name), pod);
    const identity = kpoIdentity(pod.namespace, pod.labels);
    if (identity === undefined) return;
    const bucket = this.#byIdentity.get(identity);
    if (bucket) bucket.push(pod);
    else this.#byIdentity.set(identity, [pod]);
    this.#size += 1;
  }

  /** Removes the pod with this namespace and name, found through its labels as indexed. */
  delete(pod: KpoPod): void {
    this.#byName.delete(nameKey(pod.namespace, pod.name));
    const identity = kpoIdentity(pod.namespace, pod.labels);
    const bucket = identity === undefined ? undefined : this.#byIdentity.get(identity);
    if (identity === undefined || bucket === undefined) return;
    const kept = bucket.filter((other) => other.name !== pod.name || other.namespace !== pod.namespace);
    this.#size -= bucket.length - kept.length;
    if (kept.length === 0) this.#byIdentity.delete(identity);
    else this.#byIdentity.set(identity, kept);
  }
}

function nameKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

/** An index over fixed pods: tests and the offline CLI. */
export function staticKpoPods(pods: readonly KpoPod[]): KpoPodIndex {
  const index = new KpoPodIndex();
  for (const pod of pods) index.upsert(pod);
  return index;
}
