/**
 * Diagnosis, not a benchmark: command-to-query visibility of the compiled Orders service in one
 * mode, split into the POST's time and the consistent GET's wait, with the slow requests (over
 * 60 ms) counted per second of the run, so a cold start's tail shows apart from a steady one.
 *
 *   node bench/diagnose-visibility.ts <embedded|postgres|kafka> [rate] [seconds]
 *        [--warm-rate N] [--warm-seconds N] [--node-arg FLAG ...]
 *
 * Needs `npm run build` (dist-examples/) and, for postgres and kafka, `npm run services:up`.
 * `--node-arg` passes a flag to the service's node (e.g. --cpu-prof, --trace-gc).
 */
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startServiceProcess } from '../test/support/process.ts';
import { deleteTopics } from './lib.ts';
import { freshDatabase } from './pg-scratch.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    'warm-rate': { type: 'string', default: '100' },
    'warm-seconds': { type: 'string', default: '1' },
    'node-arg': { type: 'string', multiple: true, default: [] },
  },
});
const mode = positionals[0] ?? 'kafka';
const rate = Number(positionals[1] ?? 500);
const seconds = Number(positionals[2] ?? 10);
if (!['embedded', 'postgres', 'kafka'].includes(mode) || !(rate > 0) || !(seconds > 0)) {
  process.stderr.write(
    'usage: diagnose-visibility.ts <embedded|postgres|kafka> [rate] [seconds]\n',
  );
  process.exit(2);
}

const dir = mkdtempSync(join(tmpdir(), 'tidemark-visibility-'));
const db = mode === 'embedded' ? undefined : await freshDatabase(process.env.DATABASE_URL!, 'vis');
const id = `vis-${process.pid}`;
const env: Record<string, string> =
  mode === 'kafka'
    ? {
        DATABASE_URL: db!.url,
        KAFKA_BROKERS: process.env.KAFKA_BROKERS!,
        KAFKA_TOPIC: `tm-${id}`,
        KAFKA_GROUP_PREFIX: id,
        KAFKA_RELAY_NAME: id,
      }
    : { DATABASE_URL: db?.url ?? join(dir, 'orders.db'), KAFKA_BROKERS: '' };
const service = await startServiceProcess(env, [], {
  compiled: true,
  nodeArgs: values['node-arg'],
});
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
const request = (method: string, path: string, body?: string, headers = {}) =>
  new Promise<{ headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
    const outgoing = http.request(
      `${service.url}${path}`,
      { method, agent, headers: { 'content-type': 'application/json', ...headers } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => (text += chunk));
        res.on('end', () => resolve({ headers: res.headers, body: text }));
      },
    );
    outgoing.on('error', reject);
    outgoing.end(body);
  });
const order = JSON.stringify({
  customerId: 'c-bench',
  lines: [{ sku: 'sku-1', quantity: 2, unitPriceCents: 1250 }],
});

async function run(rate: number, seconds: number) {
  const post: number[] = [];
  const get: number[] = [];
  const total: number[] = [];
  const slowBySecond = new Map<number, number>();
  let stale = 0;
  const start = performance.now();
  const one = async () => {
    const t0 = performance.now();
    const created = await request('POST', '/orders', order);
    const t1 = performance.now();
    const { orderId } = JSON.parse(created.body) as { orderId: string };
    const read = await request('GET', `/orders/${orderId}`, undefined, {
      'consistency-token': String(created.headers['consistency-token']),
    });
    const t2 = performance.now();
    if (read.headers.consistency !== 'fresh') return void stale++;
    post.push(t1 - t0);
    get.push(t2 - t1);
    total.push(t2 - t0);
    if (t2 - t0 > 60) {
      const second = Math.floor((t0 - start) / 1000);
      slowBySecond.set(second, (slowBySecond.get(second) ?? 0) + 1);
    }
  };
  const inFlight: Promise<void>[] = [];
  for (let sent = 0; sent < rate * seconds; sent++) {
    const wait = start + (sent * 1000) / rate - performance.now();
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
    inFlight.push(one());
  }
  await Promise.all(inFlight);
  const at = (list: number[], q: number) => {
    const sorted = [...list].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.floor((q / 100) * sorted.length))]!.toFixed(1);
  };
  console.log(`${rate}/s for ${seconds} s, ${stale} stale`);
  for (const [name, list] of [
    ['POST', post],
    ['GET wait', get],
    ['total', total],
  ] as const) {
    console.log(
      `  ${name.padEnd(9)} p50 ${at(list, 50)}  p90 ${at(list, 90)}  p99 ${at(list, 99)}  max ${at(list, 100)} ms`,
    );
  }
  console.log(
    `  over 60 ms, by second of the run: ${JSON.stringify(Object.fromEntries(slowBySecond))}`,
  );
}

try {
  console.log(`${mode}: warm-up`);
  await run(Number(values['warm-rate']), Number(values['warm-seconds']));
  console.log(`${mode}: measured`);
  await run(rate, seconds);
} finally {
  service.child.kill('SIGTERM');
  await service.exited;
  agent.destroy();
  await db?.drop();
  if (mode === 'kafka') await deleteTopics(process.env.KAFKA_BROKERS!, [`tm-${id}`]);
  rmSync(dir, { recursive: true, force: true });
}
