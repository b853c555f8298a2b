import { Type, type Static } from '@sinclair/typebox';
import type { Problem } from '../lib/schema.ts';
import { stringAt } from '../lib/json.ts';
import type { UserInfo } from '../admission/review.ts';
import { globMatcher } from './glob.ts';
import { compileLabelSelector, isDnsSubdomain, labelSelectorProblems, labelValueProblem, labelSelectorQuery, LabelSelectorSchema, type LabelPredicate } from './selector.ts';

/**
 * The Airflow installations sharing this cluster (incident 1), declared once at
 * the top of the policy and read by the kpo* rule kinds.
 *
 * Who created a pod is decided from `request.userInfo`, which the API server
 * authenticated; a pod's labels and namespace are written by the client and
 * prove nothing.
 */
const Globs = (description: string) => Type.Optional(Type.Array(Type.String({ minLength: 1 }), { description }));

const EnvironmentSchema = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 63, description: 'The environment, as its pods are labelled: a valid label value.' }),
    usernames: Globs('Usernames or globs: system:serviceaccount:airflow-prod:*'),
    groups: Globs('Groups or globs.'),
    serviceAccountNamespaces: Globs('Namespaces (globs) of the service accounts that create its pods.'),
    extra: Type.Optional(
      Type.Record(Type.String(), Type.Array(Type.String({ minLength: 1 })), {
        description: 'userInfo.extra keys (matched case-insensitively) to value globs: EKS and MWAA identities carry the IAM role ARN under arn.',
      }),
    ),
  },
  { additionalProperties: false },
);

export const AirflowSchema = Type.Object(
  {
    clusterId: Type.String({ minLength: 1, maxLength: 63, description: 'This cluster, as its KPO pods are labelled.' }),
    labelPrefix: Type.Optional(Type.String({ minLength: 1, description: 'Prefix of the label keys podgate writes (default podgate.io).' })),
    kpoPods: Type.Optional({ ...LabelSelectorSchema, description: 'Which pods are KubernetesPodOperator pods (default: kubernetes_pod_operator=True, no airflow-worker label).' }),
    environments: Type.Array(EnvironmentSchema, { minItems: 1, description: 'The installations sharing the cluster; the first whose identities match the creator wins.' }),
    exempt: Type.Optional(
      Type.Object(
        { usernames: Globs('May change or remove the environment label.'), groups: Globs('May change or remove the environment label.') },
        { additionalProperties: false },
      ),
    ),
    controllers: Type.Optional(
      Type.Object(
        {
          usernames: Globs('Create pods from templates (default: system:serviceaccount:kube-system:* and system:kube-controller-manager).'),
          groups: Globs('Create pods from templates.'),
        },
        {
          additionalProperties: false,
          description:
            'Identities that stamp pods out of a controller’s template: their pods keep the environment label the template has, because the controller object was judged by its own creator.',
        },
      ),
    ),
  },
  { additionalProperties: false, description: 'Airflow installations sharing this cluster, for the kpo* rule kinds.' },
);
export type AirflowConfig = Static<typeof AirflowSchema>;

/** The compiled form rules read. */
export interface Airflow {
  readonly clusterId: string;
  /** The environments' names, in policy order. */
  readonly environments: readonly string[];
  readonly environmentKey: string;
  readonly clusterIdKey: string;
  /** Annotation listing the label keys podgate added itself (they are not in the operator's lookup selector). */
  readonly injectedKey: string;
  readonly isKpoPod: LabelPredicate;
  /** What the watch of live KPO pods lists and keeps (see KpoPodSelection). */
  readonly kpoPodSelection: KpoPodSelection;
  /** The environment whose identities match the request's user, if any. */
  readonly environmentOf: (user: UserInfo) => string | undefined;
  readonly isExempt: (user: UserInfo) => boolean;
  /** Identities that create pods from controllers' templates (see AirflowSchema.controllers). */
  readonly isController: (user: UserInfo) => boolean;
}

/** The kube-controller-manager, as its own identity or as one service account per controller (--use-service-account-credentials). */
const DEFAULT_CONTROLLERS = ['system:serviceaccount:kube-system:*', 'system:kube-controller-manager'];

const KPO_DEFAULT_SELECTOR = {
  matchLabels: { kubernetes_pod_operator: 'True' },
  matchExpressions: [{ key: 'airflow-worker', operator: 'DoesNotExist' as const }],
};

const SERVICE_ACCOUNT_PREFIX = 'system:serviceaccount:';
const DEFAULT_LABEL_PREFIX = 'podgate.io';

