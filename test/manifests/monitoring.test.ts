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
    ['PodgateDown', 'PodgateWebhookErrors', 'PodgateShedding', 'PodgateHighLatency', 'PodgatePolicyReloadFailed', 'PodgateWatchNotSynced', 'PodgateWatchDisconnected', 'PodgateKpoCollisions'],
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
  const monitor = parse(await readFile(new URL('../../manifests/components/monitoring/servicemonitor.yaml', import.meta.url), 'utf8')) as { spec: { endpoints: { port: string; path: string; tlsConfig: { ca: { secret: { name: string; key: string } } } }[] } };
  t.match(monitor.spec.endpoints[0], { port: 'metrics', path: '/metrics', tlsConfig: { ca: { secret: { name: 'podgate-tls', key: 'ca.crt' } } } });
});
