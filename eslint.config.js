// @ts-check
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

/**
 * The layers of src/, lowest first: a folder imports only from layers below its own
 * (never from a sibling of its layer). A review walks them top-down: server (HTTP, the
 * gate) -> admission (the envelope) -> engine (decide, then fold) -> policy (rules) ->
 * lib; cli, config and kube are the shell around them.
 */
const LAYERS = [['lib', 'certs'], ['admission'], ['policy'], ['engine'], ['config', 'kube'], ['server'], ['cli']];
/** Folders of the pure core: no HTTP, logging, files or Kubernetes API. */
const PURE = new Set(['lib', 'admission', 'policy', 'engine']);
const IMPURE_LIB = ['src/lib/watch.ts']; // file watching for config and server; the rest of lib is pure

function layerRules() {
  return LAYERS.flatMap((layer, rank) =>
    layer.flatMap((folder) => {
      const forbidden = [...layer.filter((other) => other !== folder), ...LAYERS.slice(rank + 1).flat()];
      const patterns = forbidden.length === 0 ? [] : [{ group: forbidden.map((other) => `**/${other}/**`), message: `src/${folder} is below these layers: layers import downward only (see eslint.config.js)` }];
      if (PURE.has(folder)) {
        patterns.push({ group: ['fastify', 'pino', 'pino-*', '@kubernetes/client-node', 'node:fs', 'node:fs/*', 'fs', 'node:net', 'node:http*', 'node:tls'], message: 'the decision core stays pure (see STYLE.md)' });
      }
      if (patterns.length === 0) return [];
      return { files: [`src/${folder}/**`], ignores: folder === 'lib' ? IMPURE_LIB : [], rules: { 'no-restricted-imports': ['error', { patterns }] } };
    }),
  );
}

export default defineConfig(
  { ignores: ['dist/', 'node_modules/', 'coverage/', '.tap/'] },
  js.configs.recommended,
  tseslint.configs.strictTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: { allowDefaultProject: ['eslint.config.js'] }, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  ...layerRules(),
  // The installed command's shim: plain JavaScript that loads the compiled CLI (dist/), which the type checker does not see.
  { files: ['bin/**'], ...tseslint.configs.disableTypeChecked, languageOptions: { parserOptions: { projectService: false, project: null }, globals: { process: 'readonly' } } },
  {
    files: ['test/**', 'bench/**'],
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-floating-promises': 'off', // tap's t.test() promises are awaited by tap itself
      '@typescript-eslint/require-await': 'off', // tap subtests are async by convention
    },
  },
);
