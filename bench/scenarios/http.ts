/**
 * The Orders service over HTTP, as a separate process (so the load generator does not share its
 * event loop; it does share the machine's cores), started afresh for each measurement so its
 * peak memory (VmHWM) and its projections' backlog belong to that measurement alone:
 *
 * - POST /orders throughput with autocannon (32 connections);
 * - command-to-query visibility at a fixed rate (open loop, 500 commands/s, or half the POST
 *   rate measured for that variant in the same run when that is less, as issue 16 asks of a
 *   service that cannot take 500/s here; the row's notes and `offeredRate` say so): from
 *   sending a command until a GET carrying its Consistency-Token has answered fresh, i.e. the
 *   read model shows the write.
 *
 * Variants take turns round by round (`--rounds`; E P K, K P E, …), every POST round first and
 * then every visibility round (whose rate needs the POST capacity); each variant's median round
 * is kept, and the ratios (Kafka mode against PostgreSQL alone) are taken pair by pair.
 *
 * The service runs compiled (`npm run build`, then dist-examples/orders/src/main.js), as a
 * production deployment would: `npm start` runs the TypeScript sources, and Node's type stripper
 * adds some 25 MB to the resident set. The scenario builds first.
 *
 * Variants: embedded (SQLite, the default); on PostgreSQL (a database of its own) when
 * PostgreSQL is there; with Kafka (PostgreSQL + Kafka: relay and Kafka-fed projections) when
 * both are there and the service has a Kafka mode.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { startServiceProcess, type ServiceProcess } from '../../test/support/process.ts';
import {
  alternate,
  benchDatabaseUrl,
  failedResult,
  percentile,
  progress,
  Skip,
  type Result,
} from '../lib.ts';
import { freshDatabase } from '../pg-scratch.ts';
import type { BenchContext } from '../run.ts';

const body = JSON.stringify({
  customerId: 'c-bench',
  lines: [
    { sku: 'SKU-1', quantity: 2, unitPriceCents: 1299 },
    { sku: 'SKU-2', quantity: 1, unitPriceCents: 450 },
  ],
});

/** Peak resident set of a process (VmHWM), in MB. */
function peakRssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return Math.round((kb / 1024) * 10) / 10;
}

async function stop(service: ServiceProcess) {
  service.child.kill('SIGTERM');
  await service.exited;
}

export async function throughput(url: string, seconds: number) {
  const result = await autocannon({
    url: `${url}/orders`,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
    connections: 32,
    duration: seconds,
  });
  return {
    opsPerSec: Math.round((result.requests.total - result.non2xx) / seconds),
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    errors: result.errors + result.non2xx,
  };
}

/** A keep-alive HTTP client on node:http: far cheaper per request than fetch, so it measures the server. */
export function httpClient(base: string) {
  const url = new URL(base);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  const request = (
    method: string,
    path: string,
    payload?: string,
    headers: Record<string, string> = {},
  ) =>
    new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>(
      (resolve, reject) => {
        const outgoing = http.request(
          {
            host: url.hostname,
            port: url.port,
            method,
            path,
            agent,
            headers: payload
              ? {
                  ...headers,
                  'content-type': 'application/json',
                  'content-length': Buffer.byteLength(payload),
                }
              : headers,
          },
          (response) => {
            let text = '';
            response.setEncoding('utf8');
            response.on('data', (chunk: string) => (text += chunk));
            response.on('end', () =>
              resolve({ status: response.statusCode!, headers: response.headers, body: text }),
            );
          },
        );
        outgoing.on('error', reject);
        outgoing.end(payload);
      },
    );
  return { request, close: () => agent.destroy() };
}

/**
 * Sends `rate` commands per second for `seconds` (open loop: on schedule, whatever the answers);
 * each is followed by a GET with its token. Visibility = from sending the command until the GET
 * answers fresh.
 */
