import { Type } from '@sinclair/typebox';
import { apartFrom, compileValidator, schemaProblems, withoutPaths, type Problem } from '../lib/schema.ts';
import { compileMatch, matchProblems, MatchSchema, type Matcher } from './match.ts';
import { DEFAULT_OPERATIONS, type CompiledRule, type Evaluate, type Stage, type PolicyContext, type RuleKind, type WatchName } from './rule.ts';
import type { Operation } from '../admission/review.ts';
import { AirflowSchema, compileAirflow, type KpoPodSelection } from './airflow.ts';

const POLICY_API_VERSION = 'podgate.io/v1alpha1';
const POLICY_KIND = 'Policy';

/** A policy ready to decide with. Immutable: a reload builds a new one and swaps the reference. */
export interface Policy {
  /** Requests no rule sees at all (kube-system, podgate's own namespace). */
  readonly exclude: Matcher | undefined;
  readonly rules: readonly CompiledRule[];
  /** Per webhook (and for audits), in policy order, the rules with logic for it: what decide() walks for every review. */
  readonly steps: Readonly<Record<Stage, readonly RuleStep[]>>;
  /** Every watch some rule reads: the server keeps these running. */
  readonly watches: ReadonlySet<WatchName>;
  /** Which pods the kpoPods watch lists and what it keeps of them (from the airflow section). */
  readonly kpoPodSelection: KpoPodSelection | undefined;
}

/** A rule as one webhook runs it: that webhook's logic, and the group/kinds and operations it judges. */
export interface RuleStep {
  readonly rule: CompiledRule;
  readonly evaluate: Evaluate;
  readonly kinds: ReadonlySet<string>;
  readonly operations: ReadonlySet<Operation>;
  readonly subresources: ReadonlySet<string>;
}

/** Resolved once per policy load, so a review does not look up each rule's logic, kinds and operations again. */
function stepsFor(stage: Stage, rules: readonly CompiledRule[]): readonly RuleStep[] {
  return rules.flatMap((rule) => {
    const logic = rule.logic[stage];
    if (!logic) return [];
    const scoped = typeof logic === 'function' ? { evaluate: logic } : logic;
    const kinds = scoped.kinds ?? rule.logic.kinds;
    const operations = scoped.operations ?? rule.logic.operations ?? DEFAULT_OPERATIONS;
    const subresources = scoped.subresources ?? rule.logic.subresources ?? [];
    return [{ rule, evaluate: scoped.evaluate, kinds: new Set(kinds), operations: new Set(operations), subresources: new Set(subresources) }];
  });
}

export type CompiledPolicy = { readonly ok: true; readonly policy: Policy } | { readonly ok: false; readonly problems: readonly Problem[] };

/**
 * The policy document around the rules. Rules are checked against their own
 * kind's schema afterwards, so an error names the field of the kind the author
 * meant instead of listing why every other kind did not fit.
 */
function envelopeSchema() {
  return Type.Object(
    {
      $schema: Type.Optional(Type.String()),
      apiVersion: Type.Literal(POLICY_API_VERSION),
      kind: Type.Literal(POLICY_KIND),
      exclude: Type.Optional(MatchSchema),
      airflow: Type.Optional(AirflowSchema),
      rules: Type.Array(
        Type.Object({ name: Type.String(), kind: Type.String() }, { additionalProperties: true }),
      ),
    },
    { additionalProperties: false },
  );
}

/**
 * The JSON Schema of a whole policy file, for editors (`# yaml-language-server:
 * $schema=…`) and the reference docs: every rule kind's schema under `rules`.
 */
export function policySchema(registry: readonly RuleKind[]) {
  return Type.Object(
    {
      $schema: Type.Optional(Type.String()),
      apiVersion: Type.Literal(POLICY_API_VERSION),
      kind: Type.Literal(POLICY_KIND),
      exclude: Type.Optional({ ...MatchSchema, description: 'Requests no rule sees, e.g. kube-system and podgate’s own namespace.' }),
      airflow: Type.Optional(AirflowSchema),
      rules: Type.Array(Type.Union(registry.map((kind) => kind.schema))),
    },
    { additionalProperties: false, title: 'podgate policy' },
  );
}

/** Builds a compiler for policy documents (already parsed from YAML) over a rule registry. */
export function policyCompiler(registry: readonly RuleKind[]): (document: unknown) => CompiledPolicy {
  const byKind = new Map(registry.map((kind) => [kind.kind, kind]));
  const checkEnvelope = compileValidator(envelopeSchema());
  const known = [...byKind.keys()].join(', ');
  const compileDocument = (document: unknown): CompiledPolicy => {
    if (!checkEnvelope(document)) {
      // The rules are still checked, without the fields the envelope refused: every problem in one pass.
      const problems = schemaProblems(checkEnvelope.errors, document);
      const removed = problems.map((problem) => problem.path);
      const rest = withoutPaths(document, removed);
      const checked = rest === undefined || !checkEnvelope(rest) ? undefined : compileDocument(rest);
      return { ok: false, problems: checked === undefined || checked.ok ? problems : [...problems, ...apartFrom(checked.problems, removed)] };
    }
    const problems: Problem[] = document.exclude ? matchProblems(document.exclude).map((p) => ({ ...p, path: ['exclude', ...p.path] })) : [];
    const airflow = document.airflow ? compileAirflow(document.airflow) : undefined;
    if (airflow && 'problems' in airflow) problems.push(...airflow.problems.map((p) => ({ ...p, path: ['airflow', ...p.path] })));
    const context: PolicyContext = { airflow: airflow && 'airflow' in airflow ? airflow.airflow : undefined };
    const rules: CompiledRule[] = [];
    const names = new Set<string>();
    document.rules.forEach((config, index) => {
      if (names.has(config.name)) problems.push({ path: ['rules', index, 'name'], message: `duplicate rule name "${config.name}"` });
      names.add(config.name);
      const kind = byKind.get(config.kind);
      if (kind === undefined) {
        problems.push({ path: ['rules', index, 'kind'], message: `unknown rule kind "${config.kind}"; podgate knows: ${known}` });
        return;
      }
      const compiled = kind.compile(config, context);
      if ('problems' in compiled) problems.push(...compiled.problems.map((p) => ({ ...p, path: ['rules', index, ...p.path] })));
      else rules.push(compiled);
    });
    if (problems.length > 0) return { ok: false, problems };
    const watches = new Set(rules.flatMap((rule) => rule.logic.watches ?? []));
    const steps = { mutate: stepsFor('mutate', rules), validate: stepsFor('validate', rules), audit: stepsFor('audit', rules) };
    const kpoPodSelection = context.airflow?.kpoPodSelection;
    return { ok: true, policy: { exclude: document.exclude ? compileMatch(document.exclude) : undefined, rules, steps, watches, kpoPodSelection } };
  };
  return compileDocument;
}
