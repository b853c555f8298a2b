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

/**
 * How long a pod podgate has just admitted counts for the collision check before the
 * watch has delivered it: the watch normally follows within a second; a create that
 * never lands (a later webhook refused it, etcd failed) is forgotten after this.
 */
export const ADMITTED_TTL_MS = 15_000;
/** Admitted pods waiting for the watch, at most; beyond it, the oldest are forgotten first. */
const MAX_ADMITTED = 10_000;

export class KpoPodIndex implements KpoPodView {
  readonly #byIdentity = new Map<string, KpoPod[]>();
  readonly #byName = new Map<string, KpoPod>();
  readonly #isSynced: () => boolean;
  /** Pods podgate admitted that the watch has not delivered yet, by name, oldest first, with when they are forgotten. */
  readonly #admitted = new Map<string, { readonly pod: KpoPod; readonly until: number }>();
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

  /**
   * Counts a pod podgate has just admitted, before the watch delivers it: without this,
   * two environments' identical pods created at the same moment are both admitted,
   * since neither is in the cache when the other is judged. The watch's copy replaces
   * it; if none comes within ADMITTED_TTL_MS, it is forgotten.
   */
  admitted(pod: KpoPod, now: number): void {
    this.#forgetAdmitted(now);
    const key = nameKey(pod.namespace, pod.name);
    if (this.#byName.has(key)) return; // the watch was faster
    while (this.#admitted.size >= MAX_ADMITTED) this.#dropOldestAdmitted();
    this.upsert(pod);
    this.#admitted.set(key, { pod, until: now + ADMITTED_TTL_MS });
  }

  /** Admitted pods whose time is up, from the oldest (the map keeps insertion order). */
  #forgetAdmitted(now: number): void {
    for (const [key, entry] of this.#admitted) {
      if (entry.until > now) return;
      this.#admitted.delete(key);
      this.delete(entry.pod);
    }
  }

  #dropOldestAdmitted(): void {
    for (const [key, entry] of this.#admitted) {
      this.#admitted.delete(key);
      this.delete(entry.pod);
      return;
    }
  }

  /** Adds `pod`, replacing `previous` (the same pod as it was indexed before), if any, or the admitted pod of that name. */
  upsert(pod: KpoPod, previous?: KpoPod): void {
    if (previous) this.delete(previous);
    const key = nameKey(pod.namespace, pod.name);
    const admitted = this.#admitted.get(key);
    if (admitted !== undefined) {
      this.#admitted.delete(key);
      this.delete(admitted.pod);
    }
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
