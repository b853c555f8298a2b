import { Type, type Static } from '@sinclair/typebox';
import { at, quoted } from '../../lib/json.ts';
import { reasonAndFix } from '../hint.ts';
import { defineRuleKind, fail, pass, ruleSchema, skip, type RuleInput, type RuleResult } from '../rule.ts';
import { bringsNewPodSpec, WORKLOAD_KINDS, workloadOf, type Workload } from '../workload.ts';

/**
 * gracePeriodFloor: a minimum terminationGracePeriodSeconds for the pods a rule selects
 * (incident 4: Celery workers killed mid-task on rollouts and node rotation until their
 * grace period covered the longest task). Judged like resourceFloors: Pods on CREATE,
 * controllers by their pod template on CREATE and on an UPDATE that changes it.
 *
 * Its own kind rather than a field of resourceFloors: that kind is per container and
 * per resource, this is one value per pod, and a rule that only sets a grace period
 * reads as what it is.
 */
const schema = ruleSchema('gracePeriodFloor', 'A minimum terminationGracePeriodSeconds for the pods a rule selects.', {
  seconds: Type.Integer({ minimum: 1, maximum: 2 ** 31 - 1, description: 'The smallest terminationGracePeriodSeconds allowed.' }),
  reason: Type.Optional(Type.String({ minLength: 1, description: 'Why the floor exists, said before the fix in every message.' })),
  helmValue: Type.Optional(
    Type.String({ minLength: 1, description: 'The Helm value that sets it, e.g. workers.terminationGracePeriodSeconds; the message names it.' }),
  ),
});
type Config = Static<typeof schema>;

/** What the API server gives a pod that sets none (corev1.DefaultTerminationGracePeriodSeconds). */
const API_SERVER_DEFAULT_SECONDS = 30;

function evaluate(config: Config, { request, object }: RuleInput): RuleResult {
  const workload = workloadOf(request, object);
  if (workload === undefined || !bringsNewPodSpec(request, workload)) return skip();
  const found = at(workload.podSpec, 'terminationGracePeriodSeconds');
  const finding = judge(found, config.seconds);
  if (finding === undefined) return pass();
  const field = fieldPath(workload);
  const fix = config.helmValue
    ? `${found === undefined ? 'set' : 'raise'} ${config.helmValue} to at least ${config.seconds} in your Helm values`
    : `${Number.isInteger(found) || found === undefined ? 'set' : 'correct'} ${field} to at least ${config.seconds}`;
  return fail([finding], reasonAndFix(config.reason, fix));
}

/** The finding for the value a pod (template) sets, or undefined when it meets the floor. */
function judge(found: unknown, floor: number): string | undefined {
  if (found === undefined || found === null) {
    if (API_SERVER_DEFAULT_SECONDS >= floor) return undefined;
    return `sets no terminationGracePeriodSeconds, so its pods get the API server's default of ${API_SERVER_DEFAULT_SECONDS}, below the floor ${floor}`;
  }
  if (typeof found !== 'number' || !Number.isInteger(found)) return `terminationGracePeriodSeconds ${quoted(found)} is not a whole number of seconds (the floor is ${floor})`;
  return found >= floor ? undefined : `terminationGracePeriodSeconds ${found} is below the floor ${floor}`;
}

/** Where the value sits in this object, as a manifest author writes it: spec.template.spec.terminationGracePeriodSeconds. */
function fieldPath(workload: Workload): string {
  return [...workload.podPath, 'spec', 'terminationGracePeriodSeconds'].join('.');
}

export const gracePeriodFloor = defineRuleKind({
  kind: 'gracePeriodFloor',
  schema,
  build(config) {
    const judge = (input: RuleInput) => evaluate(config, input);
    return { kinds: WORKLOAD_KINDS, validate: judge, audit: judge };
  },
});
