import { Type, type Static } from '@sinclair/typebox';
import { StringEnum, type Problem } from '../lib/schema.ts';
import { OPERATIONS, type AdmissionRequest } from '../admission/review.ts';
import { globMatcher, type NameMatcher } from './glob.ts';
import { compileLabelSelector, labelSelectorProblems, LabelSelectorSchema, type LabelPredicate } from './selector.ts';

/**
 * Which requests a rule (or the global exclusion) is about. Every criterion given
 * must hold; within a list any entry may match; a criterion left out matches all.
 * Identity comes from `request.userInfo`, which the API server authenticated.
 */
export const MatchSchema = Type.Object(
  {
    namespaces: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { description: 'Namespace names or globs (`airflow-*`).' })),
    labelSelector: Type.Optional(LabelSelectorSchema),
    usernames: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), { description: 'Usernames or globs (`system:serviceaccount:airflow:*`).' }),
    ),
    groups: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { description: 'Group names or globs (`system:serviceaccounts:airflow`).' })),
    operations: Type.Optional(Type.Array(StringEnum(OPERATIONS), { minItems: 1, description: 'Admission operations.' })),
  },
  {
    additionalProperties: false,
    description: 'Every criterion given must hold; a list matches when any entry does. Labels are the pod’s (for a controller, its pod template’s).',
  },
);
export type MatchConfig = Static<typeof MatchSchema>;

/** What a match is judged on: the request, and the labels of the pods concerned. */
export interface MatchSubject {
  readonly request: AdmissionRequest;
  readonly labels: ReadonlyMap<string, string>;
}

export type Matcher = (subject: MatchSubject) => boolean;

export function matchProblems(config: MatchConfig): Problem[] {
  if (config.labelSelector === undefined) return [];
  return labelSelectorProblems(config.labelSelector).map((p) => ({ path: ['labelSelector', ...p.path], message: p.message }));
}

export function compileMatch(config: MatchConfig): Matcher {
  const tests: ((subject: MatchSubject) => boolean)[] = [];
  if (config.namespaces) {
    const namespace = globMatcher(config.namespaces);
    tests.push(({ request }) => namespace(request.namespace ?? ''));
  }
  if (config.labelSelector) {
    const selects: LabelPredicate = compileLabelSelector(config.labelSelector);
    tests.push(({ labels }) => selects(labels));
  }
  if (config.usernames) {
    const username: NameMatcher = globMatcher(config.usernames);
    tests.push(({ request }) => username(request.userInfo.username ?? ''));
  }
  if (config.groups) {
    const group = globMatcher(config.groups);
    tests.push(({ request }) => (request.userInfo.groups ?? []).some(group));
  }
  if (config.operations) {
    const operations = new Set(config.operations);
    tests.push(({ request }) => operations.has(request.operation));
  }
  return (subject) => {
    // A loop rather than tests.every(): no closure per call (this runs for every rule of every review).
    for (const holds of tests) if (!holds(subject)) return false;
    return true;
  };
}
