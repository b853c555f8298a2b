import { decide } from '../engine/decide.ts';
import { applyPatchCopying, parsePointer, type PatchOp } from '../lib/patch.ts';
import { syntheticRequest, type Identity, type SimulatedRequest } from '../admission/synthetic.ts';
import { stringAt, stringMapAt } from '../lib/json.ts';
import { EMPTY_CLUSTER, staticNodes, type ClusterState } from '../policy/cluster.ts';
import { staticKpoPods } from '../kube/kpoIndex.ts';
import type { Policy } from '../policy/policy.ts';
import { objectRef } from '../policy/workload.ts';
import type { SourcedObject } from './objects.ts';

export type { Identity, SimulatedRequest } from '../admission/synthetic.ts';

/**
 * The API server's part, offline: the review it would send for an object, the
 * mutating phase, the patch applied, then the validating phase, all through the
 * same decide() the server runs. Used by `podgate review` and `podgate test`.
 */
export interface Simulation {
  readonly ref: string;
  readonly source: string;
  readonly admitted: boolean;
  readonly messages: readonly string[];
  readonly warnings: readonly string[];
  readonly patch: readonly PatchOp[];
  readonly result: unknown;
}

export function simulate(policy: Policy, cluster: ClusterState, input: SourcedObject, identity: Identity, how: SimulatedRequest = {}): Simulation {
  const request = syntheticRequest(input.object, identity, how);
  const operation = request.operation;
  const ref = objectRef(request, input.object);
  const mutation = decide('mutate', request, policy, cluster);
  if (!mutation.allowed) return { ref, source: input.source, admitted: false, messages: [mutation.denial.message], warnings: mutation.warnings, patch: [], result: input.object };
  // As the API server does: the patch applied to the object as sent (a copy; the input stays as it was).
  const result = applyPatchCopying(input.object, mutation.patch);
  const validation = decide('validate', operation === 'DELETE' ? request : { ...request, object: result }, policy, cluster);
  return {
    ref,
    source: input.source,
    admitted: validation.allowed,
    messages: validation.allowed ? [] : [validation.denial.message],
    warnings: [...mutation.warnings, ...validation.warnings],
    patch: mutation.patch,
    result,
  };
}

/**
 * Cluster state from objects a user gives (`kubectl get pods,nodes -o yaml`):
 * Nodes feed the node view, KubernetesPodOperator pods the pod index. Without
 * nodes, rules judge by names (as before the node watch syncs); without pods,
 * the cluster has no live KPO pods.
 */
export function clusterFrom(objects: readonly SourcedObject[]): ClusterState {
  const nodes = objects.filter(({ object }) => object['kind'] === 'Node').flatMap(({ object }) => {
    const name = stringAt(object, 'metadata', 'name');
    return name === undefined ? [] : [{ name, labels: stringMapAt(object, 'metadata', 'labels') }];
  });
  const pods = objects.filter(({ object }) => object['kind'] === 'Pod').flatMap(({ object }) => {
    const name = stringAt(object, 'metadata', 'name');
    const namespace = stringAt(object, 'metadata', 'namespace') ?? 'default';
    return name === undefined ? [] : [{ name, namespace, labels: stringMapAt(object, 'metadata', 'labels') }];
  });
  return { ...EMPTY_CLUSTER, ...(nodes.length > 0 ? { nodes: staticNodes(nodes) } : {}), kpoPods: staticKpoPods(pods) };
}

/** A JSON Patch as a person reads it: `+ metadata.labels["podgate.io/environment"]: "alpha"`. */
export function describePatch(patch: readonly PatchOp[]): string[] {
  return patch.map((op) => {
    const path = parsePointer(op.path)
      .map((token, i) => (/^\d+$/.test(token) || token === '-' ? `[${token}]` : /^[A-Za-z_][A-Za-z0-9_]*$/.test(token) ? `${i === 0 ? '' : '.'}${token}` : `[${JSON.stringify(token)}]`))
      .join('');
    const sign = op.op === 'remove' ? '-' : op.op === 'replace' ? '~' : op.op === 'test' ? '?' : '+';
    return op.op === 'remove' ? `${sign} ${path}` : `${sign} ${path}: ${JSON.stringify(op.value)}`;
  });
}
