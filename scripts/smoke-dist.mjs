// Starts the compiled Orders service (`npm run start:dist`, after `npm run build`) on a scratch
// SQLite file, creates an order over HTTP, reads it back with its consistency token, and stops
// the service with SIGTERM: what a production deployment runs, checked end to end, with bearer
// authentication on (a shared secret; a request without a token must be refused). Then every
// command of the compiled CLI (bin/tidemark.js with dist/ present) runs on the same file: with
// the repository's tidemark.config.ts (Node strips its types), and again on a Node that does not
// strip types, with the config the build compiled (dist-examples/orders/tidemark.config.js);
// there the TypeScript config must be refused with a one-line usage error. Exits 1 with the
// output on any failure. Used by .ci/run between the build and the tests.
import { Buffer } from 'node:buffer';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { SignJWT } from 'jose';

const { fetch } = globalThis;
const root = new URL('../', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'tidemark-smoke-'));
// The service takes AUTH_SECRET's UTF-8 bytes as the HMAC key: sign with the same bytes.
const secret = randomBytes(32).toString('base64url');
const bearer = `Bearer ${await new SignJWT({ roles: ['reader', 'writer'] })
  .setProtectedHeader({ alg: 'HS256' })
  .setSubject('smoke')
  .setIssuer('tidemark-smoke')
  .setAudience('orders')
  .setExpirationTime('5m')
  .sign(Buffer.from(secret, 'utf8'))}`;
const child = spawn(process.execPath, ['dist-examples/orders/src/main.js'], {
  cwd: root,
  env: {
    ...process.env,
    PORT: '0',
    DATABASE_URL: join(dir, 'smoke.db'),
    KAFKA_BROKERS: '',
    LOG_LEVEL: 'info',
    AUTH_SECRET: secret,
    AUTH_ISSUER: 'tidemark-smoke',
    AUTH_AUDIENCE: 'orders',
  },
  stdio: ['ignore', 'pipe', 'pipe'],
});
let output = '';
let stopping = false;
child.stderr.on('data', (chunk) => (output += chunk));
const exited = new Promise((resolve) =>
  child.on('exit', (code, signal) => resolve(code ?? signal)),
);

function fail(message) {
  console.error(`[smoke] ${message}\n${output}`);
  if (child.exitCode === null) child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
  process.exit(1);
}

const address = await new Promise((resolve) => {
  createInterface({ input: child.stdout }).on('line', (line) => {
    output += `${line}\n`;
    try {
      const entry = JSON.parse(line);
      if (entry.msg === 'Tidemark Orders is listening') resolve(String(entry.address));
    } catch {
      // not a log line
    }
  });
  void exited.then((code) => {
    if (!stopping) fail(`the compiled service exited (${code}) before it was stopped`);
  });
});

const order1 = {
  customerId: 'c-smoke',
  lines: [{ sku: 'SKU-1', quantity: 2, unitPriceCents: 1299 }],
};
const refused = await fetch(`${address}/orders`, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(order1),
});
if (refused.status !== 401) fail(`POST /orders without a token answered ${refused.status}`);
const created = await fetch(`${address}/orders`, {
  method: 'POST',
  headers: { 'content-type': 'application/json', authorization: bearer },
  body: JSON.stringify(order1),
});
const body = await created.json();
if (created.status !== 201)
  fail(`POST /orders answered ${created.status}: ${JSON.stringify(body)}`);
const token = created.headers.get('consistency-token');
if (!token) fail('POST /orders carried no Consistency-Token');
const read = await fetch(`${address}/orders/${body.orderId}`, {
  headers: { 'consistency-token': token, authorization: bearer },
});
const order = await read.json();
if (read.status !== 200 || read.headers.get('consistency') !== 'fresh' || order.lines?.length !== 1)
  fail(`GET /orders/${body.orderId}: ${read.status} ${JSON.stringify(order)}`);

// The admin console: its page and assets come from dist (copied by npm run build), its API is
// behind the operator role.
const page = await fetch(`${address}/admin`);
const html = await page.text();
const script = html.match(/src="([^"]+console\.js[^"]*)"/)?.[1];
if (page.status !== 200 || !script) fail(`GET /admin answered ${page.status}`);
const asset = await fetch(`${address}${script}`);
if (asset.status !== 200 || (await asset.text()).length < 1000)
  fail(`GET ${script} answered ${asset.status}`);
