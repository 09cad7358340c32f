#!/usr/bin/env node
// Runs the test suite with Node's built-in runner on the TypeScript sources (Node strips the
// types itself: no loader).
//   node scripts/test.mjs                  every test file under test/
//   node scripts/test.mjs test/core        only files under the given folders or files
//   node scripts/test.mjs --only unit      only files that need no PostgreSQL or Kafka
//   node scripts/test.mjs --no-services    start nothing (files that need a service fail, loudly)
//
// A test file needs real services when it imports test/support/services.ts. Before running such
// files this script runs `scripts/services.mjs up` for the services they use (PostgreSQL, Kafka,
// or both, judged from the helpers they call) and passes the answers to the test processes as
// TIDEMARK_TEST_DATABASE_URL and TIDEMARK_TEST_KAFKA_BROKERS. A developer's own DATABASE_URL and
// KAFKA_BROKERS are not used for tests; to test against servers of your own, set the
// TIDEMARK_TEST_* variables instead (they are checked, not started). Services are left running
// for the next run: `npm run services:down` stops them.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const argv = process.argv.slice(2);

function takeOption(name) {
  const i = argv.indexOf(name);
  if (i === -1) return undefined;
  const value = argv[i + 1];
  argv.splice(i, 2);
  return value;
}
function takeFlag(name) {
  const i = argv.indexOf(name);
  if (i === -1) return false;
  argv.splice(i, 1);
  return true;
}

const only = takeOption('--only');
const noServices = takeFlag('--no-services') || process.env.TIDEMARK_TEST_SERVICES === '0';
if (only !== undefined && only !== 'unit' && only !== 'integration') {
  console.error(`--only takes 'unit' or 'integration', not '${only}'`);
  process.exit(2);
}
const roots = argv.length > 0 ? argv : ['test'];

function collect(path, out) {
  const stat = statSync(path);
  if (stat.isFile()) {
    if (path.endsWith('.test.ts')) out.push(path);
    return out;
  }
  for (const entry of readdirSync(path).sort()) collect(join(path, entry), out);
  return out;
}

