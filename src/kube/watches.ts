import type { Logger } from 'pino';
import { stringAt, stringMapAt } from '../admission/json.ts';
import { EMPTY_CLUSTER, type ClusterState, type KpoPod, type NodeInfo, type NodeView } from '../policy/cluster.ts';
import { KpoPodIndex } from '../policy/kpoIndex.ts';
import { CompactLabels, intern } from '../policy/labels.ts';
import type { WatchName } from '../policy/rule.ts';
import type { Check } from '../server/readiness.ts';
import type { KubeConnection } from './connect.ts';
import { MetadataReflector, type ReflectorStatus } from './reflector.ts';

/** Labels of KPO pods that no lookup selects on: not worth their memory across 50,000 pods. */
const UNUSED_KPO_LABELS = new Set(['try_number', 'airflow_version', 'airflow_kpo_in_cluster']);

/** The slim form of a KPO pod the index keeps: namespace, name and the labels a lookup can select on. */
export function slimKpoPod(metadata: unknown): KpoPod | undefined {
  const name = stringAt(metadata, 'name');
  const namespace = stringAt(metadata, 'namespace');
  if (name === undefined || namespace === undefined) return undefined;
  const labels = new CompactLabels([...stringMapAt(metadata, 'labels')].filter(([key]) => !UNUSED_KPO_LABELS.has(key)));
  return { name, namespace: intern(namespace), labels };
}

/** The slim form of a node the cache keeps: its name and labels, nothing else. */
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
  #kpoPods: { readonly reflector: MetadataReflector<KpoPod>; readonly query: string } | undefined;
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
   * the KPO pod watch when a reload changed which pods it selects (`kpoPodQuery`).
   */
  ensure({ watches, kpoPodQuery }: { readonly watches: ReadonlySet<WatchName>; readonly kpoPodQuery: string | undefined }): void {
    for (const watch of watches) this.#needed.add(watch);
    if (this.#connection.mode === 'offline') return;
    if (watches.has('nodes') && this.#nodes === undefined) {
      this.#nodes = new MetadataReflector({ name: 'nodes', client: this.#connection.client, path: '/api/v1/nodes', slim: slimNode, log: this.#log });
      void this.#nodes.start();
      this.#state = { ...this.#state, nodes: nodeView(this.#nodes) };
    }
    // Only kpo* rules need the pod watch, and they need the airflow section that sets the query.
    if (watches.has('kpoPods') && kpoPodQuery !== undefined && this.#kpoPods?.query !== kpoPodQuery) {
      if (this.#kpoPods) {
        // Until the new selection has listed, the collision rule reads an unsynced index and follows its whileUnsynced.
        this.#log.info({ watch: 'kpoPods', from: this.#kpoPods.query, to: kpoPodQuery }, 'the policy selects other KPO pods: restarting the pod watch');
        this.#kpoPods.reflector.stop();
      }
      this.#startKpoPods(kpoPodQuery);
    }
  }

  #startKpoPods(query: string): void {
    if (this.#connection.mode === 'offline') return; // ensure() never gets here offline; this narrows the connection to one with a client
    const index = new KpoPodIndex(() => reflector.status.synced);
    const reflector: MetadataReflector<KpoPod> = new MetadataReflector({
      name: 'kpoPods',
      client: this.#connection.client,
      path: '/api/v1/pods',
      labelSelector: query,
      slim: slimKpoPod,
      log: this.#log,
      onChange: ({ previous, current }) => {
        if (current !== undefined) index.upsert(current, previous);
        else if (previous !== undefined) index.delete(previous);
      },
    });
    this.#kpoPods = { reflector, query };
    void reflector.start();
    this.#state = { ...this.#state, kpoPods: index };
  }

  /** One readiness check per needed watch: ready once it has listed; offline is ready and says what that means. */
  checks(): Record<string, Check> {
    const checks: Record<string, Check> = {};
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

function describe(status: ReflectorStatus | undefined): Check {
  if (status === undefined) return { ok: false, detail: 'not started' };
  if (!status.synced) return { ok: false, detail: `not synced yet${status.lastError ? ` (${status.lastError})` : ''}; judging by names alone` };
  const live = status.connected ? 'watching' : `reconnecting${status.lastError ? ` (${status.lastError})` : ''}, serving the last known state`;
  return { ok: true, detail: `${status.objects} objects, ${live}` };
}
