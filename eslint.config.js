// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      'dist/**',
      'dist-examples/**',
      'node_modules/**',
      'data/**',
      '.services/**',
      'bench/emmett/**',
      'bench/results/**',
      // The console's bundle, built from admin-ui/ (scripts/admin-assets.mjs).
      'src/http/admin/assets/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: { process: 'readonly', console: 'readonly', URL: 'readonly' },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': 'off',
    },
  },
  {
    // The library logs through an injected logger, never the console.
    files: ['src/**/*.ts'],
    ignores: ['src/cli/**'],
    rules: { 'no-console': 'error' },
  },
  {
    // The core has no I/O: no Node built-ins, no drivers, no other layer of Tidemark.
    files: ['src/core/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['node:*'],
              message: 'src/core has no I/O: Node built-ins are not allowed here.',
            },
            {
              group: [
                'better-sqlite3',
                'pg',
                'pg-*',
                '@platformatic/*',
                'fastify',
                'fastify-*',
                '@fastify/*',
                'pino',
              ],
              message:
                'src/core has no I/O: drivers and frameworks belong in their adapter folder.',
            },
            {
              group: ['../*', '!../core/*'],
              message: 'src/core must not depend on the adapters.',
            },
          ],
          paths: [
            'fs',
            'path',
            'net',
            'http',
            'crypto',
            'os',
            'child_process',
            'events',
            'stream',
            'timers',
          ].map((name) => ({
            name,
            message: 'src/core has no I/O: Node built-ins are not allowed here.',
          })),
        },
      ],
      'no-restricted-globals': [
        'error',
        {
          name: 'process',
          message: 'src/core reads no environment; configuration arrives as arguments.',
        },
        {
          name: 'setTimeout',
          message: 'src/core does no timing; take a clock or scheduler as an argument.',
        },
      ],
    },
  },
);
