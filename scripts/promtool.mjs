#!/usr/bin/env node
// promtool, Prometheus's rule checker, for the alert rules in ops/prometheus (docs/operations.md).
//
//   node scripts/promtool.mjs          prints the path of a promtool binary, building it first if
//                                      the cache has none (progress on stderr)
//   node scripts/promtool.mjs check    checks the rules and runs their unit tests
//
// Prometheus publishes promtool as a Go command in its module, so it is built here with the
// machine's Go from the Go module proxy (the only place this workplace may take it from), pinned
// to one version, into ~/.cache/tidemark/promtool-<version>/ (TIDEMARK_CACHE_DIR moves the
// cache). The first build takes a few minutes on two cores; later calls reuse the binary.
// TIDEMARK_PROMTOOL names a promtool of your own instead (checked with --version, not built).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** The Go module version of github.com/prometheus/prometheus; v0.316.0 is Prometheus 3.16. */
export const PROMETHEUS_MODULE_VERSION = 'v0.316.0';
const MODULE = 'github.com/prometheus/prometheus/cmd/promtool';
const root = new URL('..', import.meta.url).pathname;

function answers(binary) {
  const run = spawnSync(binary, ['--version'], { encoding: 'utf8' });
  return run.status === 0;
}

/** The path of a working promtool, built into the cache when missing. Throws with the reason. */
export function ensurePromtool({ quiet = false } = {}) {
  const own = process.env.TIDEMARK_PROMTOOL;
  if (own) {
    if (!answers(own)) throw new Error(`TIDEMARK_PROMTOOL=${own} does not run (--version failed)`);
    return own;
  }
  const cache = process.env.TIDEMARK_CACHE_DIR ?? join(homedir(), '.cache', 'tidemark');
  const dir = join(cache, `promtool-${PROMETHEUS_MODULE_VERSION}`);
  const binary = join(dir, 'promtool');
  if (existsSync(binary) && answers(binary)) return binary;

  const go = spawnSync('go', ['version'], { encoding: 'utf8' });
  if (go.status !== 0) {
    throw new Error(
      'promtool is not built and Go is not on PATH: install Go (the machine image has it) or set TIDEMARK_PROMTOOL',
    );
  }
  const started = Date.now();
  if (!quiet) {
    process.stderr.write(
      `[promtool] building ${MODULE}@${PROMETHEUS_MODULE_VERSION} with ${go.stdout.trim()} (a few minutes, once)\n`,
    );
  }
  // Build into a scratch folder and move the binary into place, so an interrupted build never
  // leaves a half-written promtool that the existence check would take.
  const scratch = join(dir, `build-${process.pid}`);
  mkdirSync(scratch, { recursive: true });
  const build = spawnSync('go', ['install', `${MODULE}@${PROMETHEUS_MODULE_VERSION}`], {
    env: { ...process.env, GOBIN: scratch, GOFLAGS: '-buildvcs=false' },
    stdio: ['ignore', quiet ? 'ignore' : 'inherit', quiet ? 'pipe' : 'inherit'],
    encoding: 'utf8',
  });
  if (build.status !== 0) {
    throw new Error(
      `go install ${MODULE}@${PROMETHEUS_MODULE_VERSION} failed (exit ${build.status})${build.stderr ? `:\n${build.stderr.slice(-2000)}` : ''}`,
    );
  }
  renameSync(join(scratch, 'promtool'), binary);
  spawnSync('rm', ['-rf', scratch]);
  if (!quiet) {
    process.stderr.write(
      `[promtool] built in ${((Date.now() - started) / 1000).toFixed(0)} s: ${binary}\n`,
    );
  }
  return binary;
}

function main() {
  const [command] = process.argv.slice(2);
  let binary;
  try {
    binary = ensurePromtool();
  } catch (error) {
    process.stderr.write(`[promtool] ${error.message}\n`);
    process.exit(1);
  }
  if (command === undefined) {
    process.stdout.write(`${binary}\n`);
    return;
  }
  if (command !== 'check') {
    process.stderr.write('usage: node scripts/promtool.mjs [check]\n');
    process.exit(2);
  }
  for (const args of [
    ['check', 'rules', 'ops/prometheus/tidemark.rules.yml'],
    ['test', 'rules', 'ops/prometheus/tidemark.rules.test.yml'],
  ]) {
    const run = spawnSync(binary, args, { cwd: root, stdio: 'inherit' });
    if (run.status !== 0) process.exit(run.status ?? 1);
  }
}

if (process.argv[1] && new URL(import.meta.url).pathname === process.argv[1]) main();
