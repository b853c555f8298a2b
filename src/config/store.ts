import type { Policy } from '../policy/policy.ts';

/** What /readyz and the logs say about the policy. */
export interface PolicyStatus {
  readonly path: string;
  /** Loads that succeeded, the first one included. */
  readonly generation: number;
  readonly loadedAt: Date | undefined;
  readonly sha256: string | undefined;
  /** The last load that failed after the last good one; cleared by the next good load. */
  readonly lastError: { readonly at: Date; readonly errors: readonly string[] } | undefined;
}

/**
 * Holds the policy in force. Requests read `current` once and decide on that
 * object, so a reload swapping the reference never changes a decision midway.
 */
export class PolicyStore {
  #policy: Policy | undefined;
  #status: PolicyStatus;

  constructor(path: string) {
    this.#status = { path, generation: 0, loadedAt: undefined, sha256: undefined, lastError: undefined };
  }

  get current(): Policy | undefined {
    return this.#policy;
  }

  get status(): PolicyStatus {
    return this.#status;
  }

  accept(policy: Policy, sha256: string, at: Date): void {
    this.#policy = policy;
    this.#status = { ...this.#status, generation: this.#status.generation + 1, loadedAt: at, sha256, lastError: undefined };
  }

  reject(errors: readonly string[], at: Date): void {
    this.#status = { ...this.#status, lastError: { at, errors } };
  }
}
