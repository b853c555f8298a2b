import { Type, type Static } from '@sinclair/typebox';
import type { Problem } from '../../lib/schema.ts';
import { at, field, isRecord, quoted } from '../../lib/json.ts';
import { globMatcher, type NameMatcher } from '../glob.ts';
import { compareQuantities, parseQuantity, roundUpToMilli, type Quantity } from '../quantity.ts';
import { listing, reasonAndFix } from '../hint.ts';
import { defineRuleKind, fail, pass, ruleSchema, skip, type RuleInput, type RuleResult } from '../rule.ts';
import { bringsNewPodSpec, containersOf, WORKLOAD_KINDS, workloadOf } from '../workload.ts';

/**
 * resourceFloors: per-container minimum requests and limits (incident 2: the
 * Airflow api-server crash-looped under limits set too low). Judges Pods and the
 * pod templates of controllers, so `helm upgrade` fails at once.
 */
// A number too, as Kubernetes manifests take `cpu: 1`.
const Floors = Type.Record(Type.String(), Type.Union([Type.String(), Type.Number()]), {
  description: 'Resource name (cpu, memory, ephemeral-storage, nvidia.com/gpu, …) to the smallest quantity allowed.',
});

const schema = ruleSchema('resourceFloors', 'Minimum resource requests and limits for the containers of the pods a rule selects.', {
  containers: Type.Optional(
    Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'Container names or globs to check (default: all).' }),
  ),
  initContainers: Type.Optional(Type.Boolean({ default: false, description: 'Also check init containers (default false).' })),
  requests: Type.Optional(Floors),
  limits: Type.Optional(Floors),
  reason: Type.Optional(Type.String({ minLength: 1, description: 'Why the floor exists, said before the fix in every message.' })),
  helmValues: Type.Optional(
    Type.String({ minLength: 1, description: 'Where the Helm chart takes these resources from, e.g. apiServer.resources; names the value to raise.' }),
  ),
});
type Config = Static<typeof schema>;

type ResourceKind = 'requests' | 'limits';
type FloorList = readonly { readonly resourceKind: ResourceKind; readonly resource: string; readonly floor: Quantity }[];

/** A qualified resource name: `cpu`, `example.com/foo` (the API server's own check). */
const RESOURCE_NAME = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

function parseFloors(config: Config): { floors: FloorList; problems: Problem[] } {
  const floors: { resourceKind: ResourceKind; resource: string; floor: Quantity }[] = [];
  const problems: Problem[] = [];
  for (const resourceKind of ['requests', 'limits'] as const) {
    for (const [resource, value] of Object.entries(config[resourceKind] ?? {})) {
      const path = [resourceKind, resource];
      const text = String(value);
      const floor = parseQuantity(text);
      if (!RESOURCE_NAME.test(resource)) problems.push({ path, message: `"${resource}" is not a resource name`, atKey: true });
      else if (floor === undefined) problems.push({ path, message: `"${text}" is not a Kubernetes quantity (examples: 500m, 2, 4Gi, 1.5G)` });
      else floors.push({ resourceKind, resource, floor });
    }
  }
  if (floors.length === 0 && problems.length === 0) problems.push({ path: [], message: 'set at least one floor under requests or limits' });
  return { floors, problems };
}

/**
 * What a container will really run with for one resource: its own value; a
 * request left out where a limit is set defaults to the limit (as the API
 * server defaults it); and, for a container that sets neither, the pod-level
 * `spec.resources`.
 */
function effectiveValue(containerResources: unknown, podResources: unknown, resourceKind: ResourceKind, resource: string) {
  const own = ownValue(containerResources, resourceKind, resource);
  if (own !== undefined) return own;
  const setsAny = ownValue(containerResources, 'requests', resource) ?? ownValue(containerResources, 'limits', resource);
  if (setsAny !== undefined) return undefined;
  const podLevel = ownValue(podResources, resourceKind, resource);
  return podLevel === undefined ? undefined : { ...podLevel, source: 'from the pod-level spec.resources' };
}

