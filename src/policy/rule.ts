import { Type, type Static, type TObject, type TProperties } from '@sinclair/typebox';
import type { ValidateFunction } from 'ajv';
import { apartFrom, compileValidator, schemaProblems, StringEnum, withoutPaths, type DocPath, type Problem } from '../lib/schema.ts';
import type { AdmissionRequest, Operation } from '../admission/review.ts';
import type { PatchOp } from '../lib/patch.ts';
import type { ClusterState } from './cluster.ts';
import type { Airflow } from './airflow.ts';
import type { ReviewedKind } from './workload.ts';
import { compileMatch, matchProblems, MatchSchema, type Matcher } from './match.ts';

export type Phase = 'mutate' | 'validate';
/**
 * What a rule can be asked to judge: a review of one of the two webhooks, or an object
 * that already exists (`podgate audit`, and the server's background audit). An audit
 * replays a live object as a CREATE by nobody in particular: who created it is not
 * recorded on the object, so a rule whose findings turn on the requester's identity has
 * no audit logic, or one of its own that reads what the object says.
 */
export type Stage = Phase | 'audit';

/**
 * The one vocabulary of what a finding does: deny rejects, warn admits with a warning
 * kubectl shows, audit admits and only logs. A rule's `action` is one of these; a named
 * check whose severity the rule's own parameters set (kpoEnvironment's scopedLookups) may
 * also be `admit`: not reported at all.
 */
const ACTIONS = ['deny', 'warn', 'audit'] as const;
export type Action = (typeof ACTIONS)[number];
const CHECK_ACTIONS = [...ACTIONS, 'admit'] as const;
export type CheckAction = (typeof CHECK_ACTIONS)[number];
const FAILURE_POLICIES = ['fail', 'ignore'] as const;
export type FailurePolicy = (typeof FAILURE_POLICIES)[number];

/** The schema of a check's severity parameter: the check vocabulary, with its default. */
export function CheckActionSchema(defaultAction: CheckAction, description: string) {
  return StringEnum(CHECK_ACTIONS, { default: defaultAction, description });
}

/**
 * A check of a rule with a severity of its own, named for logs and set from the rule's
 * parameters when the policy loads. A finding of a named check takes the check's action
 * instead of the rule's; every other finding takes the rule's.
 */
export interface Check {
  readonly name: string;
  readonly action: CheckAction;
}

/**
 * What a finding counts in podgate's metrics, beyond the per-rule counter: the
 * cross-environment events platform teams alert on. Never shown to the client.
 */
export type FindingCounter =
  | { readonly counter: 'kpoCollision'; readonly environment: string; readonly other: string }
  | { readonly counter: 'crossEnvironment'; readonly environment: string; readonly owner: string; readonly operation: Operation };

/**
 * What one rule says about one request. Rules report facts; whether a finding
 * blocks, warns or is only logged, and how it is worded around the facts, is
 * decided in one place (engine/fold.ts) from the rule's `action`, or its check's.
 */
export type RuleResult =
  | { readonly status: 'skip' }
  | { readonly status: 'pass'; readonly patch: readonly PatchOp[] }
  | {
      readonly status: 'fail';
      /** Each fact that breaks the rule, without the object's name: `container "x" limits.memory 1Gi is below the floor 4Gi`. */
      readonly findings: readonly string[];
      /** What the reader should change; a rule's configured `message` replaces it. */
      readonly hint: string;
      /** Said with the rule's name, e.g. a denylist entry's reason: `(rule quarantined-nodes: INC-1234)`. */
      readonly note?: string;
      /** The named check that found it, when its severity is not the rule's `action`. */
      readonly check?: Check;
      readonly counter?: FindingCounter;
      readonly patch: readonly PatchOp[];
    };

const SKIP: RuleResult = { status: 'skip' };
const PASS: RuleResult = { status: 'pass', patch: [] };

