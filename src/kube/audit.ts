import { setImmediate as nextTurn } from 'node:timers/promises';
import { isRecord } from '../lib/json.ts';
import { auditObject, tally, type AuditFinding, type RuleTally } from '../engine/audit.ts';
import { EMPTY_CLUSTER, staticNodes, type ClusterState, type KpoPod, type NodeInfo } from '../policy/cluster.ts';
import type { Policy } from '../policy/policy.ts';
import type { ApiClient } from './client.ts';
import { staticKpoPods } from './kpoIndex.ts';
import { listPages, type Collection } from './lister.ts';
import { slimKpoPod, slimNode } from './watches.ts';

/** A kind an audit can list: where its objects are, and the apiVersion and kind its list items leave out. */
interface AuditedKind extends Collection {
  readonly groupKind: string;
  readonly apiVersion: string;
  readonly kind: string;
}

/** Controllers before the pods they make: a report reads top-down, from what a person edits to what it stamps out. */
const AUDITED_KINDS: readonly AuditedKind[] = [
  { groupKind: 'batch/CronJob', path: '/apis/batch/v1/cronjobs', group: 'batch', resource: 'cronjobs', apiVersion: 'batch/v1', kind: 'CronJob' },
  { groupKind: 'apps/Deployment', path: '/apis/apps/v1/deployments', group: 'apps', resource: 'deployments', apiVersion: 'apps/v1', kind: 'Deployment' },
  { groupKind: 'apps/StatefulSet', path: '/apis/apps/v1/statefulsets', group: 'apps', resource: 'statefulsets', apiVersion: 'apps/v1', kind: 'StatefulSet' },
  { groupKind: 'apps/DaemonSet', path: '/apis/apps/v1/daemonsets', group: 'apps', resource: 'daemonsets', apiVersion: 'apps/v1', kind: 'DaemonSet' },
  { groupKind: 'batch/Job', path: '/apis/batch/v1/jobs', group: 'batch', resource: 'jobs', apiVersion: 'batch/v1', kind: 'Job' },
  { groupKind: 'apps/ReplicaSet', path: '/apis/apps/v1/replicasets', group: 'apps', resource: 'replicasets', apiVersion: 'apps/v1', kind: 'ReplicaSet' },
  { groupKind: 'ReplicationController', path: '/api/v1/replicationcontrollers', group: '', resource: 'replicationcontrollers', apiVersion: 'v1', kind: 'ReplicationController' },
  { groupKind: 'Pod', path: '/api/v1/pods', group: '', resource: 'pods', apiVersion: 'v1', kind: 'Pod' },
];
const NODES: Collection = { path: '/api/v1/nodes', group: '', resource: 'nodes' };
const PODS: Collection = { path: '/api/v1/pods', group: '', resource: 'pods' };

/** Objects per page by default: a page of whole pods is a few MiB at most. */
export const DEFAULT_AUDIT_PAGE_SIZE = 250;

export interface ClusterAuditOptions {
  readonly pageSize?: number;
  readonly signal?: AbortSignal;
  /**
   * The cluster state the rules read (nodes, live KPO pods). The server passes its watches'
   * caches; without it, the audit lists what the policy's rules read first, as those watches do.
   */
  readonly cluster?: ClusterState;
  /** Told of each page judged: what is being listed, and how many of its objects so far. */
  readonly onProgress?: (progress: { readonly resource: string; readonly objects: number }) => void;
  /** Told of every object's findings (the CLI keeps them; the server only counts). */
  readonly onFindings?: (findings: readonly AuditFinding[]) => void;
}

export interface ClusterAudit {
  /** Objects judged, per kind (`Deployment`, `Pod`). */
  readonly objects: ReadonlyMap<string, number>;
  /** Findings per rule and action, for the rules that found something. */
  readonly rules: ReadonlyMap<string, RuleTally>;
}

/** The resources an audit with this policy lists (as a ClusterRole names them), for help texts and errors. */
export function auditedCollections(policy: Policy): readonly Collection[] {
  const judged = auditedKinds(policy);
  return [...(policy.watches.has('nodes') ? [NODES] : []), ...judged];
}

function auditedKinds(policy: Policy): readonly AuditedKind[] {
  const kinds = new Set(policy.steps.audit.flatMap((step) => [...step.kinds]));
  return AUDITED_KINDS.filter((kind) => kinds.has(kind.groupKind));
}

/**
 * What the policy finds in the cluster as it is: every object of a kind some rule audits,
 * listed page by page (never more than a page of whole objects held) and judged by
 * auditObject. Read-only: lists, nothing else. Throws a ListError, worded for a person,
 * when the API server cannot be reached or a list is forbidden.
 */
