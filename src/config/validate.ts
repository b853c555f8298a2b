import { isMap, isNode, isScalar, isSeq, LineCounter, parseDocument, visit, type Node, type YAMLError } from 'yaml';
import { formatPath, type DocPath, type Problem } from '../lib/schema.ts';
import type { CompiledPolicy, Policy } from '../policy/policy.ts';

/** One line per problem: `podgate.yaml:14:9 rules[2].limits.cpu: "2 cores" is not a Kubernetes quantity`. */
export type PolicyResult = { readonly ok: true; readonly policy: Policy } | { readonly ok: false; readonly errors: readonly string[] };

/**
 * Parses and checks a policy file's text. Pure: the caller reads the file.
 * YAML syntax errors, schema errors and semantic errors (bad quantities, label
 * values) all come back as `file:line:column path: message`, in file order.
 */
export function validatePolicyText(text: string, fileName: string, compile: (document: unknown) => CompiledPolicy): PolicyResult {
  const lineCounter = new LineCounter();
  // Duplicate keys are found by duplicateKeyError (linear); the parser's own uniqueKeys check compares each key with every
  // key before it, 2.5 s for one map of 14,000 keys.
  const document = parseDocument(text, { lineCounter, uniqueKeys: false, prettyErrors: false });
  if (document.errors.length > 0) return { ok: false, errors: [yamlError(text, fileName, lineCounter, document.errors)] };
  const duplicate = duplicateKeyError(document.contents, lineCounter, fileName);
  if (duplicate !== undefined) return { ok: false, errors: [duplicate] };
  if (document.contents === null) return { ok: false, errors: [`${fileName}:1:1 the policy file is empty; see the sample policy for the shape`] };

  let parsed: unknown;
  try {
    parsed = document.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (error) {
    // The parser's own limits (alias expansion: "billion laughs") throw rather than report: one more error line, at the first alias.
    const { line, col } = lineCounter.linePos(firstAliasOffset(document.contents));
    return { ok: false, errors: [`${fileName}:${line}:${col} the YAML could not be expanded: ${error instanceof Error ? error.message : String(error)} (at most ${MAX_ALIAS_COUNT} alias expansions)`] };
  }
  const compiled = compile(parsed);
  if (compiled.ok) return compiled;

  return { ok: false, errors: locatedProblems(document.contents, lineCounter, fileName, compiled.problems) };
}

/**
 * Problems listed at most: locating one walks the map it sits in, so a file of 14,000 unknown
 * fields took 5 s of the event loop to list them all (a reload runs on the server's), and a
 * rejected policy's report goes into a log line and /readyz.
 */
const MAX_LISTED_PROBLEMS = 100;

/** Problems of a parsed YAML document as `file:line:column path: message` lines, in file order; past the first 100, a count. */
export function locatedProblems(root: Node | null, lineCounter: LineCounter, fileName: string, problems: readonly Problem[]): string[] {
  const located = problems.slice(0, MAX_LISTED_PROBLEMS).map((problem) => {
    const { line, col } = lineCounter.linePos(sourceOffset(root, problem));
    return { line, col, text: `${fileName}:${line}:${col} ${formatPath(problem.path)}: ${problem.message}` };
  });
  located.sort((a, b) => a.line - b.line || a.col - b.col);
  const more = problems.length - located.length;
  return [...located.map((entry) => entry.text), ...(more > 0 ? [`${fileName}: and ${more} more problem(s) like these; fix these first`] : [])];
}

/**
 * The first YAML error, where it is and in a policy author's words; the ones after it
 * are counted, not listed (one bad indent makes the parser misread every line after it).
 */
export function yamlError(text: string, fileName: string, lineCounter: LineCounter, errors: readonly YAMLError[]): string {
  const [first] = errors;
  if (first === undefined) return `${fileName}:1:1 not YAML`;
  // The parser points at the start of the line; the author looks for its first character.
  let offset = first.pos[0];
  while (text[offset] === ' ') offset += 1;
  const { line, col } = lineCounter.linePos(offset);
  const more = errors.length > 1 ? ` (and ${errors.length - 1} more YAML error(s) after it, often caused by this one)` : '';
  return `${fileName}:${line}:${col} ${yamlMessage(first)}${more}`;
}

const INDENTATION_HINT = ": check this line's indentation against the lines above it (YAML nests by spaces)";
/** The parser's errors that a policy author meets, in their words; others keep the parser's. */
const YAML_MESSAGES: Partial<Record<YAMLError['code'], (own: string) => string>> = {
  MULTIPLE_DOCS: () => 'a second YAML document starts here (---); a policy file holds one policy, with every rule under its rules',
  BAD_INDENT: (own) => `${own}${INDENTATION_HINT}`,
  MISSING_CHAR: (own) => `${own}${INDENTATION_HINT}`,
  UNEXPECTED_TOKEN: (own) => `${own}${INDENTATION_HINT}`,
  TAB_AS_INDENT: () => 'a tab indents this line; YAML indents with spaces only',
};

function yamlMessage(error: YAMLError): string {
  const own = error.message.split('\n')[0] ?? error.message;
  return YAML_MESSAGES[error.code]?.(own) ?? own;
}

/** `file:line:col this key appears twice …` for the first key that does, or undefined. */
export function duplicateKeyError(root: Node | null, lineCounter: LineCounter, fileName: string): string | undefined {
  const duplicate = duplicateKey(root);
  if (duplicate === undefined) return undefined;
  const { line, col } = lineCounter.linePos(duplicate.offset);
  return `${fileName}:${line}:${col} this key appears twice in the same map; keep one (${JSON.stringify(duplicate.key).slice(0, 80)})`;
}

/** The first key that appears twice in one map, with where its second appearance starts: one set per map, linear in the document. */
function duplicateKey(root: Node | null): { key: unknown; offset: number } | undefined {
  let found: { key: unknown; offset: number } | undefined;
  visit(root, {
    Map(_key, map) {
      const seen = new Set<unknown>();
      for (const pair of map.items) {
        if (!isScalar(pair.key)) continue;
        const key = pair.key.value;
        if (seen.has(key)) {
          found = { key, offset: pair.key.range?.[0] ?? 0 };
          return visit.BREAK;
        }
        seen.add(key);
      }
      return undefined;
    },
  });
  return found;
}

/** Alias expansions a policy may make: enough for any real reuse of an anchor, far from exponential ones. */
const MAX_ALIAS_COUNT = 100;

function firstAliasOffset(root: Node | null): number {
  let offset = 0;
  visit(root, {
    Alias(_key, node) {
      offset = node.range?.[0] ?? 0;
      return visit.BREAK;
    },
  });
  return offset;
}

/** Where in the text a problem's path points: the deepest node that exists on it. */
function sourceOffset(root: Node | null, problem: Problem): number {
  let node: Node | null = root;
  let offset = node?.range?.[0] ?? 0;
  for (const [index, token] of problem.path.entries()) {
    const last = index === problem.path.length - 1;
    const step = child(node, token);
    if (step === undefined) break;
    if (last && problem.atKey && step.key?.range) return step.key.range[0];
    node = step.value;
    if (node?.range) offset = node.range[0];
    else if (step.key?.range) offset = step.key.range[0];
  }
  return offset;
}

function child(node: Node | null, token: DocPath[number]): { key: Node | null; value: Node | null } | undefined {
  if (isMap(node)) {
    const pair = node.items.find((item) => isScalar(item.key) && item.key.value === token);
    if (pair === undefined) return undefined;
    return { key: isNode(pair.key) ? pair.key : null, value: isNode(pair.value) ? pair.value : null };
  }
  if (isSeq(node) && typeof token === 'number') {
    const item: unknown = node.items[token];
    return item === undefined ? undefined : { key: null, value: isNode(item) ? item : null };
  }
  return undefined;
}