/** The rule has nothing to say about this object. */
export const skip = (): RuleResult => SKIP;
/** The object complies; `patch` (mutating rules) makes it comply. */
export const pass = (patch: readonly PatchOp[] = []): RuleResult => (patch.length === 0 ? PASS : { status: 'pass', patch });
/** The object breaks the rule. */
export const fail = (
  findings: readonly string[],
  hint: string,
  options: { readonly note?: string | undefined; readonly patch?: readonly PatchOp[]; readonly check?: Check; readonly counter?: FindingCounter } = {},
): RuleResult => ({
  status: 'fail',
  findings,
  hint,
  ...(options.note ? { note: options.note } : {}),
  ...(options.check ? { check: options.check } : {}),
  ...(options.counter ? { counter: options.counter } : {}),
  patch: options.patch ?? [],
});

/** What a rule is given: the request, the object as earlier rules left it, and the cluster. */
export interface RuleInput {
  readonly request: AdmissionRequest;
  /** `object`, or `oldObject` for DELETE; in the mutating phase, with earlier rules' patches applied. */
  readonly object: unknown;
  readonly cluster: ClusterState;
}

export type Evaluate = (input: RuleInput) => RuleResult;

/** Cluster state a rule reads, kept by a watch the server starts when a loaded policy needs it. */
export type WatchName = 'nodes' | 'kpoPods';

/** A rule's behaviour, built once from its configuration when the policy loads. */
export interface RuleLogic {
  /** The watches whose caches this rule reads (ClusterState). */
  readonly watches?: readonly WatchName[];
  /** Group/kinds it judges: `Pod`, `apps/Deployment` (see workload.ts; a kind podgate does not know is a type error). */
  readonly kinds: readonly ReviewedKind[];
  /** Operations it judges; CREATE and UPDATE unless it says otherwise. */
  readonly operations?: readonly Operation[];
  /**
   * Subresources it judges too (`status` for pods/status, `eviction`, …); a review of a
   * subresource no rule declares is admitted unchanged. The webhook registrations must
   * send them (test/manifests checks that they do).
   */
  readonly subresources?: readonly string[];
  readonly mutate?: Evaluate | PhaseLogic;
  readonly validate?: Evaluate | PhaseLogic;
  /**
   * How it judges an object already in the cluster, replayed as a CREATE by an identity of
   * no environment (see Stage); left out, the rule is not audited. Rules that judge the
   * object alone give their validating logic; the cluster state is the audit's lists.
   */
  readonly audit?: Evaluate | PhaseLogic;
}

/**
 * One webhook's logic with its own scope, where it differs from the rule's: a rule that
 * patches Pods on CREATE but judges their controllers too. What is left out is the rule's.
 * The webhook registrations are checked against these scopes (test/manifests).
 */
export interface PhaseLogic {
  readonly evaluate: Evaluate;
  readonly kinds?: readonly ReviewedKind[];
  readonly operations?: readonly Operation[];
  readonly subresources?: readonly string[];
}

/** The operations a rule judges when its logic names none. */
export const DEFAULT_OPERATIONS: readonly Operation[] = ['CREATE', 'UPDATE'];

/** A rule ready to run: its common settings resolved to defaults, and its logic. */
export interface CompiledRule {
  readonly name: string;
  readonly kind: string;
  readonly action: Action;
  readonly failurePolicy: FailurePolicy;
  readonly match: Matcher;
  readonly exclude: Matcher | undefined;
  readonly message: string | undefined;
  readonly logic: RuleLogic;
}

const RULE_NAME = '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$';

/** The fields every rule has, whatever its kind. */
const commonProperties = {
  name: Type.String({ pattern: RULE_NAME, maxLength: 63, description: 'Unique name, shown in every message the rule produces.' }),
  action: Type.Optional(
    StringEnum(ACTIONS, { default: 'deny', description: 'deny rejects; warn admits and returns a warning kubectl shows; audit admits and only logs.' }),
  ),
  failurePolicy: Type.Optional(
    StringEnum(FAILURE_POLICIES, { default: 'fail', description: 'If the rule itself errors: fail denies naming the rule; ignore admits with a warning.' }),
  ),
  match: Type.Optional(MatchSchema),
  exclude: Type.Optional(MatchSchema),
  message: Type.Optional(Type.String({ minLength: 1, description: 'Replaces the explanation after the facts in every message of this rule.' })),
};

