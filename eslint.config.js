// @ts-check
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

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
  {
    // The pure core decides; it must not reach for HTTP, logging, files or the Kubernetes API.
    files: ['src/admission/**', 'src/policy/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['fastify', 'pino', 'pino-*', '@kubernetes/client-node', 'node:fs', 'node:fs/*', 'fs', 'node:net', 'node:http*', 'node:tls'], message: 'the decision core stays pure (see STYLE.md)', allowTypeImports: true },
            { group: ['**/server/**', '**/cli/**', '**/kube/**', '**/config/load.ts', '**/config/store.ts'], message: 'dependencies point from the shell to the core, not back', allowTypeImports: true },
          ],
        },
      ],
    },
  },
  {
    files: ['test/**', 'bench/**'],
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-floating-promises': 'off', // tap's t.test() promises are awaited by tap itself
      '@typescript-eslint/require-await': 'off', // tap subtests are async by convention
    },
  },
);
