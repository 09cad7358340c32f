#!/usr/bin/env node
// The `tidemark` command. An installed package runs its compiled CLI; a source checkout (no
// dist/, or TIDEMARK_CLI_SOURCE=1 as the test runner sets it) runs the TypeScript sources (Node
// strips the types itself), with the export condition that maps the package's own subpaths to
// src/, in a child process that gets our signals. Either way a tidemark.config.ts loads as it is.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// The engines range of package.json: on an older Node the CLI would fail further in (a .ts
// config it cannot load, a native module built for another ABI), with a stack trace.
const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
if (!((major === 22 && minor >= 22) || (major === 24 && minor >= 6) || major >= 25)) {
  process.stderr.write(
    `tidemark: needs Node 22.22+ or 24.6+ (the engines of its package.json); this is ${process.version}\n`,
  );
  process.exit(1);
}

const compiled = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
if (existsSync(compiled) && process.env.TIDEMARK_CLI_SOURCE !== '1') {
  await import(compiled);
} else {
  const source = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
  const child = spawn(
    process.execPath,
    ['--conditions=tidemark-source', source, ...process.argv.slice(2)],
    { stdio: 'inherit' },
  );
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'])
    process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 128 + 2 : 1)));
}
