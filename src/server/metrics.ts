import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry, type CounterConfiguration } from 'prom-client';
import type { Decision } from '../engine/decision.ts';
import type { FindingCounter, Phase } from '../policy/rule.ts';
import { assertNever } from '../lib/assert-never.ts';
import { packageVersion } from './version.ts';
import { OPERATIONS, type Operation } from '../admission/review.ts';

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
  /**
   * Reviews answered (podgate_admission_requests_total), counted in plain arrays
   * on the request path and handed to prom-client only when scraped: prom-client
   * checks and hashes the label set on every inc(), even through labels().
   */
  readonly #requestCounts = new RequestCounts();
  readonly #rules = new Counter({
    name: 'podgate_rule_results_total',
    help: 'Rule results that fired (fail, error, or a patch), by rule, rule kind, result, the action taken (deny, warn, audit; none for a patch) and the named check that found it (none for the rule itself).',
    labelNames: ['rule', 'rule_kind', 'result', 'action', 'check'] as const,
    registers: [this.registry],
  });
  readonly #latency = new Histogram({
    name: 'podgate_admission_duration_seconds',
    help: 'Time from a review being read to its answer being sent, by webhook.',
    labelNames: ['webhook'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  /** One child per webhook, made once (prom-client's own API; ~0.2 us per observation, against ~55 us of CPU per review). */
  readonly #latencyOf = { mutate: this.#latency.labels('mutate'), validate: this.#latency.labels('validate') };
  readonly #rejected = new Counter({
    name: 'podgate_http_rejected_total',
    help: 'Requests answered without a decision: bad input (400, 413), no policy (503), overload (503), uploads cut to make room for a lighter client (evicted).',
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

  readonly #auditViolations = new Gauge({
    name: 'podgate_audit_violations',
    help: 'What the last background audit found in the cluster, per rule (with the rule kind and the action the webhook takes). Absent until an audit has run; only with --audit-interval.',
    labelNames: ['rule', 'rule_kind', 'action'] as const,
    registers: [this.registry],
  });
  readonly #auditRuns = new Counter({
    name: 'podgate_audit_runs_total',
    help: 'Background audits, by result (success, failure: the cluster could not be listed; see the log).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly #auditLastSuccess = new Gauge({
    name: 'podgate_audit_last_success_timestamp_seconds',
    help: 'When the last background audit that listed the whole cluster ended (Unix time).',
    registers: [this.registry],
  });
  readonly #auditSeconds = new Gauge({
    name: 'podgate_audit_duration_seconds',
    help: 'How long the last background audit took.',
    registers: [this.registry],
  });

  constructor(watches: () => Readonly<Record<string, WatchGaugeSource | undefined>> = () => ({}), ready: () => boolean = () => true) {
    collectDefaultMetrics({ register: this.registry, prefix: 'podgate_' });
    // Readiness as a series: a replica that is up (scraped) but not ready gets no reviews, and alerts should say so.
    new Gauge({
      name: 'podgate_ready',
      help: '1 while /readyz passes (a policy in force, watches synced, not shutting down), else 0.',
      registers: [this.registry],
      collect() {
        this.set(Number(ready()));
      },
    });
    // Which podgate a replica runs, for dashboards and for telling replicas of a rollout apart (always 1).
    new Gauge({ name: 'podgate_build_info', help: "podgate's version and the Node.js running it (always 1).", labelNames: ['version', 'nodejs_version'] as const, registers: [this.registry] }).set({ version: packageVersion(), nodejs_version: process.version }, 1);
    countedAtScrape(this.#requestCounts, {
      name: 'podgate_admission_requests_total',
      help: 'Admission reviews answered, by webhook, operation, object kind and decision (allowed, denied).',
      labelNames: ['webhook', 'operation', 'kind', 'decision'] as const,
      registers: [this.registry],
    });
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
    const relists = new Counter({
      name: 'podgate_watch_relists_total',
      help: 'Full lists done by the watch (1 at start; more after 410 Gone or errors). Starts again from 0 when a policy reload restarts the watch.',
      labelNames: ['watch'] as const,
      registers: [this.registry],
      collect() {
        relists.reset();
        for (const [watch, status] of Object.entries(watches())) if (status) relists.inc({ watch }, status.relists);
      },
    });
  }

  decision(webhook: Phase, operation: Operation, kind: string, decision: Decision, seconds: number): void {
    this.#requestCounts.add(webhook, operation, kind, decision.allowed);
    this.#latencyOf[webhook].observe(seconds);
    for (const report of decision.reports) {
      if (report.status === 'pass' && !report.patched) continue;
      const patchedOnly = report.status === 'pass';
      this.#rules.inc({ rule: report.rule, rule_kind: report.kind, result: patchedOnly ? 'patched' : report.status, action: patchedOnly ? 'none' : report.action, check: report.check ?? 'none' });
      if (report.status === 'fail' && report.counter !== undefined) this.#count(report.counter);
    }
  }

  /** The counters a finding feeds besides the per-rule one (FindingCounter). */
  #count(counter: FindingCounter): void {
    switch (counter.counter) {
      case 'kpoCollision':
        this.#collisions.inc({ environment: counter.environment, other: counter.other });
        break;
      case 'crossEnvironment':
        this.#crossEnvironment.inc({ environment: counter.environment, owner: counter.owner, operation: counter.operation });
        break;
      default:
        assertNever(counter);
    }
  }

  rejected(reason: 'bad_request' | 'too_large' | 'no_policy' | 'overloaded' | 'evicted'): void {
    this.#rejected.inc({ reason });
  }

  /** A background audit listed the cluster: its findings replace the last one's (a rule that found nothing goes to 0). */
  auditCompleted(rules: Iterable<{ readonly rule: string; readonly ruleKind: string; readonly action: string; readonly count: number }>, at: Date, seconds: number): void {
    this.#auditViolations.reset();
    for (const { rule, ruleKind, action, count } of rules) this.#auditViolations.set({ rule, rule_kind: ruleKind, action }, count);
    this.#auditRuns.inc({ result: 'success' });
    this.#auditLastSuccess.set(at.getTime() / 1000);
    this.#auditSeconds.set(seconds);
  }

  auditFailed(): void {
    this.#auditRuns.inc({ result: 'failure' });
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

const WEBHOOKS: readonly Phase[] = ['mutate', 'validate'];

/**
 * Answered reviews by webhook, operation, object kind and decision: per kind,
 * one array of webhook × operation × decision counts. A review costs a lookup
 * by its kind and an increment; no label set is built.
 */
class RequestCounts {
  readonly #byKind = new Map<string, number[]>();

  add(webhook: Phase, operation: Operation, kind: string, allowed: boolean): void {
    let counts = this.#byKind.get(kind);
    if (counts === undefined) {
      counts = new Array<number>(WEBHOOKS.length * OPERATIONS.length * 2).fill(0);
      this.#byKind.set(kind, counts);
    }
    const index = (WEBHOOKS.indexOf(webhook) * OPERATIONS.length + OPERATIONS.indexOf(operation)) * 2 + (allowed ? 0 : 1);
    counts[index] = (counts[index] ?? 0) + 1;
  }

  *series(): Generator<{ readonly labels: Record<'webhook' | 'operation' | 'kind' | 'decision', string>; readonly count: number }> {
    for (const [kind, counts] of this.#byKind) {
      for (const [w, webhook] of WEBHOOKS.entries()) {
        for (const [o, operation] of OPERATIONS.entries()) {
          const base = (w * OPERATIONS.length + o) * 2;
          for (const [d, decision] of (['allowed', 'denied'] as const).entries()) {
            const count = counts[base + d] ?? 0;
            if (count > 0) yield { labels: { webhook, operation, kind, decision }, count };
          }
        }
      }
    }
  }
}

/** A counter whose values are kept in `counts` and copied in when Prometheus scrapes. */
function countedAtScrape(counts: RequestCounts, configuration: CounterConfiguration<'webhook' | 'operation' | 'kind' | 'decision'>): Counter<'webhook' | 'operation' | 'kind' | 'decision'> {
  return new Counter({
    ...configuration,
    collect() {
      this.reset();
      for (const { labels, count } of counts.series()) this.inc(labels, count);
    },
  });
}

