import t from 'tap';
import { execFile } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parse, parseAllDocuments } from 'yaml';
import { Namespace, Service, ServiceAccount } from 'kubernetes-models/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ClusterRole, ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { PriorityClass } from 'kubernetes-models/scheduling.k8s.io/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { MutatingWebhookConfiguration, ValidatingWebhookConfiguration } from 'kubernetes-models/admissionregistration.k8s.io/v1';
import { parseServeArgs } from '../../src/cli/serve.ts';
import { compilePolicy } from '../../src/policy/registry.ts';
import { parseQuantity, quantityValue } from '../../src/policy/quantity.ts';
import { validatePolicyText } from '../../src/config/validate.ts';
import { auditedCollections } from '../../src/kube/audit.ts';

type Json = Record<string, unknown>;

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BASE = join(ROOT, 'manifests/base');

const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  'v1/Namespace': Namespace,
  'v1/Service': Service,
  'v1/ServiceAccount': ServiceAccount,
  'apps/v1/Deployment': Deployment,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'rbac.authorization.k8s.io/v1/ClusterRole': ClusterRole,
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': ClusterRoleBinding,
  'scheduling.k8s.io/v1/PriorityClass': PriorityClass,
  'admissionregistration.k8s.io/v1/MutatingWebhookConfiguration': MutatingWebhookConfiguration,
  'admissionregistration.k8s.io/v1/ValidatingWebhookConfiguration': ValidatingWebhookConfiguration,
};
const TYPES: Record<string, string> = {
  'v1/Namespace': "import('kubernetes-models/v1/Namespace').INamespace",
  'v1/Service': "import('kubernetes-models/v1/Service').IService",
  'v1/ServiceAccount': "import('kubernetes-models/v1/ServiceAccount').IServiceAccount",
  'apps/v1/Deployment': "import('kubernetes-models/apps/v1/Deployment').IDeployment",
  'policy/v1/PodDisruptionBudget': "import('kubernetes-models/policy/v1/PodDisruptionBudget').IPodDisruptionBudget",
  'rbac.authorization.k8s.io/v1/ClusterRole': "import('kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole').IClusterRole",
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': "import('kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding').IClusterRoleBinding",
  'scheduling.k8s.io/v1/PriorityClass': "import('kubernetes-models/scheduling.k8s.io/v1/PriorityClass').IPriorityClass",
  'admissionregistration.k8s.io/v1/MutatingWebhookConfiguration': "import('kubernetes-models/admissionregistration.k8s.io/v1/MutatingWebhookConfiguration').IMutatingWebhookConfiguration",
  'admissionregistration.k8s.io/v1/ValidatingWebhookConfiguration':
    "import('kubernetes-models/admissionregistration.k8s.io/v1/ValidatingWebhookConfiguration').IValidatingWebhookConfiguration",
};

async function documents(dir: string): Promise<{ file: string; object: Json }[]> {
  const kustomization = parse(await readFile(join(dir, 'kustomization.yaml'), 'utf8')) as { resources: string[] };
  const out: { file: string; object: Json }[] = [];
  for (const file of kustomization.resources) {
    if (file.startsWith('..')) continue;
    for (const document of parseAllDocuments(await readFile(join(dir, file), 'utf8'))) out.push({ file, object: document.toJS() as Json });
  }
  return out;
}

const base = await documents(BASE);
const find = (kind: string) => {
  const found = base.find(({ object }) => object['kind'] === kind)?.object;
  if (!found) throw new Error(`no ${kind} in manifests/base`);
  return found;
};

t.test('every base manifest validates against the Kubernetes API schemas (kubernetes-models)', async (t) => {
  t.ok(base.length >= 10);
  for (const { file, object } of base) {
    const key = `${String(object['apiVersion'])}/${String(object['kind'])}`;
    const Model = MODELS[key];
    if (!Model) {
      t.fail(`${file}: no schema for ${key}`);
      continue;
    }
    t.doesNotThrow(() => {
      new Model(object as never).validate();
    }, `${file}: ${key}`);
  }
});

