import { Type, type Static } from '@sinclair/typebox';
import type { Problem } from '../../lib/schema.ts';
import { at, isRecord, stringMapAt } from '../../lib/json.ts';
import { injectedAnnotation, reservedMetadataKeys, type Airflow } from '../airflow.ts';
import { isLabelKey, keyMessage, labelValueProblem } from '../selector.ts';
import { addToMetadataMap } from '../metadataPatch.ts';
import { defineRuleKind, fail, pass, ruleSchema, skip, type RuleInput, type RuleResult } from '../rule.ts';

/**
 * podMetadata (mutating): adds labels and annotations to the Pods a rule selects, on
 * CREATE (incident 4: Karpenter consolidated nodes under long-running Airflow tasks;
 * `karpenter.sh/do-not-disrupt: "true"` keeps it off those pods). Pods only: patching a
 * controller's template would fight `helm upgrade`'s three-way merge.
 */
const Entries = (what: string) => Type.Optional(Type.Record(Type.String(), Type.String(), { description: `${what} to add: key to value (quote "true" and numbers).` }));

const schema = ruleSchema('podMetadata', 'Adds labels and annotations to the Pods a rule selects, when they are created.', {
  labels: Entries('Labels'),
  annotations: Entries('Annotations'),
  overwrite: Type.Optional(Type.Boolean({ default: false, description: "Replace a value the pod already has (default false: the pod's own value wins)." })),
});
type Config = Static<typeof schema>;

/** The API server's limit on the total size of an object's annotations, keys and values (apimachinery's TotalAnnotationSizeLimitB). */
const ANNOTATIONS_SIZE_LIMIT = 256 * 1024;

function metadataProblems(config: Config, airflow: Airflow | undefined): Problem[] {
  const problems: Problem[] = [];
  const reserved = reservedMetadataKeys(airflow);
  const labels = Object.entries(config.labels ?? {});
  const annotations = Object.entries(config.annotations ?? {});
  if (labels.length === 0 && annotations.length === 0) problems.push({ path: [], message: 'set at least one entry under labels or annotations' });
  for (const [key, value] of labels) {
    if (!isLabelKey(key)) problems.push({ path: ['labels', key], message: keyMessage(key, 'label'), atKey: true });
    else if (reserved.labels.has(key)) problems.push({ path: ['labels', key], message: `label ${key} is KubernetesPodOperator's or podgate's own (its lookups and the environment attribution read it); a podMetadata rule may not set it`, atKey: true });
    const problem = labelValueProblem(value, ['labels', key]);
    if (problem) problems.push(problem);
  }
  let size = 0;
  for (const [key, value] of annotations) {
    size += Buffer.byteLength(key) + Buffer.byteLength(value);
    // The API server checks annotation keys as qualified names after lowercasing them.
    if (!isLabelKey(key.toLowerCase())) problems.push({ path: ['annotations', key], message: keyMessage(key, 'annotation'), atKey: true });
    else if (reserved.annotations.has(key)) problems.push({ path: ['annotations', key], message: `annotation ${key} is podgate's own record of the labels it added; a podMetadata rule may not set it`, atKey: true });
  }
  if (size > ANNOTATIONS_SIZE_LIMIT) problems.push({ path: ['annotations'], message: `the annotations take ${size} bytes; the API server allows ${ANNOTATIONS_SIZE_LIMIT} on an object` });
  return problems;
}

/** The entries of `wanted` the pod should get: absent ones, and with `overwrite` those with another value. */
function entriesToSet(current: unknown, wanted: Readonly<Record<string, string>>, overwrite: boolean): Record<string, string> {
  const set: Record<string, string> = {};
  for (const [key, value] of Object.entries(wanted)) {
    const existing = isRecord(current) && Object.hasOwn(current, key) ? current[key] : undefined;
    if (existing === value || (existing !== undefined && !overwrite)) continue;
    set[key] = value;
  }
  return set;
}

/**
 * Whether the pod's annotations, once `adding` is set, stay within what the API server
 * allows (keys and values in UTF-8 bytes). A string takes at least one byte and at most
 * three per UTF-16 unit, so lengths settle almost every pod without encoding anything.
 */
function annotationsFit(current: unknown, adding: Readonly<Record<string, string>>): { fits: boolean; size: number } {
  const existing = isRecord(current) ? current : {};
  const strings: string[] = [];
  for (const key of Object.keys(existing)) {
    if (Object.hasOwn(adding, key)) continue;
    const value = existing[key];
    strings.push(key, typeof value === 'string' ? value : '');
  }
  for (const [key, value] of Object.entries(adding)) strings.push(key, value);
  let units = 0;
  for (const text of strings) units += text.length;
  if (units > ANNOTATIONS_SIZE_LIMIT) return { fits: false, size: units };
  if (units * 3 <= ANNOTATIONS_SIZE_LIMIT) return { fits: true, size: units };
  let bytes = 0;
  for (const text of strings) bytes += Buffer.byteLength(text);
  return { fits: bytes <= ANNOTATIONS_SIZE_LIMIT, size: bytes };
}

function evaluate(config: Config, airflow: Airflow | undefined, { object }: RuleInput): RuleResult {
  const metadata = at(object, 'metadata');
  if (!isRecord(metadata)) return skip(); // not a pod the API server would create
  const labels = entriesToSet(metadata['labels'], config.labels ?? {}, config.overwrite ?? false);
  const annotations = entriesToSet(metadata['annotations'], config.annotations ?? {}, config.overwrite ?? false);
  const added = Object.keys(labels);
  // On a KPO pod, labels podgate adds are not the operator's: say so where the collision check reads it.
  if (airflow !== undefined && added.length > 0 && airflow.isKpoPod(stringMapAt(object, 'metadata', 'labels'))) Object.assign(annotations, injectedAnnotation(airflow, object, added));
  // `add` replaces an existing member (RFC 6902 §4.1): one op per key sets or overwrites it.
  const patch = addToMetadataMap(object, [], 'labels', labels);
  // Nothing to add (the common reinvocation): nothing to measure either.
  const { fits, size } = Object.keys(annotations).length === 0 ? { fits: true, size: 0 } : annotationsFit(metadata['annotations'], annotations);
  if (!fits) {
    return fail(
      [`its annotations with ${listing(Object.keys(annotations))} added would take at least ${size} bytes, over the API server's limit of ${ANNOTATIONS_SIZE_LIMIT}`],
      'Shorten the annotations the pod carries, or exclude it from this rule.',
      { patch },
    );
  }
  return pass([...patch, ...addToMetadataMap(object, [], 'annotations', annotations)]);
}

function listing(keys: readonly string[]): string {
  return keys.length <= 3 ? keys.join(', ') : `${keys.slice(0, 3).join(', ')} and ${keys.length - 3} more`;
}

export const podMetadata = defineRuleKind({
  kind: 'podMetadata',
  schema,
  build(config, { airflow }) {
    const problems = metadataProblems(config, airflow);
    if (problems.length > 0) return { problems };
    return { kinds: ['Pod'], operations: ['CREATE'], mutate: (input) => evaluate(config, airflow, input) };
  },
});
