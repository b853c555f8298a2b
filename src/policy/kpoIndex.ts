import { kpoIdentity } from './airflow.ts';
import type { KpoPod, KpoPodView } from './cluster.ts';

/**
 * Live KubernetesPodOperator pods grouped by task-instance identity, so the
 * collision check looks at the handful of pods of one task instance rather than
 * at every pod in the cluster. Fed by the pod watch (or a file, offline).
 */
export class KpoPodIndex implements KpoPodView {
  readonly #byIdentity = new Map<string, Map<string, KpoPod>>();
  readonly #identityOf = new Map<string, string>();
  readonly #isSynced: () => boolean;

  constructor(isSynced: () => boolean = () => true) {
    this.#isSynced = isSynced;
  }

  get synced(): boolean {
    return this.#isSynced();
  }

  get size(): number {
    return this.#identityOf.size;
  }

  readonly withIdentity = (identity: string): Iterable<KpoPod> => this.#byIdentity.get(identity)?.values() ?? [];

  /** Adds or replaces the pod under `key` (namespace/name); a pod without dag/task/run labels is dropped. */
  upsert(key: string, pod: KpoPod): void {
    this.delete(key);
    const identity = kpoIdentity(pod.namespace, pod.labels);
    if (identity === undefined) return;
    let bucket = this.#byIdentity.get(identity);
    if (bucket === undefined) {
      bucket = new Map();
      this.#byIdentity.set(identity, bucket);
    }
    bucket.set(key, pod);
    this.#identityOf.set(key, identity);
  }

  delete(key: string): void {
    const identity = this.#identityOf.get(key);
    if (identity === undefined) return;
    this.#identityOf.delete(key);
    const bucket = this.#byIdentity.get(identity);
    bucket?.delete(key);
    if (bucket?.size === 0) this.#byIdentity.delete(identity);
  }
}

/** An index over fixed pods: tests and the offline CLI. */
export function staticKpoPods(pods: readonly KpoPod[]): KpoPodIndex {
  const index = new KpoPodIndex();
  for (const pod of pods) index.upsert(`${pod.namespace}/${pod.name}`, pod);
  return index;
}
