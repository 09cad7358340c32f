#!/usr/bin/env node
// POST /orders against the compiled Orders service of two checkouts, in alternating rounds
// (A B, B A, A B, ...), so that the machine's load falls on both alike. A quick regression check
// between commits; the full HTTP scenarios are `npm run bench -- --only http`.
//
//   node bench/http-ab.mjs OLD_DIR NEW_DIR [sqlite|postgres|kafka] [rounds=3] [seconds=10]
//
// Each directory is a checkout with `npm run build` done (dist-examples/orders/src/main.js).
// sqlite: a scratch file per round. postgres and kafka: the databases in AB_PG_URL_A and
// AB_PG_URL_B (one per checkout: their schemas may differ); kafka also uses the broker in
// AB_KAFKA_BROKERS (127.0.0.1:9092) with topics, relay names and groups of the run's own.
// Prints each round and a JSON line: the rates, their medians and the per-pair ratios B/A.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

const { fetch } = globalThis;
const autocannon = createRequire(import.meta.url)('autocannon');
const [a, b, mode = 'sqlite', rounds = '3', seconds = '10'] = process.argv.slice(2);
if (!a || !b || !['sqlite', 'postgres', 'kafka'].includes(mode)) {
  console.error(
    'usage: node bench/http-ab.mjs OLD_DIR NEW_DIR [sqlite|postgres|kafka] [rounds] [seconds]',
  );
  process.exit(2);
}
const run = Date.now();
const sides = { A: resolve(a), B: resolve(b) };

async function start(side, port) {
  const data = mkdtempSync(join(tmpdir(), 'tidemark-ab-'));
  const env = {
    ...process.env,
    PORT: String(port),
    LOG_LEVEL: 'warn',
    KAFKA_BROKERS: '',
    // Both sides open: the older side ignores it, the newer needs it (or keys) to start.
    TIDEMARK_AUTH: 'off',
    DATABASE_URL: mode === 'sqlite' ? join(data, 'orders.db') : process.env[`AB_PG_URL_${side}`],
  };
  if (mode === 'kafka') {
    const tag = `ab-${side.toLowerCase()}-${run}`;
    Object.assign(env, {
      KAFKA_BROKERS: process.env.AB_KAFKA_BROKERS ?? '127.0.0.1:9092',
      KAFKA_TOPIC: tag,
      KAFKA_RELAY_NAME: tag,
      KAFKA_GROUP_PREFIX: tag,
    });
  }
  const child = spawn(process.execPath, ['dist-examples/orders/src/main.js'], {
    cwd: sides[side],
    env,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  // Ready: /ready answers 200 (a start-up wait, not part of any measurement).
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${sides[side]}: the service exited`);
    const status = await fetch(`http://127.0.0.1:${port}/ready`).then(
      (r) => r.status,
      () => 0,
    );
    if (status === 200) break;
    await delay(100);
  }
  return { child, exited, data };
}

const order = [];
for (let i = 0; i < Number(rounds); i++) order.push(...(i % 2 ? ['B', 'A'] : ['A', 'B']));
const rates = { A: [], B: [] };
let port = 4100;
for (const side of order) {
  const { child, exited, data } = await start(side, ++port);
  const result = await autocannon({
    url: `http://127.0.0.1:${port}/orders`,
    method: 'POST',
    connections: 32,
    duration: Number(seconds),
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      customerId: 'c-1',
      lines: [{ sku: 'A', quantity: 1, unitPriceCents: 100 }],
    }),
  });
  const rate = result['2xx'] / Number(seconds);
  rates[side].push(rate);
  console.log(
    `${side} ${rate.toFixed(0)} req/s, p99 ${result.latency.p99} ms, non-2xx ${result.non2xx}, errors ${result.errors}`,
  );
  child.kill('SIGTERM');
  await exited;
  rmSync(data, { recursive: true, force: true });
}
const median = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
console.log(
  JSON.stringify({
    mode,
    A: rates.A.map(Math.round),
    B: rates.B.map(Math.round),
    medianA: Math.round(median(rates.A)),
    medianB: Math.round(median(rates.B)),
    pairRatiosBA: rates.B.map((rate, i) => Number((rate / rates.A[i]).toFixed(2))),
  }),
);
