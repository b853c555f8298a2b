import t from 'tap';
import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import { Metrics } from '../../src/server/metrics.ts';
import { decide } from '../../src/engine/decide.ts';
import { EMPTY_CLUSTER } from '../../src/policy/cluster.ts';
import { staticKpoPods } from '../../src/kube/kpoIndex.ts';
import { compilePolicy } from '../../src/policy/registry.ts';
import { makeRequest } from '../helpers/builders.ts';
import { AIRFLOW_SECTION, ALPHA, makeKpoPod, PRODUCTION } from '../helpers/kpo.ts';

type Rule = { alert: string; expr: string; for?: string; labels: { severity: string }; annotations: { summary: string } };

t.test('the alerts query metrics podgate really exports', async (t) => {
  const rule = parse(await readFile(new URL('../../manifests/components/monitoring/prometheusrule.yaml', import.meta.url), 'utf8')) as { spec: { groups: { rules: Rule[] }[] } };
  const rules = rule.spec.groups.flatMap((group) => group.rules);
  t.same(
    rules.map((r) => r.alert),
    ['PodgateDown', 'PodgateWebhookFailingOpen', 'PodgateShedding', 'PodgateUploadsCut', 'PodgateHighLatency', 'PodgateNotReady', 'PodgatePolicyReloadFailed', 'PodgateWatchNotSynced', 'PodgateWatchDisconnected', 'PodgateKpoCollisions'],
  );
  const metrics = new Metrics(() => ({ nodes: { synced: true, connected: true, objects: 1, relists: 1 } }));
  const exported = new Set((await metrics.registry.getMetricsAsJSON()).map((metric) => metric.name));
  for (const r of rules) {
    t.ok(['critical', 'warning', 'info'].includes(r.labels.severity), `${r.alert}: a severity`);
    t.ok(r.annotations.summary.length > 20, `${r.alert}: says what is wrong`);
    for (const name of r.expr.match(/podgate_[a-z_]+/g) ?? []) {
      const family = name.replace(/_(bucket|count|sum)$/, '');
      t.ok(exported.has(family), `${r.alert}: ${name} is exported`);
    }
  }
  // The API server's metrics the alerts read, with their labels as kube-apiserver defines them
  // (k8s.io/apiserver/pkg/admission/metrics, Kubernetes 1.24+).
  const API_SERVER_METRICS: Record<string, readonly string[]> = { apiserver_admission_webhook_fail_open_count: ['name', 'type'] };
  for (const r of rules) {
    for (const name of r.expr.match(/apiserver_[a-z_]+/g) ?? []) {
      const labels = API_SERVER_METRICS[name];
      t.ok(labels, `${r.alert}: ${name} is an API server metric the alerts know`);
      const used = [...r.expr.matchAll(/(?:by \(([^)]*)\))|(?:([a-z_]+)=~?")/g)].flatMap((m) => (m[1] ?? m[2] ?? '').split(',').map((l) => l.trim())).filter(Boolean);
      for (const label of used) t.ok(labels?.includes(label), `${r.alert}: ${name} has a label ${label}`);
    }
  }
  // The webhooks fail open: what the API server records of a failed call is the fail-open counter, and the
  // alert on it must select every podgate webhook by name.
  const webhooks = (await readFile(new URL('../../manifests/base/webhooks.yaml', import.meta.url), 'utf8')).split(/^---$/m).map((doc) => parse(doc) as { webhooks: { name: string; failurePolicy: string }[] });
  const failOpen = rules.find((r) => r.expr.includes('apiserver_admission_webhook_fail_open_count'));
  const selector = new RegExp(`^(?:${/name=~"([^"]+)"/.exec(failOpen?.expr ?? '')?.[1]?.replaceAll('\\\\', '\\') ?? '$^'})$`);
  for (const hook of webhooks.flatMap((doc) => doc.webhooks)) {
    t.equal(hook.failurePolicy, 'Ignore', `${hook.name} fails open`);
    t.match(hook.name, selector, `the fail-open alert selects ${hook.name}`);
  }
  t.notOk(rules.some((r) => r.expr.includes('calling_webhook_error')), 'no alert waits for rejections a fail-open webhook never produces');
  const monitor = parse(await readFile(new URL('../../manifests/components/monitoring/servicemonitor.yaml', import.meta.url), 'utf8')) as { spec: { endpoints: { port: string; path: string; tlsConfig: { ca: { secret: { name: string; key: string } } } }[] } };
  t.match(monitor.spec.endpoints[0], { port: 'metrics', path: '/metrics', tlsConfig: { ca: { secret: { name: 'podgate-tls', key: 'ca.crt' } } } });
});

t.test('the dashboard reads metrics podgate exports, by labels they have, and ships as a Grafana ConfigMap', async (t) => {
  type Panel = { title: string; type: string; description?: string; targets?: { expr: string }[] };
  const dashboard = JSON.parse(await readFile(new URL('../../manifests/components/monitoring/dashboard.json', import.meta.url), 'utf8')) as { uid: string; panels: Panel[]; templating: { list: { name: string; type: string }[] } };
  t.equal(dashboard.uid, 'podgate');
  t.ok(dashboard.templating.list.some((v) => v.name === 'datasource' && v.type === 'datasource'), 'the Prometheus data source is a variable');
  // Every family and label the exporter has, with each labelled series observed once: real reviews through the
  // sample rules (a collision, another environment's delete), a shed request, a policy reload, two watches.
  const metrics = new Metrics(() => ({ nodes: { synced: true, connected: true, objects: 1, relists: 1 }, kpoPods: { synced: true, connected: true, objects: 1, relists: 1 } }));
  const compiled = compilePolicy({ apiVersion: 'podgate.io/v1alpha1', kind: 'Policy', airflow: AIRFLOW_SECTION, rules: [{ name: 'environment-labels', kind: 'kpoEnvironment' }, { name: 'kpo-collisions', kind: 'kpoCollisionGuard' }, { name: 'kpo-ownership', kind: 'kpoOwnership' }] });
  if (!compiled.ok) throw new Error(JSON.stringify(compiled.problems));
  const alphaPod = makeKpoPod({ operatorLabels: { 'podgate.io/environment': 'alpha' } });
  const cluster = { ...EMPTY_CLUSTER, kpoPods: staticKpoPods([{ namespace: 'airflow', name: 'alpha-pod', labels: new Map(Object.entries((alphaPod['metadata'] as { labels: Record<string, string> }).labels)) }]) };
  for (const [phase, request] of [['mutate', makeRequest(makeKpoPod(), ALPHA)], ['validate', makeRequest(makeKpoPod(), PRODUCTION)], ['validate', makeRequest(alphaPod, { ...PRODUCTION, operation: 'DELETE', oldObject: alphaPod })]] as const) {
    metrics.decision(phase, request.operation, 'Pod', decide(phase, request, compiled.policy, cluster), 0.001);
  }
  metrics.rejected('overloaded');
  metrics.policyLoaded(new Date());
  metrics.policyRejected();
  const labelsOf = new Map<string, Set<string>>();
  for (const family of await metrics.registry.getMetricsAsJSON()) {
    labelsOf.set(family.name, new Set(family.values.flatMap((value) => Object.keys(value.labels))));
  }
  t.ok(labelsOf.get('podgate_kpo_collisions_total')?.has('other'), 'the collision was counted (so its labels are known)');
  // Labels Prometheus adds to every target, and the histogram's bucket label.
  const TARGET_LABELS = ['pod', 'namespace', 'instance', 'job', 'le'];
  const API_SERVER_METRICS: Record<string, readonly string[]> = { apiserver_admission_webhook_fail_open_count: ['name', 'type'] };
  const queried = dashboard.panels.filter((panel) => panel.type !== 'row');
  t.ok(queried.length >= 10, `${queried.length} panels`);
  for (const panel of queried) {
    t.ok((panel.description ?? '').length > 20, `${panel.title}: says what it shows`);
    for (const { expr } of panel.targets ?? []) {
      const families = [...expr.matchAll(/\b(podgate_[a-z0-9_]+|apiserver_[a-z_]+)/g)].map((m) => (m[1] ?? '').replace(/_(bucket|count|sum)$/, (suffix) => (m[1]?.startsWith('apiserver_') ? suffix : '')));
      t.ok(families.length > 0 || /\bup\{/.test(expr), `${panel.title}: queries a metric`);
      const used = [...expr.matchAll(/by \(([^)]*)\)|([a-z_]+)(?:=~|!=|=)"/g)].flatMap((m) => (m[1] ?? m[2] ?? '').split(',').map((label) => label.trim())).filter((label) => label !== '' && !TARGET_LABELS.includes(label));
      for (const family of families) {
        const labels = API_SERVER_METRICS[family] ?? labelsOf.get(family);
        t.ok(labels, `${panel.title}: ${family} exists`);
        for (const label of used) t.ok(labels === undefined || [...labels].includes(label), `${panel.title}: ${family} has a label ${label}`);
      }
    }
  }
  const kustomization = parse(await readFile(new URL('../../manifests/components/monitoring/kustomization.yaml', import.meta.url), 'utf8')) as { configMapGenerator: { name: string; files: string[]; options: { labels: Record<string, string> } }[] };
  t.match(kustomization.configMapGenerator[0], { name: 'podgate-dashboard', files: ['podgate.json=dashboard.json'], options: { labels: { grafana_dashboard: '1' } } });
});

t.test('podgate_ready follows readiness', async (t) => {
  let ready = false;
  const metrics = new Metrics(() => ({}), () => ready);
  t.match(await metrics.registry.metrics(), /^podgate_ready 0$/m);
  ready = true;
  t.match(await metrics.registry.metrics(), /^podgate_ready 1$/m);
});