/** The caller as the matchers read it; the service account's namespace is parsed once, not once per environment. */
interface Caller {
  readonly user: UserInfo;
  readonly name: string;
  readonly serviceAccountNamespace: string | undefined;
}

function callerOf(user: UserInfo): Caller {
  const name = user.username ?? '';
  return { user, name, serviceAccountNamespace: serviceAccountNamespace(name) };
}

/** `airflow-prod` for `system:serviceaccount:airflow-prod:airflow-worker`; undefined for any other username. */
function serviceAccountNamespace(username: string): string | undefined {
  if (!username.startsWith(SERVICE_ACCOUNT_PREFIX)) return undefined;
  const start = SERVICE_ACCOUNT_PREFIX.length;
  const colon = username.indexOf(':', start);
  const wellFormed = colon > start && colon < username.length - 1 && !username.includes(':', colon + 1);
  return wellFormed ? username.slice(start, colon) : undefined;
}

function identityMatcher(environment: Static<typeof EnvironmentSchema>): (caller: Caller) => boolean {
  const username = globMatcher(environment.usernames ?? []);
  const group = globMatcher(environment.groups ?? []);
  const namespaceListed = globMatcher(environment.serviceAccountNamespaces ?? []);
  // userInfo.extra keys are matched case-insensitively: the API server lower-cases them when they come through
  // impersonation (Impersonate-Extra-<key> is an HTTP header), so `canonicalArn` arrives as `canonicalarn`.
  const extra = new Map(Object.entries(environment.extra ?? {}).map(([key, values]) => [key.toLowerCase(), globMatcher(values)]));
  const extraMatches = (user: UserInfo): boolean => {
    if (extra.size === 0 || user.extra === undefined) return false;
    for (const [key, values] of Object.entries(user.extra)) {
      const matches = extra.get(key.toLowerCase());
      if (matches !== undefined && values.some(matches)) return true;
    }
    return false;
  };
  return ({ user, name, serviceAccountNamespace: namespace }) =>
    username(name) || (user.groups ?? []).some(group) || (namespace !== undefined && namespaceListed(namespace)) || extraMatches(user);
}

export function compileAirflow(config: AirflowConfig): { airflow: Airflow } | { problems: Problem[] } {
  const problems: Problem[] = [];
  const labelValue = (value: string, path: (string | number)[]) => {
    const problem = labelValueProblem(value, path);
    if (problem) problems.push(problem);
  };
  labelValue(config.clusterId, ['clusterId']);
  const seen = new Set<string>();
  config.environments.forEach((environment, index) => {
    labelValue(environment.name, ['environments', index, 'name']);
    if (seen.has(environment.name)) problems.push({ path: ['environments', index, 'name'], message: `duplicate environment "${environment.name}"` });
    seen.add(environment.name);
    const identifies = [environment.usernames, environment.groups, environment.serviceAccountNamespaces].some((list) => (list?.length ?? 0) > 0) || Object.keys(environment.extra ?? {}).length > 0;
    if (!identifies) problems.push({ path: ['environments', index], message: `environment "${environment.name}" has no usernames, groups, serviceAccountNamespaces or extra to recognise its pods' creator by` });
  });
  const prefix = config.labelPrefix ?? DEFAULT_LABEL_PREFIX;
  if (!isDnsSubdomain(prefix)) problems.push({ path: ['labelPrefix'], message: `"${prefix}" is not a DNS subdomain, as a label key prefix must be` });
  if (config.kpoPods) problems.push(...labelSelectorProblems(config.kpoPods).map((p) => ({ ...p, path: ['kpoPods', ...p.path] })));
  if (problems.length > 0) return { problems };

  const matchers = config.environments.map((environment) => ({ name: environment.name, matches: identityMatcher(environment) }));
  const exemptUser = globMatcher(config.exempt?.usernames ?? []);
  const exemptGroup = globMatcher(config.exempt?.groups ?? []);
  const controllerUser = globMatcher(config.controllers?.usernames ?? DEFAULT_CONTROLLERS);
  const controllerGroup = globMatcher(config.controllers?.groups ?? []);
  const isKpoPod = compileLabelSelector(config.kpoPods ?? KPO_DEFAULT_SELECTOR);
  return {
    airflow: {
      clusterId: config.clusterId,
      environments: config.environments.map((environment) => environment.name),
      environmentKey: `${prefix}/environment`,
      clusterIdKey: `${prefix}/cluster-id`,
      injectedKey: `${prefix}/injected-labels`,
      isKpoPod,
      kpoPodSelection: { query: labelSelectorQuery(config.kpoPods ?? KPO_DEFAULT_SELECTOR), selects: isKpoPod, keptLabels: [...KPO_LOOKUP_LABELS, `${prefix}/environment`], injectedKey: `${prefix}/injected-labels` },
      environmentOf: (user) => {
        const caller = callerOf(user);
        for (const environment of matchers) if (environment.matches(caller)) return environment.name;
        return undefined;
      },
      isExempt: (user) => exemptUser(user.username ?? '') || (user.groups ?? []).some(exemptGroup),
      isController: (user) => controllerUser(user.username ?? '') || (user.groups ?? []).some(controllerGroup),
    },
  };
}

