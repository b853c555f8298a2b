import type { Logger } from 'pino';
import { at, stringAt, stringMapAt } from '../lib/json.ts';
import type { AdmissionRequest } from '../admission/review.ts';
import { EMPTY_CLUSTER, type ClusterState, type KpoPod, type NodeInfo, type NodeView } from '../policy/cluster.ts';
import { KpoPodIndex } from './kpoIndex.ts';
import { CompactLabels, intern } from './labels.ts';
import type { WatchName } from '../policy/rule.ts';
import type { KpoPodSelection } from '../policy/airflow.ts';
import type { HealthCheck } from '../lib/health.ts';
import type { KubeConnection } from './connect.ts';
import { MetadataReflector, type ReflectorStatus } from './reflector.ts';

/** Labels of KPO pods that no lookup selects on: not worth their memory across 50,000 pods. */
const UNUSED_KPO_LABELS = new Set(['try_number', 'airflow_version', 'airflow_kpo_in_cluster']);
/**
 * At most this many labels of a KPO pod are kept besides the ones the collision check
 * reads by name. Any tenant can create a KPO-labelled pod, and the watch is
 * cluster-wide: 2,000 pods of 500 labels each would otherwise hold ~150 MB, and one
 * with 20,000 labels made every lookup of its task scan them all. The API server
 * bounds each label (a 317-character key, a 63-character value), so this bounds a
 * cached pod at a few KiB whatever it carries. Real KPO pods carry about ten.
 */
export const MAX_OTHER_KPO_LABELS = 32;

/**
 * The slim form of a KPO pod the index keeps: namespace, name, the labels the collision
 * check reads by name (`kept`), and the first MAX_OTHER_KPO_LABELS of the others; a pod
 * with more is marked partial, and the collision check treats a lookup label it lacks
 * as possibly there.
 */
export function slimKpoPod(metadata: unknown, kept: ReadonlySet<string>, injectedKey?: string): KpoPod | undefined {
  const name = stringAt(metadata, 'name');
  const namespace = stringAt(metadata, 'namespace');
  if (name === undefined || namespace === undefined) return undefined;
  const labels: [string, string][] = [];
  let others = 0;
  let partialLabels = false;
  for (const [key, value] of stringMapAt(metadata, 'labels')) {
    if (kept.has(key)) labels.push([key, value]);
    else if (UNUSED_KPO_LABELS.has(key)) continue;
    else if (others < MAX_OTHER_KPO_LABELS) {
      labels.push([key, value]);
      others += 1;
    } else partialLabels = true;
  }
  const compact = new CompactLabels(labels);
  // Only the injected labels the pod still carries and the cache kept: a bounded list, whatever the annotation says.
  const injected = injectedKey === undefined ? [] : (stringAt(metadata, 'annotations', injectedKey) ?? '').split(',').filter((key) => kept.has(key) && compact.has(key)).map(intern);
  return { name, namespace: intern(namespace), labels: compact, ...(partialLabels ? { partialLabels } : {}), ...(injected.length > 0 ? { injectedLabels: injected } : {}) };
}

/**
 * The slim form of a node the cache keeps: its name and labels, nothing else. Node labels
 * are not capped like KPO pods': only administrators and the kubelet (whose own labels the
 * NodeRestriction admission plugin limits) write them, and a denylist selector must see
 * every one.
 */
export function slimNode(metadata: unknown): NodeInfo | undefined {
  const name = stringAt(metadata, 'name');
  return name === undefined ? undefined : { name, labels: new CompactLabels(stringMapAt(metadata, 'labels')) };
}

function nodeView(reflector: MetadataReflector<NodeInfo>): NodeView {
  return {
    get synced() {
      return reflector.status.synced;
    },
    all: () => reflector.store.values(),
    byName: (name) => reflector.store.get(name),
  };
}

/**
 * The watches the loaded policy needs, started on demand (a reload that adds a
 * nodeDenylist rule starts the node watch) and kept for the process's life.
 */
export class ClusterWatches {
  readonly #connection: KubeConnection;
  readonly #log: Logger;
  #nodes: MetadataReflector<NodeInfo> | undefined;
  #kpoPods: { readonly reflector: MetadataReflector<KpoPod>; readonly selection: KpoPodSelection; readonly index: KpoPodIndex; readonly kept: ReadonlySet<string> } | undefined;
  #needed = new Set<WatchName>();
  #state: ClusterState = EMPTY_CLUSTER;

  constructor(connection: KubeConnection, log: Logger) {
    this.#connection = connection;
    this.#log = log;
  }

  get state(): ClusterState {
    return this.#state;
  }

