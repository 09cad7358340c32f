#!/usr/bin/env node
// The Orders service's OpenAPI document, checked against the running service (.ci/run runs this
// after the tests; `node scripts/schemathesis.mjs` by hand):
//
//   1. a virtualenv with schemathesis and openapi-spec-validator (pinned in
//      scripts/schemathesis/requirements.txt) in ~/.cache/tidemark/venv-schemathesis, made once
//      (python3 -m venv, then pip from PyPI) and again when the pins change;
//   2. the service from the sources, embedded (one scratch SQLite file), on a free port;
//   3. openapi-spec-validator on /openapi.json (the document is valid OpenAPI 3.1);
//   4. schemathesis on /openapi.json, every phase (coverage, fuzzing, stateful: orders created
//      and then used through the links it infers), positive and negative data, with the
//      conformance checks: no 5xx (not_a_server_error), every status documented
//      (status_code_conformance), content types (content_type_conformance), documented headers
//      present and well-formed (response_headers_conformance), bodies that match their schemas
//      (response_schema_conformance). Any failure fails the run.
//
// Bounded for CI: SCHEMATHESIS_MAX_EXAMPLES cases per operation and phase (default 50; about
// 2000 requests, under a minute here) and a fixed seed (SCHEMATHESIS_SEED, default 15) so that a failure can be
// replayed. Consistency waits are cut to 100 ms (CONSISTENCY_TIMEOUT_MS): generated tokens name
// writes that never come, and each would otherwise wait the default 5 s.
//
// What it reports as warnings, not failures, and why they are right:
//   - "mostly rejected generated data" for most operations: data that fits the schemas can still
//     break a rule the schemas cannot state, answered with the documented 4xx: a cursor must be
//     one the service issued (400 invalid_cursor), a history version must exist (404
//     version_not_found), a Consistency-Token's stream id must be percent-encoded UTF-8 (400
//     invalid_consistency_token), and the business rules (409: shipping an open order, ...).
//   - "repeatedly returned 404" for GET /orders/{orderId}/history: random versions of an order
//     are mostly versions it does not have (404 version_not_found, as the contract says).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const { fetch } = globalThis;

const root = new URL('../', import.meta.url).pathname;
const cache = process.env.TIDEMARK_CACHE_DIR ?? join(homedir(), '.cache', 'tidemark');
const venv = join(cache, 'venv-schemathesis');
const requirements = join(root, 'scripts', 'schemathesis', 'requirements.txt');
const maxExamples = process.env.SCHEMATHESIS_MAX_EXAMPLES ?? '50';
const seed = process.env.SCHEMATHESIS_SEED ?? '15';
const log = (message) => process.stderr.write(`[schemathesis] ${message}\n`);

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { stdio: 'inherit', ...options });
  if (result.error) throw result.error;
  return result.status ?? 1;
}

/** The virtualenv, made or brought up to the pinned versions. */
function ensureVenv() {
  const pins = readFileSync(requirements, 'utf8');
  const marker = join(venv, 'tidemark-requirements.txt');
  if (existsSync(marker) && readFileSync(marker, 'utf8') === pins) return;
  const python = process.env.PYTHON ?? 'python3';
  log(`installing ${requirements} into ${venv}`);
  rmSync(venv, { recursive: true, force: true });
  mkdirSync(cache, { recursive: true });
  if (run(python, ['-m', 'venv', venv]) !== 0) throw new Error(`${python} -m venv failed`);
  const pip = join(venv, 'bin', 'pip');
  if (run(pip, ['install', '--quiet', '--disable-pip-version-check', '-r', requirements]) !== 0)
    throw new Error('pip install failed');
  writeFileSync(marker, pins);
}

/** Starts the service; resolves with its address and a stop function. */
async function startService(dir) {
  const child = spawn(
    process.execPath,
    // Open (local development mode): this run checks the contract's answers; bearer
    // authentication has its own tests (test/orders/auth.test.ts).
    ['--conditions=tidemark-source', 'examples/orders/src/main.ts', '--insecure-dev'],
    {
      cwd: root,
      env: {
        ...process.env,
        PORT: '0',
        DATABASE_URL: join(dir, 'orders.db'),
        KAFKA_BROKERS: '',
        CONSISTENCY_TIMEOUT_MS: '100',
        LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise((resolve) =>
    child.on('exit', (code, signal) => resolve(code ?? signal)),
  );
  const address = await new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      try {
        const entry = JSON.parse(line);
        if (entry.msg === 'Tidemark Orders is listening') resolve(String(entry.address));
        // A 5xx is logged with its stack: show it beside schemathesis's report.
        if (entry.level >= 50) process.stderr.write(`[service] ${line}\n`);
      } catch {
        // not a log line
      }
    });
    void exited.then((code) => reject(new Error(`the service exited (${code}): ${stderr}`)));
  });
  return {
    address,
    async stop() {
      child.kill('SIGTERM');
      const code = await exited;
      if (code !== 0) throw new Error(`the service exited with ${code} after SIGTERM`);
    },
  };
}

ensureVenv();
const dir = mkdtempSync(join(tmpdir(), 'tidemark-schemathesis-'));
const service = await startService(dir);
let status = 1;
try {
  const documentPath = join(dir, 'openapi.json');
  const response = await fetch(`${service.address}/openapi.json`);
  writeFileSync(documentPath, await response.text());
  log('openapi-spec-validator on /openapi.json');
  status = run(join(venv, 'bin', 'openapi-spec-validator'), [documentPath]);
  if (status === 0) {
    log(`schemathesis on ${service.address}/openapi.json (${maxExamples} examples, seed ${seed})`);
    status = run(
      join(venv, 'bin', 'schemathesis'),
      [
        'run',
        `${service.address}/openapi.json`,
        '--checks',
        [
          'not_a_server_error',
          'status_code_conformance',
          'content_type_conformance',
          'response_headers_conformance',
          'response_schema_conformance',
        ].join(','),
        '--max-examples',
        maxExamples,
        '--seed',
        seed,
        '--request-timeout',
        '10',
        '--no-color',
      ],
      // Its caches stay out of the checkout.
      { cwd: dir },
    );
  }
} finally {
  await service.stop();
  rmSync(dir, { recursive: true, force: true });
}
process.exitCode = status;
