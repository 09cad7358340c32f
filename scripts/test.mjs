#!/usr/bin/env node
// Runs the test suite with Node's built-in runner on the TypeScript sources (through tsx).
//   node scripts/test.mjs                 every test file under test/
//   node scripts/test.mjs test/core       only files under the given folders or files
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const args = process.argv.slice(2);
const roots = args.length > 0 ? args : ['test'];

function collect(path, out) {
  const stat = statSync(path);
  if (stat.isFile()) {
    if (path.endsWith('.test.ts')) out.push(path);
    return out;
  }
  for (const entry of readdirSync(path).sort()) collect(join(path, entry), out);
  return out;
}

const files = roots.flatMap((r) => collect(join(root, r), [])).map((f) => relative(root, f));
if (files.length === 0) {
  console.error(`no test files under ${roots.join(', ')}`);
  process.exit(1);
}

const result = spawnSync(
  process.execPath,
  ['--conditions=tidemark-source', '--import', 'tsx', '--test', '--test-reporter=spec', ...files],
  { cwd: root, stdio: 'inherit', env: process.env },
);
process.exit(result.status ?? 1);
