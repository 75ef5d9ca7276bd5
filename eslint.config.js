import { dirname, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const ROOT = dirname(fileURLToPath(import.meta.url));
/** The workspace package a path belongs to: `packages/<x>`, or the gateway (src/ and the rest). */
function packageOf(path) {
  const parts = relative(ROOT, path).split(sep);
  return parts[0] === 'packages' && parts.length > 2 ? `packages/${parts[1]}` : 'the gateway';
}

/**
 * No relative import crosses a package boundary (packages/<x>/ <-> packages/<y>/ or the gateway's src/):
 * packages import each other by name (`@apix/protocol`), so each one builds and ships on its own.
 */
const noCrossPackageImports = {
  meta: {
    type: 'problem',
    schema: [],
    messages: {
      cross: '{{spec}} crosses from {{from}} into {{to}}: import a package by its name (@apix/protocol).',
    },
  },
  create(context) {
    const from = packageOf(context.filename);
    const check = (node) => {
      const spec = node?.type === 'Literal' && typeof node.value === 'string' ? node.value : undefined;
      if (!spec || !spec.startsWith('.')) return;
      const to = packageOf(resolve(dirname(context.filename), spec));
      if (to !== from) context.report({ node, messageId: 'cross', data: { spec, from, to } });
    };
    return {
      ImportDeclaration: (n) => check(n.source),
      ExportNamedDeclaration: (n) => check(n.source),
      ExportAllDeclaration: (n) => check(n.source),
      ImportExpression: (n) => check(n.source),
    };
  },
};

export default tseslint.config(
  {
    ignores: [
      'node_modules',
      '**/dist',
      '.apix',
      '.quickstart-test-*',
      'src/generated',
      'bench/results',
      'examples/**/*.js',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    plugins: { apix: { rules: { 'no-cross-package-imports': noCrossPackageImports } } },
    rules: {
      'apix/no-cross-package-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-restricted-properties': [
        'error',
        {
          object: 'process',
          property: 'env',
          message: 'Only src/config.ts and the CLI entry read process.env.',
        },
      ],
    },
  },
  {
    files: [
      'src/cli/**',
      'src/config.ts',
      'tests/**',
      'bench/**',
      'scripts/**',
      'examples/**',
      'prisma.config.ts',
    ],
    rules: { 'no-restricted-properties': 'off' },
  },
  {
    // Tests and examples may reach across: the SDK's tests start a real gateway in-process, and the
    // gateway's tests and the examples drive the SDK from its source.
    files: ['tests/**', 'examples/**', 'packages/*/tests/**'],
    rules: { 'apix/no-cross-package-imports': 'off' },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
  },
);