const CommonRuleSchema = Type.Object({ ...commonProperties, kind: Type.String() }, { additionalProperties: true });
type CommonRule = Static<typeof CommonRuleSchema>;
const isCommonRule = compileValidator(CommonRuleSchema);

/**
 * The schema of one rule of a kind: the common fields plus the kind's own.
 * Called with concrete parameters in each rule module, so `Static` of it is the
 * rule's configuration type there.
 */
export function ruleSchema<const K extends string, P extends TProperties>(kind: K, description: string, params: P) {
  return Type.Object({ ...commonProperties, kind: Type.Literal(kind), ...params }, { additionalProperties: false, description });
}

/** A rule kind as the registry sees it: a schema and a compiler, whatever its parameters. */
export interface RuleKind {
  readonly kind: string;
  /** The complete schema of one rule of this kind (common fields included). */
  readonly schema: TObject;
  /** Checks one rule's configuration and builds it; problems have paths relative to the rule. */
  compile(config: unknown, context: PolicyContext): CompiledRule | { readonly problems: readonly Problem[] };
}

/** What the policy declares outside its rules, for the rule kinds that read it. */
export interface PolicyContext {
  /** The Airflow installations sharing the cluster (the policy's `airflow` section), if declared. */
  readonly airflow: Airflow | undefined;
}

export interface RuleKindDefinition<S extends TObject> {
  readonly kind: string;
  /** Made with ruleSchema(); the one source of the YAML's validation and of `build`'s argument type. */
  readonly schema: S;
  /** Semantic checks the schema cannot express, then the logic; problems are relative to the rule. */
  readonly build: (config: Static<S>, context: PolicyContext) => RuleLogic | { readonly problems: readonly Problem[] };
}

/** Turns a rule kind's schema and logic into a registry entry. */
export function defineRuleKind<S extends TObject>(definition: RuleKindDefinition<S>): RuleKind {
  let validator: ValidateFunction<Static<S>> | undefined;
  return {
    kind: definition.kind,
    schema: definition.schema,
    compile(config, context) {
      validator ??= compileValidator(definition.schema);
      const check = validator;
      /** The problems only code can see (a bad quantity, a selector operator without values), in a config the schema accepts; and the rule built. */
      const semantics = (valid: Static<S>) => {
        if (!isCommonRule(valid)) return { problems: schemaProblems(isCommonRule.errors, valid), logic: undefined }; // implied by the kind's schema
        const logic = definition.build(valid, context);
        const problems = [...prefixed(['match'], valid.match), ...prefixed(['exclude'], valid.exclude), ...('problems' in logic ? logic.problems : [])];
        return { problems, logic: 'problems' in logic ? undefined : { common: valid, logic } };
      };
      if (!check(config)) {
        // Checked again without the fields the schema refused, so one pass reports both kinds of problem.
        const problems = schemaProblems(check.errors, config);
        const removed = problems.map((problem) => problem.path);
        const rest = withoutPaths(config, removed);
        if (rest === undefined || !check(rest)) return { problems };
        return { problems: [...problems, ...apartFrom(semantics(rest).problems, removed)] };
      }
      const { problems, logic } = semantics(config);
      if (problems.length > 0 || logic === undefined) return { problems };
      return compiledRule(logic.common, logic.logic);
    },
  };
}

function compiledRule(config: CommonRule, logic: RuleLogic): CompiledRule {
  return {
    name: config.name,
    kind: config.kind,
    action: config.action ?? 'deny',
    failurePolicy: config.failurePolicy ?? 'fail',
    match: compileMatch(config.match ?? {}),
    exclude: config.exclude ? compileMatch(config.exclude) : undefined,
    message: config.message,
    logic,
  };
}

function prefixed(base: DocPath, match: Static<typeof MatchSchema> | undefined): Problem[] {
  return match ? matchProblems(match).map((p) => ({ path: [...base, ...p.path], message: p.message })) : [];
}