export async function visibility(base: string, rate: number, seconds: number) {
  const client = httpClient(base);
  const latencies: number[] = [];
  let failures = 0;
  const one = async () => {
    const started = performance.now();
    try {
      const created = await client.request('POST', '/orders', body);
      const { orderId } = JSON.parse(created.body) as { orderId: string };
      const token = String(created.headers['consistency-token']);
      const read = await client.request('GET', `/orders/${orderId}`, undefined, {
        'consistency-token': token,
      });
      if (read.headers.consistency !== 'fresh') failures++;
      else latencies.push(performance.now() - started);
    } catch {
      failures++;
    }
  };
  const inFlight: Promise<void>[] = [];
  const start = performance.now();
  const total = rate * seconds;
  for (let sent = 0; sent < total; sent++) {
    const due = start + (sent * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
    inFlight.push(one());
  }
  await Promise.all(inFlight);
  client.close();
  latencies.sort((a, b) => a - b);
  return {
    p50Ms: Math.round(percentile(latencies, 50) * 1000) / 1000,
    p99Ms: Math.round(percentile(latencies, 99) * 1000) / 1000,
    samples: latencies.length,
    failures,
  };
}

interface Variant {
  impl: string;
  /** Environment of the service, or why the variant cannot run here. */
  env: () => Promise<{ env: Record<string, string>; cleanup: () => Promise<unknown> } | Skip>;
}

function variants(ctx: BenchContext): Variant[] {
  let n = 0;
  const pgDatabase = async () => {
    const url = benchDatabaseUrl();
    if (!url) return new Skip('PostgreSQL missing: `npm run services:up`');
    const db = await freshDatabase(url, 'http');
    return { url: db.url, drop: db.drop };
  };
  const brokers = process.env.TIDEMARK_BENCH_KAFKA_BROKERS ?? process.env.KAFKA_BROKERS;
  return [
    {
      impl: 'tidemark embedded (SQLite)',
      env: async () => ({
        env: { DATABASE_URL: join(ctx.dir, `http-${n++}.db`), KAFKA_BROKERS: '' },
        cleanup: async () => {},
      }),
    },
    {
      impl: 'tidemark on PostgreSQL',
      env: async () => {
        const db = await pgDatabase();
        if (db instanceof Skip) return db;
        return { env: { DATABASE_URL: db.url, KAFKA_BROKERS: '' }, cleanup: db.drop };
      },
    },
    {
      impl: 'tidemark with Kafka (PostgreSQL)',
      env: async () => {
        if (!brokers) return new Skip('Kafka missing: `npm run services:up`');
        const db = await pgDatabase();
        if (db instanceof Skip) return db;
        const id = `bench-${process.pid}-${n++}`;
        return {
          env: {
            DATABASE_URL: db.url,
            KAFKA_BROKERS: brokers,
            KAFKA_TOPIC: `tm-${id}`,
            KAFKA_GROUP_PREFIX: id,
            KAFKA_RELAY_NAME: id,
          },
          cleanup: db.drop,
        };
      },
    },
  ];
}

/** Starts the service for one measurement; refuses a Kafka variant the service cannot run. */
async function withService<T>(
  variant: Variant,
  measure: (service: ServiceProcess) => Promise<T>,
): Promise<T> {
  const prepared = await variant.env();
  if (prepared instanceof Skip) throw prepared;
  try {
    const service = await startServiceProcess(prepared.env, [], { compiled: true });
    try {
      const warned = service.logs.some((l) => /Kafka mode is not built/.test(String(l.msg)));
      if (prepared.env.KAFKA_BROKERS && warned) {
        throw new Skip('this Orders service has no Kafka mode yet');
      }
      return await measure(service);
    } finally {
      await stop(service);
    }
  } finally {
    await prepared.cleanup().catch(() => {});
  }
}

/** Builds dist/ and dist-examples/ (the compiled service). */
function build(): void {
  progress('building the service (npm run build)');
  const root = new URL('../../', import.meta.url).pathname;
  const built = spawnSync('npm', ['run', '-s', 'build'], { cwd: root, encoding: 'utf8' });
  if (built.status !== 0) {
    throw new Error(`npm run build failed: ${built.stdout}${built.stderr}`.trim());
  }
}

/** The rate of the visibility test: 500 commands/s, or half the capacity when that is less. */
export function visibilityRate(postCapacity: number | undefined): number {
  const wanted = 500;
  if (!postCapacity || postCapacity <= 0) return wanted;
  return Math.max(1, Math.min(wanted, Math.floor(postCapacity / 2)));
}

export async function httpEmbedded(ctx: BenchContext): Promise<Result[]> {
  build();
  // Quick: 4 s a round (a visibility p99 over fewer samples is mostly the tail's luck).
  const seconds = ctx.quick ? 4 : 20;
  const throughputScenario = 'http POST /orders (32 connections)';
  const visibilityScenario =
    'http command-to-query visibility at 500 commands/s (or half the capacity)';
  // All three variants in turns, round by round (E P K, K P E, …): PostgreSQL and Kafka always
  // run next to each other, in both orders, so their ratio is taken pair by pair.
  const all = variants(ctx);
  const posts = await alternate(
    throughputScenario,
    ctx.rounds,
    all.map((variant) => ({
      impl: variant.impl,
      run: () =>
        withService(variant, async (service) => {
          await throughput(service.url, 1); // warm-up
          const t = await throughput(service.url, seconds);
          return {
            scenario: throughputScenario,
            impl: variant.impl,
            opsPerSec: t.opsPerSec,
            p50Ms: t.p50Ms,
            p99Ms: t.p99Ms,
            peakRssMb: peakRssMb(service.child.pid!),
            unit: 'commands/s; RSS: the service process',
            ...(t.errors ? { notes: `${t.errors} errors` } : {}),
          };
        }),
    })),
  );
  // The rule: at 500 commands/s, or at half the capacity of a service that cannot take
  // 500/s here (its median POST rate above), said in the row.
  const rateOf = new Map(posts.map((p) => [p.impl, visibilityRate(p.opsPerSec)]));
  const runnable = all.filter((v) => !posts.find((p) => p.impl === v.impl)?.skipped);
  const visible = await alternate(
    visibilityScenario,
    ctx.rounds,
    runnable.map((variant) => ({
      impl: variant.impl,
      run: () =>
        withService(variant, async (service) => {
          const rate = rateOf.get(variant.impl)!;
          await visibility(service.url, Math.min(100, rate), 1); // warm-up
          const v = await visibility(service.url, rate, seconds);
          const capacity = posts.find((p) => p.impl === variant.impl)!.opsPerSec;
          const notes = [
            rate < 500
              ? `at ${rate} commands/s: half the ${capacity} POST/s measured for it in this run (it cannot take 500/s here)`
              : '',
            v.failures ? `${v.failures} stale or failed` : '',
          ].filter(Boolean);
          return {
            scenario: visibilityScenario,
            impl: variant.impl,
            opsPerSec: Math.round(v.samples / seconds),
            p50Ms: v.p50Ms,
            p99Ms: v.p99Ms,
            peakRssMb: peakRssMb(service.child.pid!),
            unit: 'ms from POST sent to a fresh GET answered; RSS: the service process',
            offeredRate: rate,
            ...(notes.length ? { notes: notes.join('; ') } : {}),
          };
        }),
    })),
    { by: 'p99' },
  );
  const skippedVisibility = posts
    .filter((p) => p.skipped)
    .map((p) => failedResult(visibilityScenario, p.impl, new Skip(p.skipped!)));
  return [...posts, ...visible, ...skippedVisibility];
}