export async function auditCluster(client: ApiClient, policy: Policy, options: ClusterAuditOptions = {}): Promise<ClusterAudit> {
  const pageSize = options.pageSize ?? DEFAULT_AUDIT_PAGE_SIZE;
  const cluster = options.cluster ?? (await listClusterState(client, policy, pageSize, options.signal));
  const objects = new Map<string, number>();
  const rules = new Map<string, RuleTally>();
  for (const kind of auditedKinds(policy)) {
    let seen = 0;
    objects.set(kind.kind, 0);
    for await (const page of listPages(client, kind, { shape: 'objects', pageSize, ...(options.signal ? { signal: options.signal } : {}) })) {
      for (const item of page) {
        if (!isRecord(item)) continue;
        // List items leave out apiVersion and kind; the review a rule judges has them.
        const findings = auditObject(policy, cluster, { ...item, apiVersion: kind.apiVersion, kind: kind.kind });
        seen += 1;
        if (findings.length === 0) continue;
        tally(rules, findings);
        options.onFindings?.(findings);
      }
      objects.set(kind.kind, seen);
      options.onProgress?.({ resource: kind.resource, objects: seen });
      // A page judged, a turn of the event loop given back: the server keeps answering reviews during its audit.
      await nextTurn();
    }
  }
  return { objects, rules };
}

/** The nodes and live KPO pods the policy's rules read, listed as the server's watches list them (metadata only). */
async function listClusterState(client: ApiClient, policy: Policy, pageSize: number, signal: AbortSignal | undefined): Promise<ClusterState> {
  const base = { pageSize: Math.max(pageSize, 500), shape: 'metadata' as const, ...(signal ? { signal } : {}) };
  let state: ClusterState = EMPTY_CLUSTER;
  if (policy.watches.has('nodes')) {
    const nodes: NodeInfo[] = [];
    for await (const page of listPages(client, NODES, base)) for (const item of page) pushDefined(nodes, slimNode(metadataOf(item)));
    state = { ...state, nodes: staticNodes(nodes) };
  }
  const selection = policy.kpoPodSelection;
  if (policy.watches.has('kpoPods') && selection !== undefined) {
    const kept: ReadonlySet<string> = new Set(selection.keptLabels);
    const pods: KpoPod[] = [];
    for await (const page of listPages(client, PODS, { ...base, labelSelector: selection.query })) for (const item of page) pushDefined(pods, slimKpoPod(metadataOf(item), kept, selection.injectedKey));
    state = { ...state, kpoPods: staticKpoPods(pods) };
  }
  return state;
}

function metadataOf(item: unknown): unknown {
  return isRecord(item) ? item['metadata'] : undefined;
}

function pushDefined<T>(into: T[], value: T | undefined): void {
  if (value !== undefined) into.push(value);
}

export interface BackgroundAuditOptions {
  readonly client: ApiClient;
  /** Between the end of one audit and the start of the next. */
  readonly intervalMs: number;
  readonly policy: () => Policy | undefined;
  /** The watches' caches; read only while `ready` says they have listed. */
  readonly cluster: () => ClusterState;
  readonly ready: () => boolean;
  readonly onResult: (audit: ClusterAudit, seconds: number) => void;
  readonly onFailure: (error: unknown) => void;
}

/** Objects per page in the server: a page of whole pods parsed at once holds the event loop a few milliseconds, not a hundred. */
const BACKGROUND_PAGE_SIZE = 50;

/**
 * The server's audit on an interval (off unless asked for): the same auditCluster, over the
 * watches' caches, a small page at a time with a turn of the event loop between pages so
 * reviews keep their latency. One audit at a time; the next is scheduled when one ends,
 * with ±10% jitter so the replicas of a Deployment do not list in step. Each replica audits
 * on its own: the counts are the same, and dashboards take max() over replicas.
 */
export function startBackgroundAudit(options: BackgroundAuditOptions): { readonly stop: () => void } {
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const schedule = (ms: number) => {
    timer = setTimeout(() => void run(), ms * (0.9 + Math.random() * 0.2));
    timer.unref();
  };
  const run = async () => {
    const policy = options.policy();
    if (policy !== undefined && options.ready()) {
      const started = performance.now();
      try {
        const audit = await auditCluster(options.client, policy, { pageSize: BACKGROUND_PAGE_SIZE, cluster: options.cluster(), signal: abort.signal });
        options.onResult(audit, (performance.now() - started) / 1000);
      } catch (error) {
        if (abort.signal.aborted) return;
        options.onFailure(error);
      }
    }
    if (!abort.signal.aborted) schedule(options.intervalMs);
  };
  // The first soon after start (once ready), so a new replica's gauges are not empty for a whole interval.
  schedule(Math.min(options.intervalMs, 30_000));
  return {
    stop: () => {
      abort.abort();
      clearTimeout(timer);
    },
  };
}