const consoleApi = await fetch(`${address}/admin/api/projections`);
if (consoleApi.status !== 401)
  fail(`GET /admin/api/projections without a token answered ${consoleApi.status}`);

stopping = true;
child.kill('SIGTERM');
const code = await exited;
if (code !== 0) fail(`the compiled service exited with ${code} after SIGTERM`);
console.log(
  `[smoke] compiled service with bearer authentication: refused a request without a token, created and read order ${body.orderId}, served the admin console (its API refused without a token), stopped cleanly`,
);

const database = join(dir, 'smoke.db');
const cliEnv = { ...process.env, DATABASE_URL: database };
delete cliEnv.TIDEMARK_CLI_SOURCE;
delete cliEnv.TIDEMARK_CONFIG;
delete cliEnv.KAFKA_BROKERS;
delete cliEnv.NODE_OPTIONS;
const streamId = `order-${body.orderId}`;

/** Runs the compiled CLI; fails the smoke unless it exits with `expected`. */
function tidemark(args, { env = {}, expected = 0 } = {}) {
  const result = spawnSync(process.execPath, ['bin/tidemark.js', ...args], {
    cwd: root,
    env: { ...cliEnv, ...env },
    encoding: 'utf8',
  });
  const what = `${env.NODE_OPTIONS ?? ''} ${env.TIDEMARK_CONFIG ?? ''} tidemark ${args.join(' ')}`;
  if (result.status !== expected) {
    output += `${result.stdout}\n${result.stderr}`;
    fail(`${what.trim()}: exit ${result.status}, expected ${expected}`);
  }
  return result;
}

const json = (result) => JSON.parse(result.stdout);

// Every command, as an operator runs them after a deployment; the exit codes are the documented
// ones (0 done, 2 usage, 3 not found).
function everyCommand(env, reset) {
  const statuses = json(tidemark(['projections', 'status', '--json'], { env }));
  // deployedCodeVersion is there only when the config's projections were loaded.
  if (
    !Array.isArray(statuses) ||
    statuses.length === 0 ||
    !statuses.every((s) => typeof s.deployedCodeVersion === 'number')
  )
    fail(`projections status did not see the config's projections: ${JSON.stringify(statuses)}`);
  const streams = json(tidemark(['streams', 'list', '--json'], { env }));
  if (!JSON.stringify(streams).includes(streamId)) fail(`streams list lacks ${streamId}`);
  const events = json(tidemark(['streams', 'show', streamId, '--json'], { env }));
  if (!JSON.stringify(events).includes('OrderCreated')) fail(`streams show ${streamId}`);
  tidemark(['events', 'tail', '--limit', '5'], { env });
  tidemark(['dlq', 'list'], { env });
  tidemark(['dlq', 'retry', 'order-details', streamId], { env, expected: 3 });
  tidemark(['dlq', 'skip', 'order-details', 'no-such-event'], { env, expected: 3 });
  tidemark(['migrate'], { env });
  const rebuilt = tidemark(['projections', 'rebuild', 'order-list', '--drop-after', '0'], { env });
  if (!/order-list v\d+ active/.test(rebuilt.stdout)) fail(`rebuild: ${rebuilt.stdout}`);
  tidemark(['projections', 'reset', reset, '--yes'], { env });
  // Kafka commands say what they need (no broker here).
  tidemark(['relay', 'status'], { env, expected: 2 });
  tidemark(['--help'], { env });
  return statuses;
}

const statuses = everyCommand({}, 'customer-summary');
console.log(
  `[smoke] compiled CLI with tidemark.config.ts: every command ran (${statuses.map((s) => `${s.name} v${s.version}`).join(', ')})`,
);
const noStrip = { NODE_OPTIONS: '--no-experimental-strip-types' };
const tsRefused = tidemark(['projections', 'status'], { env: noStrip, expected: 2 });
if (!/does not strip types/.test(tsRefused.stderr) || tsRefused.stderr.trim().includes('\n'))
  fail(
    `a TypeScript config without type stripping: not a one-line usage error: ${tsRefused.stderr}`,
  );
everyCommand(
  { ...noStrip, TIDEMARK_CONFIG: 'dist-examples/orders/tidemark.config.js' },
  'order-details',
);
console.log(
  '[smoke] compiled CLI without type stripping: tidemark.config.ts refused with a clear error; every command ran with dist-examples/orders/tidemark.config.js',
);
rmSync(dir, { recursive: true, force: true });