/**
 * Which pods the KPO pod watch lists (`query`, in the API server's labelSelector
 * syntax) and the labels its cache always keeps whatever else a pod carries: the
 * ones the collision check reads by name.
 */
export interface KpoPodSelection {
  readonly query: string;
  /** The same selection as a predicate (for pods podgate admits before the watch sees them). */
  readonly selects: LabelPredicate;
  readonly keptLabels: readonly string[];
  /** The annotation naming the labels podgate added to a pod. */
  readonly injectedKey: string;
}

/** Labels KubernetesPodOperator itself puts in its lookup selector besides the operator's own labels. */
export const KPO_TASK_LABELS = ['dag_id', 'task_id', 'run_id', 'map_index'] as const;
/** Labels KPO sets on its pods that are not in its lookup selector. */
export const KPO_UNSELECTED_LABELS = ['try_number', 'airflow_version', 'airflow_kpo_in_cluster', 'already_checked'] as const;
/** Labels the collision check reads on every cached pod by name: the task instance, and what takes a pod out of lookups. */
const KPO_LOOKUP_LABELS = [...KPO_TASK_LABELS, 'kubernetes_pod_operator', 'already_checked', 'airflow-worker'] as const;

/**
 * The task-instance identity of a KPO pod: namespace, dag, task, run, map index.
 * Every pod a KPO lookup can match shares it with the pod being created, so the
 * pod index is keyed by it (O(1) lookup whatever the number of pods).
 */
export function kpoIdentity(namespace: string, labels: ReadonlyMap<string, string>): string | undefined {
  const dag = labels.get('dag_id');
  const task = labels.get('task_id');
  const run = labels.get('run_id');
  if (dag === undefined || task === undefined || run === undefined) return undefined;
  return `${namespace}\u0000${dag}\u0000${task}\u0000${run}\u0000${labels.get('map_index') ?? ''}`;
}

/** The problem for a kpo* rule in a policy without the airflow section. */
export function missingAirflow(kind: string): { readonly problems: readonly Problem[] } {
  return { problems: [{ path: ['kind'], message: `${kind} needs the airflow section at the top of the policy (clusterId and environments)` }] };
}

/**
 * Metadata keys no rule but the kpo* kinds may write on a pod: the labels KubernetesPodOperator
 * sets and its lookups read (adding `airflow-worker` or `already_checked` hides a pod from them,
 * and from the collision check), and podgate's own attribution keys. Without the airflow
 * section, the keys under the default prefix.
 */
export function reservedMetadataKeys(airflow: Airflow | undefined): { readonly labels: ReadonlySet<string>; readonly annotations: ReadonlySet<string> } {
  const environmentKey = airflow?.environmentKey ?? `${DEFAULT_LABEL_PREFIX}/environment`;
  const clusterIdKey = airflow?.clusterIdKey ?? `${DEFAULT_LABEL_PREFIX}/cluster-id`;
  const injectedKey = airflow?.injectedKey ?? `${DEFAULT_LABEL_PREFIX}/injected-labels`;
  return { labels: new Set([...KPO_LOOKUP_LABELS, ...KPO_UNSELECTED_LABELS, environmentKey, clusterIdKey]), annotations: new Set([injectedKey]) };
}

const NONE_INJECTED: ReadonlySet<string> = new Set();

/** Label keys podgate added to this pod itself (from its annotation): not part of the operator's lookup selector. */
export function injectedKeys(airflow: Airflow, pod: unknown): ReadonlySet<string> {
  const listed = stringAt(pod, 'metadata', 'annotations', airflow.injectedKey);
  return listed === undefined ? NONE_INJECTED : new Set(listed.split(',').filter((key) => key !== ''));
}

/**
 * The injected-labels annotation after podgate adds `added` to a pod: the keys an earlier
 * rule (or invocation) recorded, then these. Every label a webhook adds must be listed, or the
 * collision check would take it for part of the operator's lookup selector.
 */
export function injectedAnnotation(airflow: Airflow, pod: unknown, added: readonly string[]): Record<string, string> {
  const keys = new Set([...injectedKeys(airflow, pod), ...added]);
  return { [airflow.injectedKey]: [...keys].join(',') };
}
