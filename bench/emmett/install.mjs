#!/usr/bin/env node
// Installs the Emmett peer into bench/emmett/node_modules, apart from Tidemark's own
// dependencies: `node bench/emmett/install.mjs` (`npm run bench` calls it when it is missing).
//
// Why these versions (see package.json): emmett-sqlite 0.42.4 bundles its own copy of Emmett's
// core and declares the 0.42.4 core as a peer, which the registry does not have; emmett 0.42.0
// (types, and the core emmett-postgresql 0.42.0 uses) stands in, under legacy-peer-deps
// (.npmrc). Peers are then not installed on their own, so package.json lists them: pongo 0.16.11
// and dumbo 0.12.7 (what emmett-postgresql 0.42.0 was released with), pg, uuid, async-retry.
// node-sqlite3 is compiled from source here (a few minutes the first time).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const result = spawnSync(npm, ['ci', '--no-audit', '--no-fund'], { cwd: here, stdio: 'inherit' });
if (result.status !== 0) {
  process.stderr.write('bench/emmett: npm ci failed\n');
  process.exit(result.status ?? 1);
}
