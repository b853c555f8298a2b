import t from 'tap';
import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import { Metrics } from '../../src/server/metrics.ts';

type Rule = { alert: string; expr: string; for?: string; labels: { severity: string }; annotations: { summary: string } };

t.test('the alerts query metrics podgate really exports', async (t) => {
  const rule = parse(await readFile(new URL('../../manifests/components/monitoring/prometheusrule.yaml', import.meta.url), 'utf8')) as { spec: { groups: { rules: Rule[] }[] } };
  const rules = rule.spec.groups.flatMap((group) => group.rules);
  t.same(
    rules.map((r) => r.alert),
    ['PodgateDown', 'PodgateWebhookFailingOpen', 'PodgateShedding', 'PodgateHighLatency', 'PodgatePolicyReloadFailed', 'PodgateWatchNotSynced', 'PodgateWatchDisconnected', 'PodgateKpoCollisions'],
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
