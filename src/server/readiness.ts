import type { PolicyStatus } from '../config/store.ts';
import type { HealthCheck } from '../lib/health.ts';


export interface Readiness {
  readonly ready: boolean;
  readonly checks: Readonly<Record<string, HealthCheck>>;
}

/** Ready when a policy is in force; a rejected newer file is reported but does not make podgate unready (the last good policy still serves). */
export function policyCheck(status: PolicyStatus): HealthCheck {
  const rejected = status.lastError ? `; a newer file was rejected at ${status.lastError.at.toISOString()}: ${status.lastError.errors.join(' | ')}` : '';
  if (status.generation === 0) return { ok: false, detail: `no valid policy loaded from ${status.path}${rejected}` };
  return { ok: true, detail: `generation ${status.generation} from ${status.path}, loaded ${status.loadedAt?.toISOString() ?? '?'}${rejected}` };
}

export function readiness(checks: Readonly<Record<string, HealthCheck>>): Readiness {
  return { ready: Object.values(checks).every((check) => check.ok), checks };
}
