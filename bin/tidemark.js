#!/usr/bin/env node
// The `tidemark` command. An installed package runs its compiled CLI; a source checkout (no
// dist/, or TIDEMARK_CLI_SOURCE=1 as the test runner sets it) runs the TypeScript sources (Node
// strips the types itself), with the export condition that maps the package's own subpaths to
// src/, in a child process that gets our signals. Either way a tidemark.config.ts loads as it is.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

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
