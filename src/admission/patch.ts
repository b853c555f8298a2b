/**
 * RFC 6902 JSON Patch operations as podgate emits them. Rules only ever need
 * add / replace / remove (and `test` to guard a replace), so the type says so.
 */
export type PatchOp =
  | { readonly op: 'add'; readonly path: string; readonly value: unknown }
  | { readonly op: 'replace'; readonly path: string; readonly value: unknown }
  | { readonly op: 'remove'; readonly path: string }
  | { readonly op: 'test'; readonly path: string; readonly value: unknown };

/**
 * Escapes one reference token of a JSON Pointer (RFC 6901 §3): `~` becomes `~0`
 * and `/` becomes `~1`, so `podgate.io/environment` is `podgate.io~1environment`.
 */
export function escapePointerToken(token: string): string {
  return token.replaceAll('~', '~0').replaceAll('/', '~1');
}

/** Builds a JSON Pointer from unescaped tokens: pointer(['metadata', 'labels', 'a/b']). */
export function pointer(tokens: readonly (string | number)[]): string {
  return tokens.map((t) => `/${escapePointerToken(String(t))}`).join('');
}
