import picomatch from 'picomatch';

/**
 * Glob matching for names that are not paths: namespaces, node names, usernames
 * and IAM ARNs. `*` matches any run of characters including `/` and a leading
 * `.` (bash mode), `?` one character, `[a-z]` a class.
 */
const OPTIONS = { bash: true, dot: true } as const;

export type NameMatcher = (name: string) => boolean;

/** True when `name` matches any of `patterns`; an empty list matches nothing. */
export function globMatcher(patterns: readonly string[]): NameMatcher {
  if (patterns.length === 0) return () => false;
  const exact = new Set(patterns.filter((p) => !picomatch.scan(p).isGlob));
  const globs = patterns.filter((p) => !exact.has(p)).map((p) => picomatch(p, OPTIONS));
  return (name) => {
    if (exact.has(name)) return true;
    for (const isMatch of globs) if (isMatch(name)) return true;
    return false;
  };
}