/** Which services a test file uses, judged from its imports of test/support/services.ts. */
function servicesUsedBy(file) {
  const text = readFileSync(join(root, file), 'utf8');
  if (!/from\s+['"][./]*(?:\.\.\/)*support\/services(?:\.ts)?['"]/.test(text)) return [];
  const used = [];
  if (/\b(postgresUrl|createTestDatabase)\b/.test(text)) used.push('postgres');
  if (/\b(kafkaConnection|kafkaBrokers|createTestTopic)\b/.test(text)) used.push('kafka');
  // The three-broker cluster (three JVMs): only for the files that ask for it, and not at all
  // with TIDEMARK_KAFKA_CLUSTER=0 (those files then skip).
  if (/\b(kafkaClusterBrokers|kafkaClusterConnection)\b/.test(text)) {
    if (process.env.TIDEMARK_KAFKA_CLUSTER !== '0') used.push('kafka-cluster');
    else if (used.length === 0) used.push('none');
  }
  // Imports the module but no helper we recognise: give it both rather than guess.
  return used.length > 0 ? used : ['postgres', 'kafka'];
}

let files = roots.flatMap((r) => collect(join(root, r), [])).map((f) => relative(root, f));
const needs = new Map(files.map((f) => [f, servicesUsedBy(f)]));
if (only === 'unit') files = files.filter((f) => needs.get(f).length === 0);
if (only === 'integration') files = files.filter((f) => needs.get(f).length > 0);
if (files.length === 0) {
  console.error(`no test files under ${roots.join(', ')}${only ? ` (--only ${only})` : ''}`);
  process.exit(1);
}

// The tests exercise the sources: bin/tidemark.js must not run a dist/ left by an earlier build.
const env = { ...process.env, TIDEMARK_CLI_SOURCE: '1' };
const wanted = [...new Set(files.flatMap((f) => needs.get(f)))].filter((s) => s !== 'none');
if (wanted.length > 0 && !noServices) {
  // services.mjs honours DATABASE_URL / KAFKA_BROKERS as "use this one"; for tests that role is
  // played by the TIDEMARK_TEST_* variables, so the developer's own settings never leak in.
  const servicesEnv = { ...process.env };
  delete servicesEnv.DATABASE_URL;
  delete servicesEnv.KAFKA_BROKERS;
  if (process.env.TIDEMARK_TEST_DATABASE_URL)
    servicesEnv.DATABASE_URL = process.env.TIDEMARK_TEST_DATABASE_URL;
  delete servicesEnv.KAFKA_CLUSTER_BROKERS;
  if (process.env.TIDEMARK_TEST_KAFKA_CLUSTER_BROKERS)
    servicesEnv.KAFKA_CLUSTER_BROKERS = process.env.TIDEMARK_TEST_KAFKA_CLUSTER_BROKERS;
  if (process.env.TIDEMARK_TEST_KAFKA_BROKERS) {
    servicesEnv.KAFKA_BROKERS = process.env.TIDEMARK_TEST_KAFKA_BROKERS;
    for (const [k, v] of Object.entries(process.env)) {
      if (k.startsWith('TIDEMARK_TEST_KAFKA_SSL') || k.startsWith('TIDEMARK_TEST_KAFKA_SASL')) {
        servicesEnv[k.replace('TIDEMARK_TEST_', '')] = v;
      }
    }
  }
  console.error(
    `[test] ${files.filter((f) => needs.get(f).length > 0).length} file(s) need ${wanted.join(' and ')}: services up`,
  );
  const up = spawnSync(process.execPath, [join(root, 'scripts', 'services.mjs'), 'up', ...wanted], {
    cwd: root,
    env: servicesEnv,
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
  });
  if (up.status !== 0) {
    console.error(
      '[test] could not start the services these tests need (see above); no test was run',
    );
    process.exit(1);
  }
  for (const line of up.stdout.split('\n')) {
    const m = /^(DATABASE_URL|KAFKA_BROKERS|KAFKA_CLUSTER_BROKERS)=(.+)$/.exec(line.trim());
    if (m?.[1] === 'KAFKA_CLUSTER_BROKERS') env.TIDEMARK_TEST_KAFKA_CLUSTER_BROKERS = m[2];
    if (m?.[1] === 'DATABASE_URL') env.TIDEMARK_TEST_DATABASE_URL = m[2];
    if (m?.[1] === 'KAFKA_BROKERS') env.TIDEMARK_TEST_KAFKA_BROKERS = m[2];
  }
  for (const service of wanted) {
    const variable = {
      postgres: 'TIDEMARK_TEST_DATABASE_URL',
      kafka: 'TIDEMARK_TEST_KAFKA_BROKERS',
      'kafka-cluster': 'TIDEMARK_TEST_KAFKA_CLUSTER_BROKERS',
    }[service];
    if (!env[variable]) {
      console.error(`[test] services up printed no value for ${variable}; no test was run`);
      process.exit(1);
    }
  }
}

// A test that hangs fails after this long (TIDEMARK_TEST_TIMEOUT_MS) instead of holding CI to its
// limit; the slowest tests (full-size crash runs) take a few minutes.
const timeoutMs = Number(process.env.TIDEMARK_TEST_TIMEOUT_MS ?? 600_000);
const result = spawnSync(
  process.execPath,
  [
    '--conditions=tidemark-source',
    // Fails a file whose process stays alive after its tests, naming what holds it open.
    `--import=${join(root, 'test', 'support', 'exit-watch.ts')}`,
    '--test',
    '--test-reporter=spec',
    `--test-timeout=${timeoutMs}`,
    ...files,
  ],
  { cwd: root, stdio: 'inherit', env },
);
process.exit(result.status ?? 1);