/** Type-checks manifests as the API types: an object literal with an unknown field fails tsc's excess property check. */
async function typeCheck(objects: readonly Json[], dir: string, name: string): Promise<string> {
  const source = objects.map((object, i) => `export const m${i}: ${TYPES[`${String(object['apiVersion'])}/${String(object['kind'])}`] ?? 'never'} = ${JSON.stringify(object)};`).join('\n');
  const file = join(dir, `${name}.ts`);
  await writeFile(file, `${source}\n`);
  const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
  const args = ['--noEmit', '--strict', '--skipLibCheck', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--types', 'node', '--typeRoots', join(ROOT, 'node_modules/@types'), file];
  return promisify(execFile)(process.execPath, [tsc, ...args], { cwd: ROOT }).then(
    () => '',
    (error: unknown) => (error instanceof Error && 'stdout' in error ? String(error.stdout) : String(error)),
  );
}

t.test('no unknown fields: the manifests type-check as the API types (excess property checks)', async (t) => {
  const dir = t.testdir();
  t.equal(await typeCheck(base.map(({ object }) => object), dir, 'base'), '', 'tsc found no unknown or mistyped fields');
  const broken = JSON.parse(JSON.stringify(find('Deployment')).replace('"readinessProbe"', '"readinesProbe"')) as Json;
  t.match(await typeCheck([broken], dir, 'broken'), /readinesProbe/, 'and a misspelt field is caught');
});

/** A manifest of one kind, validated against its schema and typed by it. */
function typed<T>(Model: new (data: never) => T & { validate(): void }, kind: string): T {
  const model = new Model(structuredClone(find(kind)) as never);
  model.validate();
  return model;
}

t.test('a broken install is caught: the pieces point at each other', async (t) => {
  const kustomization = parse(await readFile(join(BASE, 'kustomization.yaml'), 'utf8')) as { namespace: string; configMapGenerator: { name: string; files: string[] }[] };
  const namespace = typed(Namespace, 'Namespace').metadata?.name ?? '';
  t.equal(kustomization.namespace, namespace, 'kustomize puts everything in the Namespace it creates');
  const service = typed(Service, 'Service');
  const deployment = typed(Deployment, 'Deployment');
  const pod = deployment.spec?.template;
  const container = pod?.spec?.containers[0];
  const servicePort = service.spec?.ports?.[0];
  if (!pod?.spec || !container || !servicePort) throw new Error('incomplete manifests');
  const args = parseServeArgs((container.args ?? []).slice(1), {});
  if (args === 'help') throw new Error('help');
  const containerPort = container.ports?.find((p) => p.name === servicePort.targetPort);
  t.equal(containerPort?.containerPort, args.port, "the Service's targetPort is the port podgate listens on");
  t.equal(servicePort.port, 443);
  t.same(service.spec?.selector, pod.metadata?.labels, 'the Service selects the pods');
  t.same(deployment.spec?.selector.matchLabels, pod.metadata?.labels);
  t.same(typed(PodDisruptionBudget, 'PodDisruptionBudget').spec?.selector?.matchLabels, pod.metadata?.labels);
  t.same([container.readinessProbe?.httpGet?.path, container.livenessProbe?.httpGet?.path], ['/readyz', '/healthz'], 'probes hit real endpoints');
  t.same([container.readinessProbe?.httpGet?.scheme, container.readinessProbe?.httpGet?.port], ['HTTPS', 'https']);

  const mounts = new Map((container.volumeMounts ?? []).map((m) => [m.name, m]));
  const volumes = new Map((pod.spec.volumes ?? []).map((v) => [v.name, v]));
  t.ok(args.configPath.startsWith(`${mounts.get('policy')?.mountPath ?? '?'}/`), '--config is inside the policy mount');
  const generator = kustomization.configMapGenerator[0];
  t.equal(volumes.get('policy')?.configMap?.name, generator?.name, 'the mounted ConfigMap is the generated one');
  t.equal(generator?.files[0], args.configPath.split('/').at(-1), 'whose key is the file podgate reads');
  t.notOk([...mounts.values()].some((m) => m.subPath !== undefined), 'no subPath (it would never see updates)');
  t.ok(args.tls?.certPath.startsWith(`${mounts.get('tls')?.mountPath ?? '?'}/`));
  t.equal(volumes.get('tls')?.secret?.secretName, 'podgate-tls');

  const mutating = typed(MutatingWebhookConfiguration, 'MutatingWebhookConfiguration');
  const validating = typed(ValidatingWebhookConfiguration, 'ValidatingWebhookConfiguration');
  for (const [webhooks, path] of [[mutating.webhooks ?? [], '/mutate'], [validating.webhooks ?? [], '/validate']] as const) {
    for (const webhook of webhooks) {
      const ref = webhook.clientConfig.service;
      t.same([ref?.name, ref?.namespace, ref?.port], [service.metadata?.name, namespace, servicePort.port], `${webhook.name} calls the Service`);
      t.equal(ref?.path, path);
      t.same(webhook.admissionReviewVersions, ['v1']);
      t.equal(webhook.sideEffects, 'None');
      t.ok((webhook.timeoutSeconds ?? 10) <= 10, 'a short timeout');
      t.ok(webhook.failurePolicy === 'Ignore' || webhook.failurePolicy === 'Fail', 'an explicit failurePolicy');
      const excluded = webhook.namespaceSelector?.matchExpressions?.find((e) => e.key === 'kubernetes.io/metadata.name' && e.operator === 'NotIn');
      t.ok(excluded?.values?.includes('kube-system') && excluded.values.includes(namespace), 'kube-system and podgate’s own namespace are never sent');
    }
  }
  // podMetadata rules and nodeDenylist's steer select pods by any labels (the sample's select KubernetesExecutor workers too): an objectSelector would hide pods from them.
  t.same(mutating.webhooks?.map((webhook) => [webhook.name, webhook.objectSelector]), [['mutate.podgate.io', undefined]], 'the mutating webhook sees every pod outside the excluded namespaces');

  const role = typed(ClusterRole, 'ClusterRole');
  t.same(role.rules, [{ apiGroups: [''], resources: ['nodes', 'pods'], verbs: ['list', 'watch'] }], 'RBAC: exactly what the watches use');
  const binding = typed(ClusterRoleBinding, 'ClusterRoleBinding');
  t.same(binding.subjects, [{ kind: 'ServiceAccount', name: pod.spec.serviceAccountName, namespace }]);
  t.equal(binding.roleRef.name, role.metadata?.name);

  const text = await readFile(join(BASE, 'podgate.yaml'), 'utf8');
  const policy = validatePolicyText(text, 'podgate.yaml', compilePolicy);
  if (!policy.ok) throw new Error(policy.errors.join('\n'));
  t.same([...policy.policy.watches].sort(), ['kpoPods', 'nodes'], 'the sample policy needs the node and pod watches the ClusterRole grants');
  const sample = parse(text) as { exclude: { namespaces: string[] } };
  t.ok(sample.exclude.namespaces.includes(namespace), "the sample policy excludes podgate's namespace too");
});

t.test('safe defaults for a component in every pod’s path', async (t) => {
  const deployment = typed(Deployment, 'Deployment');
  const spec = deployment.spec;
  const pod = spec?.template.spec;
  const container = pod?.containers[0];
  if (!spec || !pod || !container) throw new Error('incomplete Deployment');
  t.ok((spec.replicas ?? 1) >= 2, 'two or more replicas');
  t.equal(spec.strategy?.rollingUpdate?.maxUnavailable, 0);
  t.ok(pod.topologySpreadConstraints?.some((c) => c.topologyKey === 'kubernetes.io/hostname'), 'spread across nodes');
  const preStop = container.lifecycle?.preStop?.sleep?.seconds ?? 0;
  t.ok(preStop > 0, 'a preStop delay');
  const args = parseServeArgs((container.args ?? []).slice(1), {});
  if (args === 'help') throw new Error('help');
  t.ok((pod.terminationGracePeriodSeconds ?? 30) >= preStop + args.shutdownTimeoutMs / 1000, 'the grace period covers preStop plus finishing requests in flight');
  t.match(container.resources, { requests: { cpu: String, memory: String }, limits: { memory: String } });
  // V8's heap cap must leave room under the container's limit for code, the young generation and buffers (~60 MiB measured idle outside the heap).
  const nodeOptions = container.env?.find((e) => e.name === 'NODE_OPTIONS')?.value ?? '';
  const oldSpaceMiB = Number(/--max-old-space-size=(\d+)/.exec(nodeOptions)?.[1]);
  const limit = parseQuantity(String(container.resources?.limits?.['memory']));
  if (limit === undefined) throw new Error('limits.memory is not a quantity');
  const limitMiB = quantityValue(limit) / 2 ** 20;
  t.ok(oldSpaceMiB > 0 && oldSpaceMiB + 64 <= limitMiB, `--max-old-space-size=${String(oldSpaceMiB)} leaves headroom under limits.memory ${limit.text}`);
  t.match(nodeOptions, /--max-semi-space-size=\d+/, 'a small young generation (bench: the same flags)');
  t.same(container.securityContext, { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' } });
  t.equal(pod.securityContext?.runAsNonRoot, true);
  t.equal(pod.priorityClassName, typed(PriorityClass, 'PriorityClass').metadata?.name);
  t.equal(typed(PodDisruptionBudget, 'PodDisruptionBudget').spec?.minAvailable, 1);
});

t.test('the overlays reference what exists', async (t) => {
  for (const overlay of ['self-signed', 'cert-manager']) {
    const dir = join(ROOT, 'manifests/overlays', overlay);
    const kustomization = parse(await readFile(join(dir, 'kustomization.yaml'), 'utf8')) as { resources: string[] };
    t.ok(kustomization.resources.includes('../../base'), `${overlay} builds on the base`);
    const entries = await readdir(dir);
    for (const resource of kustomization.resources.filter((r) => !r.startsWith('..'))) t.ok(entries.includes(resource), `${overlay}/${resource} exists`);
  }
  const certManager = await readFile(join(ROOT, 'manifests/overlays/cert-manager/certificates.yaml'), 'utf8');
  type Certificate = { metadata: { name: string }; spec: { secretName?: string; dnsNames?: string[] } };
  const serving = parseAllDocuments(certManager).map((d) => d.toJS() as Certificate).find((o) => o.metadata.name === 'podgate-serving');
  t.equal(serving?.spec.secretName, 'podgate-tls', 'cert-manager writes the Secret the Deployment mounts');
  t.same(serving?.spec.dnsNames, ['podgate', 'podgate.podgate', 'podgate.podgate.svc', 'podgate.podgate.svc.cluster.local']);
});

t.test('the operations port: served by podgate, named by the Service, scraped by the ServiceMonitor, closed to all but monitoring', async (t) => {
  const service = typed(Service, 'Service');
  const container = typed(Deployment, 'Deployment').spec?.template.spec?.containers[0];
  const args = parseServeArgs((container?.args ?? []).slice(1), {});
  if (args === 'help' || container === undefined) throw new Error('no container');
  const metricsPort = service.spec?.ports?.find((p) => p.name === 'metrics');
  t.equal(container.ports?.find((p) => p.name === metricsPort?.targetPort)?.containerPort, args.metricsPort, "the Service's metrics port reaches podgate's --metrics-port");
  const monitor = parse(await readFile(join(ROOT, 'manifests/components/monitoring/servicemonitor.yaml'), 'utf8')) as { spec: { endpoints: { port: string }[] } };
  t.equal(monitor.spec.endpoints[0]?.port, metricsPort?.name, 'the ServiceMonitor scrapes that port by name');

  const policy = parse(await readFile(join(ROOT, 'manifests/components/network-policy/networkpolicy.yaml'), 'utf8')) as Json;
  const model = new NetworkPolicy(policy);
  model.validate();
  t.same(model.spec?.podSelector?.matchLabels, typed(Deployment, 'Deployment').spec?.template.metadata?.labels, 'it selects the podgate pods');
  const ingress = model.spec?.ingress ?? [];
  const openToAll = ingress.filter((rule) => rule.from === undefined).flatMap((rule) => rule.ports?.map((p) => p.port) ?? []);
  t.same(openToAll, [args.port], 'only the webhook port is open to every source (the API server)');
  const monitoring = ingress.find((rule) => rule.from !== undefined);
  t.same(monitoring?.ports?.map((p) => p.port), [args.metricsPort], 'the operations port only from the monitoring namespace');
  const kustomization = parse(await readFile(join(ROOT, 'manifests/components/network-policy/kustomization.yaml'), 'utf8')) as { kind: string; resources: string[] };
  t.same([kustomization.kind, kustomization.resources], ['Component', ['networkpolicy.yaml']]);
});

t.test('the webhook registrations send podgate every kind, operation and subresource the sample policy’s rules judge', async (t) => {
  const loaded = validatePolicyText(await readFile(join(BASE, 'podgate.yaml'), 'utf8'), 'podgate.yaml', compilePolicy);
  if (!loaded.ok) throw new Error(loaded.errors.join('\n'));
  const configuration = { mutate: typed(MutatingWebhookConfiguration, 'MutatingWebhookConfiguration'), validate: typed(ValidatingWebhookConfiguration, 'ValidatingWebhookConfiguration') };
  /** Where the API server serves each group/kind a rule can name (an Eviction is a subresource of pods). */
  const RESOURCE: Record<string, { group: string; resource: string }> = {
    Pod: { group: '', resource: 'pods' },
    ReplicationController: { group: '', resource: 'replicationcontrollers' },
    'apps/Deployment': { group: 'apps', resource: 'deployments' },
    'apps/StatefulSet': { group: 'apps', resource: 'statefulsets' },
    'apps/DaemonSet': { group: 'apps', resource: 'daemonsets' },
    'apps/ReplicaSet': { group: 'apps', resource: 'replicasets' },
    'batch/Job': { group: 'batch', resource: 'jobs' },
    'batch/CronJob': { group: 'batch', resource: 'cronjobs' },
    'policy/Eviction': { group: '', resource: 'pods' },
  };
  /** The operations each subresource has: status and ephemeral containers are updated, an eviction is created. */
  const SUBRESOURCE_OPERATIONS: Record<string, string[]> = { status: ['UPDATE'], ephemeralcontainers: ['UPDATE'], eviction: ['CREATE'] };
  for (const phase of ['mutate', 'validate'] as const) {
    const rules = configuration[phase].webhooks?.flatMap((webhook) => webhook.rules ?? []) ?? [];
    const registered = (group: string, resource: string, operation: string) =>
      rules.some((rule) => (rule.apiGroups ?? []).includes(group) && (rule.resources ?? []).includes(resource) && (rule.operations ?? []).includes(operation as never));
    for (const step of loaded.policy.steps[phase]) {
      for (const kind of step.kinds) {
        const target = RESOURCE[kind];
        if (target === undefined) {
          t.fail(`${step.rule.name}: no resource known for ${kind}`);
          continue;
        }
        const wanted: [string, string][] =
          kind === 'policy/Eviction'
            ? [[`${target.resource}/eviction`, 'CREATE']]
            : [...step.operations].map((operation): [string, string] => [target.resource, operation]);
        if (kind === 'Pod') for (const sub of step.subresources) for (const operation of SUBRESOURCE_OPERATIONS[sub] ?? []) if (sub !== 'eviction') wanted.push([`pods/${sub}`, operation]);
        for (const [resource, operation] of wanted) t.ok(registered(target.group, resource, operation), `${phase}: ${step.rule.name} judges ${resource} ${operation}, and the webhook sends it`);
      }
    }
  }
});

t.test('the audit ClusterRole lets `podgate audit` list what the sample policy audits, and nothing more than list', async (t) => {
  const loaded = validatePolicyText(await readFile(join(BASE, 'podgate.yaml'), 'utf8'), 'podgate.yaml', compilePolicy);
  if (!loaded.ok) throw new Error(loaded.errors.join('\n'));
  const role = new ClusterRole(parse(await readFile(join(ROOT, 'manifests/components/audit/clusterrole.yaml'), 'utf8')) as Json);
  role.validate();
  const granted = new Set((role.rules ?? []).flatMap((rule) => (rule.apiGroups ?? []).flatMap((group) => (rule.resources ?? []).map((resource) => `${group}/${resource}`))));
  const needed = auditedCollections(loaded.policy).map((c) => `${c.group}/${c.resource}`);
  t.ok(needed.length >= 8, `the sample policy audits ${needed.join(', ')}`);
  t.same(needed.filter((resource) => !granted.has(resource)), [], 'every collection the audit lists is granted');
  t.same([...new Set((role.rules ?? []).flatMap((rule) => rule.verbs))], ['list'], 'list only: no get, watch or write');
  const kustomization = parse(await readFile(join(ROOT, 'manifests/components/audit/kustomization.yaml'), 'utf8')) as { kind: string; resources: string[] };
  t.same([kustomization.kind, kustomization.resources], ['Component', ['clusterrole.yaml']]);
});
