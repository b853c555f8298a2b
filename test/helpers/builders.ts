import type { AdmissionRequest, AdmissionReview, Operation } from '../../src/admission/review.ts';

type Json = Record<string, unknown>;

/** The group/version/kind/resource of the objects tests review. */
const KINDS: Record<string, { group: string; version: string; resource: string }> = {
  Pod: { group: '', version: 'v1', resource: 'pods' },
  Deployment: { group: 'apps', version: 'v1', resource: 'deployments' },
  StatefulSet: { group: 'apps', version: 'v1', resource: 'statefulsets' },
  DaemonSet: { group: 'apps', version: 'v1', resource: 'daemonsets' },
  ReplicaSet: { group: 'apps', version: 'v1', resource: 'replicasets' },
  Job: { group: 'batch', version: 'v1', resource: 'jobs' },
  CronJob: { group: 'batch', version: 'v1', resource: 'cronjobs' },
  ReplicationController: { group: '', version: 'v1', resource: 'replicationcontrollers' },
  ConfigMap: { group: '', version: 'v1', resource: 'configmaps' },
};

let counter = 0;

/** An AdmissionRequest as the API server sends it for `object` (or `oldObject` on DELETE). */
export function makeRequest(
  object: Json,
  options: { operation?: Operation; oldObject?: Json; username?: string; groups?: string[]; extra?: Record<string, string[]>; subResource?: string; uid?: string } = {},
): AdmissionRequest {
  const kind = String(object['kind']);
  const gvr = KINDS[kind] ?? { group: '', version: 'v1', resource: `${kind.toLowerCase()}s` };
  const metadata = (object['metadata'] ?? {}) as Json;
  const operation = options.operation ?? 'CREATE';
  counter += 1;
  return {
    uid: options.uid ?? `00000000-0000-4000-8000-${String(counter).padStart(12, '0')}`,
    kind: { group: gvr.group, version: gvr.version, kind },
    resource: { group: gvr.group, version: gvr.version, resource: gvr.resource },
    requestKind: { group: gvr.group, version: gvr.version, kind },
    ...(options.subResource ? { subResource: options.subResource } : {}),
    ...(typeof metadata['name'] === 'string' ? { name: metadata['name'] } : {}),
    namespace: typeof metadata['namespace'] === 'string' ? metadata['namespace'] : 'default',
    operation,
    userInfo: {
      username: options.username ?? 'system:serviceaccount:airflow:airflow-worker',
      uid: 'e3c1f1a0-0000-4000-8000-000000000001',
      groups: options.groups ?? ['system:serviceaccounts', 'system:serviceaccounts:airflow', 'system:authenticated'],
      ...(options.extra ? { extra: options.extra } : {}),
    },
    ...(operation === 'DELETE' ? { oldObject: object } : { object, ...(options.oldObject ? { oldObject: options.oldObject } : {}) }),
    dryRun: false,
  };
}

export function makeReview(request: AdmissionRequest, apiVersion: AdmissionReview['apiVersion'] = 'admission.k8s.io/v1'): AdmissionReview {
  return { apiVersion, kind: 'AdmissionReview', request };
}

export interface ContainerSpec {
  name: string;
  requests?: Record<string, string>;
  limits?: Record<string, string>;
}

function container(spec: ContainerSpec): Json {
  const resources: Json = {};
  if (spec.requests) resources['requests'] = spec.requests;
  if (spec.limits) resources['limits'] = spec.limits;
  return {
    name: spec.name,
    image: 'apache/airflow:3.1.3',
    resources,
    terminationMessagePath: '/dev/termination-log',
    terminationMessagePolicy: 'File',
    imagePullPolicy: 'IfNotPresent',
  };
}

export interface PodOptions {
  name?: string;
  generateName?: string;
  namespace?: string;
  labels?: Record<string, string>;
  containers?: ContainerSpec[];
  initContainers?: ContainerSpec[];
  podResources?: Json;
  spec?: Json;
}

/** A pod spec with the defaults the API server has filled in by the time a webhook sees it. */
export function makePodSpec(options: PodOptions = {}): Json {
  return {
    ...(options.initContainers ? { initContainers: options.initContainers.map(container) } : {}),
    containers: (options.containers ?? [{ name: 'base' }]).map(container),
    ...(options.podResources ? { resources: options.podResources } : {}),
    restartPolicy: 'Never',
    terminationGracePeriodSeconds: 30,
    dnsPolicy: 'ClusterFirst',
    serviceAccountName: 'default',
    securityContext: {},
    schedulerName: 'default-scheduler',
    enableServiceLinks: true,
    preemptionPolicy: 'PreemptLowerPriority',
    priority: 0,
    ...options.spec,
  };
}

export function makePod(options: PodOptions = {}): Json {
  const metadata: Json = { namespace: options.namespace ?? 'airflow' };
  if (options.generateName) metadata['generateName'] = options.generateName;
  else metadata['name'] = options.name ?? 'export-action-log-4devg7t1';
  if (options.labels) metadata['labels'] = options.labels;
  return { apiVersion: 'v1', kind: 'Pod', metadata, spec: makePodSpec(options) };
}

const TEMPLATE_HOLDERS: Record<string, (template: Json) => Json> = {
  Deployment: (template) => ({ replicas: 1, selector: { matchLabels: template['metadata'] && (template['metadata'] as Json)['labels'] }, template }),
  StatefulSet: (template) => ({ serviceName: 'x', selector: { matchLabels: (template['metadata'] as Json)['labels'] }, template }),
  DaemonSet: (template) => ({ selector: { matchLabels: (template['metadata'] as Json)['labels'] }, template }),
  ReplicaSet: (template) => ({ selector: { matchLabels: (template['metadata'] as Json)['labels'] }, template }),
  ReplicationController: (template) => ({ selector: (template['metadata'] as Json)['labels'], template }),
  Job: (template) => ({ template }),
  CronJob: (template) => ({ schedule: '*/5 * * * *', jobTemplate: { spec: { template } } }),
};

/** A controller of `kind` whose pod template is built like makePod. */
export function makeController(kind: string, name: string, options: PodOptions = {}): Json {
  const holder = TEMPLATE_HOLDERS[kind];
  if (holder === undefined) throw new Error(`no template holder for ${kind}`);
  const template = { metadata: { labels: options.labels ?? {} }, spec: makePodSpec({ ...options, spec: { restartPolicy: kind === 'Job' || kind === 'CronJob' ? 'OnFailure' : 'Always', ...options.spec } }) };
  const group = KINDS[kind]?.group ?? '';
  return {
    apiVersion: group === '' ? 'v1' : `${group}/v1`,
    kind,
    metadata: { name, namespace: options.namespace ?? 'airflow', labels: options.labels ?? {} },
    spec: holder(template),
  };
}