function ownValue(resources: unknown, resourceKind: ResourceKind, resource: string): { raw: unknown; source?: string } | undefined {
  const direct = field(at(resources, resourceKind), resource);
  if (direct !== undefined) return { raw: direct };
  if (resourceKind !== 'requests') return undefined;
  const limit = field(at(resources, 'limits'), resource);
  return limit === undefined ? undefined : { raw: limit, source: 'defaulted from its limit' };
}

function evaluate(config: Config, floors: FloorList, selects: NameMatcher, { request, object }: RuleInput): RuleResult {
  const workload = workloadOf(request, object);
  if (workload === undefined || !bringsNewPodSpec(request, workload)) return skip();
  const lists = config.initContainers ? (['initContainers', 'containers'] as const) : (['containers'] as const);
  const podResources = at(workload.podSpec, 'resources');

  const findings: string[] = [];
  const toRaise = new Set<string>();
  const toCorrect = new Set<string>();
  for (const { list, name, container } of containersOf(workload.podSpec, lists)) {
    if (!selects(name)) continue;
    const label = `${list === 'initContainers' ? 'init container' : 'container'} "${name}"`;
    const resources = at(container, 'resources');
    for (const { resourceKind, resource, floor } of floors) {
      const path = `${resourceKind}.${resource}`;
      const found = effectiveValue(isRecord(resources) ? resources : undefined, podResources, resourceKind, resource);
      const finding = judge(label, path, floor, found);
      if (finding === undefined) continue;
      findings.push(finding.text);
      (finding.malformed ? toCorrect : toRaise).add(config.helmValues ? `${config.helmValues}.${path}` : `resources.${path} of ${label}`);
    }
  }
  if (findings.length === 0) return pass();
  // A value Kubernetes cannot read is misspelt, not too small: its fix is spelling it as a quantity.
  const fixes = [
    ...(toRaise.size > 0 ? [`${config.helmValues ? 'raise' : 'set'} ${listing([...toRaise])}${config.helmValues ? ' in your Helm values' : ' to at least the floor'}`] : []),
    ...(toCorrect.size > 0 ? [`write ${listing([...toCorrect])} as a Kubernetes quantity (500m, 2, 4Gi)${config.helmValues ? ' in your Helm values' : ''}`] : []),
  ];
  const fix = fixes.join(', and ');
  return fail(findings, reasonAndFix(toRaise.size > 0 ? config.reason : undefined, fix));
}

function judge(label: string, path: string, floor: Quantity, found: { raw: unknown; source?: string } | undefined): { text: string; malformed?: true } | undefined {
  if (found === undefined) return { text: `${label} sets no ${path} (the floor is ${floor.text})` };
  // Surrounding spaces as the API server reads a quantity (it trims them); a bare number as its decimal text.
  const parsed = typeof found.raw === 'string' ? parseQuantity(found.raw.trim()) : typeof found.raw === 'number' ? parseQuantity(String(found.raw)) : undefined;
  const value = parsed !== undefined && path.endsWith('.cpu') ? roundUpToMilli(parsed) : parsed;
  if (value === undefined) return { text: `${label} ${path} ${quoted(found.raw)} is not a valid Kubernetes quantity`, malformed: true };
  if (compareQuantities(value, floor) >= 0) return undefined;
  return { text: `${label} ${path} ${value.text}${found.source ? ` (${found.source})` : ''} is below the floor ${floor.text}` };
}

export const resourceFloors = defineRuleKind({
  kind: 'resourceFloors',
  schema,
  build(config) {
    const { floors, problems } = parseFloors(config);
    if (problems.length > 0) return { problems };
    const selects = globMatcher(config.containers ?? ['*']); // compiled once, not per request
    const judge = (input: RuleInput) => evaluate(config, floors, selects, input);
    return { kinds: WORKLOAD_KINDS, validate: judge, audit: judge };
  },
});
