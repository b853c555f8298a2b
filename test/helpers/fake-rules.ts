import { Type } from '@sinclair/typebox';
import { defineRuleKind, fail, pass, ruleSchema, skip } from '../../src/policy/rule.ts';
import { pointer } from '../../src/lib/patch.ts';
import { at, isRecord, stringAt } from '../../src/lib/json.ts';
import { policyCompiler, type Policy } from '../../src/policy/policy.ts';

/**
 * Rule kinds that exist only in tests, so plumbing tests (decide, server,
 * reload) never depend on what the real rules do.
 */
export const addLabel = defineRuleKind({
  kind: 'addLabel',
  schema: ruleSchema('addLabel', 'Adds a label to Pods.', { key: Type.String(), value: Type.String() }),
  build: (config) => ({
    kinds: ['Pod'],
    mutate: ({ object }) => {
      const labels = at(object, 'metadata', 'labels');
      if (isRecord(labels) && labels[config.key] === config.value) return pass();
      const op = isRecord(labels)
        ? { op: 'add' as const, path: pointer(['metadata', 'labels', config.key]), value: config.value }
        : { op: 'add' as const, path: '/metadata/labels', value: { [config.key]: config.value } };
      return pass([op]);
    },
  }),
});

/** Fails every Pod that lacks a label, with the label's value in the finding: shows what earlier patches did. */
export const requireLabel = defineRuleKind({
  kind: 'requireLabel',
  schema: ruleSchema('requireLabel', 'Requires a label.', { key: Type.String() }),
  build: (config) => {
    const judge = ({ object }: { object: unknown }) => {
      const value = stringAt(object, 'metadata', 'labels', config.key);
      return value === undefined ? fail([`label ${config.key} is missing`], `Add the label ${config.key}.`) : pass();
    };
    return { kinds: ['Pod'], mutate: judge, validate: judge };
  },
});

export const alwaysThrows = defineRuleKind({
  kind: 'alwaysThrows',
  schema: ruleSchema('alwaysThrows', 'Throws.', {}),
  build: () => ({
    kinds: ['Pod'],
    validate: () => {
      throw new Error('boom');
    },
    mutate: () => {
      throw new Error('boom');
    },
  }),
});

/** A rule that judges DELETE too and only skips. */
export const watchesDeletes = defineRuleKind({
  kind: 'watchesDeletes',
  schema: ruleSchema('watchesDeletes', 'Fails when the deleted pod carries protected=true.', {}),
  build: () => ({
    kinds: ['Pod'],
    operations: ['DELETE'],
    validate: ({ object }) => (stringAt(object, 'metadata', 'labels', 'protected') === 'true' ? fail(['the pod is protected'], 'Leave it.') : skip()),
  }),
});

export const FAKE_KINDS = [addLabel, requireLabel, alwaysThrows, watchesDeletes];
export const compileFakePolicy = policyCompiler(FAKE_KINDS);

/** A policy from a plain object over the fake kinds; throws with the problems if it does not compile. */
export function fakePolicy(document: Record<string, unknown>): Policy {
  const result = compileFakePolicy({ apiVersion: 'podgate.io/v1alpha1', kind: 'Policy', ...document });
  if (!result.ok) throw new Error(JSON.stringify(result.problems));
  return result.policy;
}