  /**
   * Starts whatever the policy's `watches` holds that is not running yet, and restarts
   * the KPO pod watch when a reload changed which pods it selects or which labels it
   * keeps (`kpoPodSelection`).
   */
  ensure({ watches, kpoPodSelection }: { readonly watches: ReadonlySet<WatchName>; readonly kpoPodSelection: KpoPodSelection | undefined }): void {
    for (const watch of watches) this.#needed.add(watch);
    if (this.#connection.mode === 'offline') return;
    if (watches.has('nodes') && this.#nodes === undefined) {
      this.#nodes = new MetadataReflector({ name: 'nodes', client: this.#connection.client, path: '/api/v1/nodes', slim: slimNode, log: this.#log });
      void this.#nodes.start();
      this.#state = { ...this.#state, nodes: nodeView(this.#nodes) };
    }
    // Only kpo* rules need the pod watch, and they need the airflow section that sets the selection.
    if (watches.has('kpoPods') && kpoPodSelection !== undefined && !sameSelection(this.#kpoPods?.selection, kpoPodSelection)) {
      if (this.#kpoPods) {
        // Until the new selection has listed, the collision rule reads an unsynced index and follows its whileUnsynced.
        this.#log.info({ watch: 'kpoPods', from: this.#kpoPods.selection.query, to: kpoPodSelection.query }, 'the policy selects other KPO pods: restarting the pod watch');
        this.#kpoPods.reflector.stop();
      }
      this.#startKpoPods(kpoPodSelection);
    }
  }

  #startKpoPods(selection: KpoPodSelection): void {
    if (this.#connection.mode === 'offline') return; // ensure() never gets here offline; this narrows the connection to one with a client
    const index = new KpoPodIndex(() => reflector.status.synced);
    const kept: ReadonlySet<string> = new Set(selection.keptLabels);
    const reflector: MetadataReflector<KpoPod> = new MetadataReflector({
      name: 'kpoPods',
      client: this.#connection.client,
      path: '/api/v1/pods',
      labelSelector: selection.query,
      slim: (metadata) => slimKpoPod(metadata, kept, selection.injectedKey),
      log: this.#log,
      onChange: ({ previous, current }) => {
        if (current !== undefined) index.upsert(current, previous);
        else if (previous !== undefined) index.delete(previous);
      },
    });
    this.#kpoPods = { reflector, selection, index, kept };
    void reflector.start();
    this.#state = { ...this.#state, kpoPods: index };
  }

  /** Tells the KPO pod index of a review the validating webhook has just admitted (see recordAdmission). */
  admitted(request: AdmissionRequest): void {
    const kpo = this.#kpoPods;
    if (kpo !== undefined) recordAdmission(kpo.index, kpo.selection, kpo.kept, request, Date.now());
  }

  /** One readiness check per needed watch: ready once it has listed; offline is ready and says what that means. */
  checks(): Record<string, HealthCheck> {
    const checks: Record<string, HealthCheck> = {};
    for (const watch of this.#needed) {
      if (this.#connection.mode === 'offline') {
        checks[`watch:${watch}`] = { ok: true, detail: `${this.#connection.detail}; rules judge by the names in the request alone` };
        continue;
      }
      const status = watch === 'nodes' ? this.#nodes?.status : this.#kpoPods?.reflector.status;
      checks[`watch:${watch}`] = describe(status);
    }
    return checks;
  }

  statuses(): Partial<Record<WatchName, ReflectorStatus>> {
    return { ...(this.#nodes ? { nodes: this.#nodes.status } : {}), ...(this.#kpoPods ? { kpoPods: this.#kpoPods.reflector.status } : {}) };
  }

  stop(): void {
    this.#nodes?.stop();
    this.#kpoPods?.reflector.stop();
  }
}

/**
 * A KPO pod CREATE the validating webhook admitted counts for the collision check at once,
 * before the watch delivers it (KpoPodIndex.admitted). Dry runs are not: nothing is created.
 * A pod with only a generateName is counted under its review's uid until its time is up.
 */
export function recordAdmission(index: KpoPodIndex, selection: KpoPodSelection, kept: ReadonlySet<string>, request: AdmissionRequest, now: number): void {
  if (request.operation !== 'CREATE' || request.dryRun === true || request.subResource || request.kind.group !== '' || request.kind.kind !== 'Pod') return;
  const name = stringAt(request.object, 'metadata', 'name') || request.name || `(generated ${request.uid})`;
  const namespace = request.namespace || stringAt(request.object, 'metadata', 'namespace') || '';
  // Already counted (the watch, or this very pod reinvoked): nothing to build. Checked first: this runs for every admitted review.
  if (index.byName(namespace, name) !== undefined) return;
  if (!selection.selects(stringMapAt(request.object, 'metadata', 'labels'))) return;
  const labels = at(request.object, 'metadata', 'labels');
  const annotations = at(request.object, 'metadata', 'annotations');
  const pod = slimKpoPod({ name, namespace, labels, annotations }, kept, selection.injectedKey);
  if (pod !== undefined) index.admitted(pod, now);
}

function sameSelection(a: KpoPodSelection | undefined, b: KpoPodSelection): boolean {
  return a !== undefined && a.query === b.query && a.keptLabels.join('\u0000') === b.keptLabels.join('\u0000');
}

function describe(status: ReflectorStatus | undefined): HealthCheck {
  if (status === undefined) return { ok: false, detail: 'not started' };
  if (!status.synced) return { ok: false, detail: `not synced yet${status.lastError ? ` (${status.lastError})` : ''}; judging by names alone` };
  const live = status.connected ? 'watching' : `reconnecting${status.lastError ? ` (${status.lastError})` : ''}, serving the last known state`;
  return { ok: true, detail: `${status.objects} objects, ${live}` };
}
