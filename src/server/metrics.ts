import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Decision } from '../admission/decision.ts';
import type { Phase } from '../policy/rule.ts';

/** Seconds; resolves the sub-millisecond answers of a healthy podgate and the seconds of a sick one. */
const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export interface WatchGaugeSource {
  readonly synced: boolean;
  readonly connected: boolean;
  readonly objects: number;
  readonly relists: number;
}

/**
 * podgate's Prometheus metrics, on a registry of its own (one per app, so tests
 * can run several). Names follow Prometheus conventions: _total counters,
 * _seconds durations, base units.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly #requests = new Counter({
    name: 'podgate_admission_requests_total',
    help: 'Admission reviews answered, by webhook, operation, object kind and decision (allowed, denied).',
    labelNames: ['webhook', 'operation', 'kind', 'decision'] as const,
    registers: [this.registry],
  });
  readonly #rules = new Counter({
    name: 'podgate_rule_results_total',
    help: 'Rule results that fired (fail, error, or a patch), by rule, rule kind, result and effective action.',
    labelNames: ['rule', 'rule_kind', 'result', 'action'] as const,
    registers: [this.registry],
  });
  readonly #latency = new Histogram({
    name: 'podgate_admission_duration_seconds',
    help: 'Time from a review being read to its answer being sent, by webhook.',
    labelNames: ['webhook'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly #rejected = new Counter({
    name: 'podgate_http_rejected_total',
    help: 'Requests answered without a decision: bad input (400, 413), no policy (503), overload (503).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly #collisions = new Counter({
    name: 'podgate_kpo_collisions_total',
    help: 'KubernetesPodOperator pods refused for colliding with a live pod of another environment, by the creating and the other environment.',
    labelNames: ['environment', 'other'] as const,
    registers: [this.registry],
  });
  readonly #crossEnvironment = new Counter({
    name: 'podgate_cross_environment_attempts_total',
    help: "Attempts to create, modify or delete another environment's KPO pods (or claim its label), by requesting environment, owner and operation.",
    labelNames: ['environment', 'owner', 'operation'] as const,
    registers: [this.registry],
  });
  readonly #reloads = new Counter({
    name: 'podgate_policy_reloads_total',
    help: 'Policy loads, by result (success, failure).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly #lastGoodReload = new Gauge({
    name: 'podgate_policy_last_success_timestamp_seconds',
    help: 'When the policy in force was loaded (Unix time).',
    registers: [this.registry],
  });
  readonly #policyValid = new Gauge({
    name: 'podgate_policy_last_load_success',
    help: '1 if the last attempt to load the policy file succeeded, 0 if a newer file was rejected (the last good policy stays in force).',
    registers: [this.registry],
  });

  constructor(watches: () => Readonly<Record<string, WatchGaugeSource | undefined>> = () => ({})) {
    collectDefaultMetrics({ register: this.registry, prefix: 'podgate_' });
    const perWatch = (name: string, help: string, read: (status: WatchGaugeSource) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['watch'] as const,
        registers: [this.registry],
        collect() {
          this.reset();
          for (const [watch, status] of Object.entries(watches())) if (status) this.set({ watch }, read(status));
        },
      });
    perWatch('podgate_watch_synced', '1 once the watch has listed (its cache is usable), else 0.', (s) => Number(s.synced));
    perWatch('podgate_watch_connected', '1 while the watch connection is open, 0 while it reconnects.', (s) => Number(s.connected));
    perWatch('podgate_watch_cached_objects', 'Objects in the watch cache.', (s) => s.objects);
    perWatch('podgate_watch_relists', 'Full lists done by the watch (1 at start; more after 410 Gone or errors).', (s) => s.relists);
  }

  /**
   * The label sets every request touches, bound once: prom-client hashes a label
   * object on every inc/observe, a cost paid per review otherwise. As bounded as
   * the series themselves (one per label set prom-client already keeps).
   */
  readonly #requestSeries = new Map<string, Counter.Internal>();
  readonly #latencySeries = { mutate: this.#latency.labels({ webhook: 'mutate' }), validate: this.#latency.labels({ webhook: 'validate' }) };

  decision(webhook: Phase, operation: string, kind: string, decision: Decision, seconds: number): void {
    const verdict = decision.allowed ? 'allowed' : 'denied';
    const key = `${webhook} ${operation} ${kind} ${verdict}`;
    let requests = this.#requestSeries.get(key);
    if (requests === undefined) {
      requests = this.#requests.labels({ webhook, operation, kind, decision: verdict });
      this.#requestSeries.set(key, requests);
    }
    requests.inc();
    this.#latencySeries[webhook].observe(seconds);
    for (const report of decision.reports) {
      if (report.status === 'pass' && !report.patched) continue;
      this.#rules.inc({ rule: report.rule, rule_kind: report.kind, result: report.status === 'pass' ? 'patched' : report.status, action: report.action });
      if (report.status !== 'fail' || report.tags === undefined) continue;
      const { environment = 'none', other, owner, operation: op } = report.tags;
      if (report.kind === 'kpoCollisionGuard' && other !== undefined) this.#collisions.inc({ environment, other });
      if (owner !== undefined) this.#crossEnvironment.inc({ environment, owner, operation: op ?? operation });
    }
  }

  rejected(reason: 'bad_request' | 'too_large' | 'no_policy' | 'overloaded'): void {
    this.#rejected.inc({ reason });
  }

  policyLoaded(at: Date): void {
    this.#reloads.inc({ result: 'success' });
    this.#lastGoodReload.set(at.getTime() / 1000);
    this.#policyValid.set(1);
  }

  policyRejected(): void {
    this.#reloads.inc({ result: 'failure' });
    this.#policyValid.set(0);
  }
}
