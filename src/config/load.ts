import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import type { Logger } from 'pino';
import { validatePolicyText, type PolicyResult } from './validate.ts';
import type { PolicyStore } from './store.ts';
import type { CompiledPolicy, Policy } from '../policy/policy.ts';
import { watchFiles } from '../lib/watch.ts';

export type PolicyCompiler = (document: unknown) => CompiledPolicy;

/**
 * The largest policy file read: a ConfigMap holds at most 1 MiB, and a real policy
 * is a few KiB. Parsing is linear, but a bigger file is not a policy anyone wrote.
 */
export const MAX_POLICY_BYTES = 1024 * 1024;

/**
 * Reads and checks a policy file. Whatever goes wrong (the file cannot be read, is too
 * large, the YAML parser or a rule's compiler throws) comes back as error lines, never
 * as an exception: a reload that throws would otherwise be dropped without a word.
 */
export async function readPolicyFile(path: string, compile: PolicyCompiler): Promise<PolicyResult & { readonly sha256?: string }> {
  let text: string;
  try {
    // The size is checked before reading: a file of a gigabyte is refused without holding it in memory.
    const handle = await open(path, 'r');
    try {
      const { size } = await handle.stat();
      if (size > MAX_POLICY_BYTES) return { ok: false, errors: [`${path}: the policy file is ${size} bytes; podgate reads at most ${MAX_POLICY_BYTES} (a ConfigMap's limit)`] };
      text = await handle.readFile('utf8');
    } finally {
      await handle.close();
    }
  } catch (error) {
    const reason = error instanceof Error && 'code' in error ? String(error.code) : String(error);
    return { ok: false, errors: [`${path}: cannot read the policy file (${reason})`] };
  }
  try {
    const result = validatePolicyText(text, path, compile);
    return result.ok ? { ...result, sha256: createHash('sha256').update(text).digest('hex') } : result;
  } catch (error) {
    return { ok: false, errors: [`${path}: the policy could not be checked: ${error instanceof Error ? error.message : String(error)}`] };
  }
}

/**
 * Loads the policy into the store and keeps it current. A file that is missing,
 * empty or invalid never replaces a good policy: the store keeps the last good
 * one, records why the new one was refused (shown on /readyz), and logs it.
 */
export async function loadAndWatchPolicy(options: {
  readonly path: string;
  readonly store: PolicyStore;
  readonly compile: PolicyCompiler;
  readonly log: Logger;
  readonly pollMs?: number;
  /** Told of every policy put in force (to start the watches it needs). */
  readonly onLoad?: (policy: Policy) => void;
  /** Told of every file refused. */
  readonly onReject?: (errors: readonly string[]) => void;
}): Promise<{ close(): void }> {
  const { path, store, compile, log } = options;
  const load = async (): Promise<void> => {
    const result = await readPolicyFile(path, compile);
    const now = new Date();
    if (!result.ok) {
      store.reject(result.errors, now);
      options.onReject?.(result.errors);
      const kept = store.status.generation > 0 ? `keeping policy generation ${store.status.generation}` : 'no policy in force: not ready';
      log.error({ policy: path, errors: result.errors }, `policy file rejected, ${kept}:\n${result.errors.join('\n')}`);
      return;
    }
    // The same bytes again (watch events come in bursts): nothing to do, unless a bad file came in between.
    if (result.sha256 === store.status.sha256 && store.status.lastError === undefined) return;
    store.accept(result.policy, result.sha256 ?? '', now);
    options.onLoad?.(result.policy);
    log.info(
      { policy: path, generation: store.status.generation, rules: result.policy.rules.map((rule) => rule.name), sha256: result.sha256 },
      'policy loaded',
    );
  };
  await load();
  return watchFiles([path], load, options.pollMs === undefined ? {} : { pollMs: options.pollMs });
}
