/**
 * The Orders service over HTTP, as a separate process (so the load generator does not share its
 * event loop; it does share the machine's cores), started afresh for each measurement so its
 * peak memory (VmHWM) and its projections' backlog belong to that measurement alone:
 *
 * - POST /orders throughput with autocannon (32 connections);
 * - command-to-query visibility at a fixed rate (open loop, 500 commands/s): from sending a
 *   command until a GET carrying its Consistency-Token has answered fresh, i.e. the read model
 *   shows the write; measured after 3 s at the same rate (not counted), so it is the steady
 *   state, not the service's first second.
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
  benchDatabaseUrl,
  deleteTopics,
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
          cleanup: async () => {
            await db.drop();
            await deleteTopics(brokers, [`tm-${id}`]);
          },
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

/** The middle value (the lower of the two middle ones for an even count). */
const middle = (values: number[]) => [...values].sort((a, b) => a - b)[(values.length - 1) >> 1]!;

/**
 * The HTTP scenarios, in rounds: in each round every variant's POST throughput is measured once,
 * in rotating order, each on a fresh service; then, round by round again, its command-to-query
 * visibility. Each row keeps its per-round figures in `runs` (rates; for visibility rows the
 * p99 of each round is in the notes), so the runner pairs Kafka mode with PostgreSQL mode round
 * by round. The figures reported are the median round's.
 *
 * Visibility runs at 500 commands/s, or at half of the variant's measured POST capacity when
 * that is less (each command is a POST and a GET): past its capacity a service only measures its
 * own queue. The rate used is in the row's notes.
 */
export async function httpEmbedded(ctx: BenchContext): Promise<Result[]> {
  build();
  const seconds = ctx.quick ? 3 : 10;
  const WARM_UP_SECONDS = 3;
  const rounds = ctx.rounds;
  const throughputScenario = 'http POST /orders (32 connections)';
  const visibilityScenario = 'http command-to-query visibility at 500 commands/s';
  const chosen = variants(ctx);
  const skipped = new Map<string, unknown>();
  const rotate = <T>(list: T[], r: number) => list.map((_, k) => list[(k + r) % list.length]!);

  type Run = { opsPerSec: number; p50Ms: number; p99Ms: number; rss: number; notes?: string };
  const posts = new Map<string, Run[]>(chosen.map((v) => [v.impl, []]));
  for (let r = 0; r < rounds; r++) {
    for (const variant of rotate(chosen, r)) {
      if (skipped.has(variant.impl)) continue;
      progress(`${throughputScenario} · ${variant.impl} (round ${r + 1}/${rounds})`);
      try {
        posts.get(variant.impl)!.push(
          await withService(variant, async (service) => {
            await throughput(service.url, 1); // warm-up
            const t = await throughput(service.url, seconds);
            return {
              opsPerSec: t.opsPerSec,
              p50Ms: t.p50Ms,
              p99Ms: t.p99Ms,
              rss: peakRssMb(service.child.pid!),
              ...(t.errors ? { notes: `${t.errors} errors` } : {}),
            };
          }),
        );
      } catch (error) {
        progress(`  ${error instanceof Skip ? 'skipped' : 'FAILED'}: ${(error as Error).message}`);
        skipped.set(variant.impl, error);
      }
    }
  }
  const rateOf = new Map<string, number>();
  for (const [impl, runs] of posts) {
    if (runs.length > 0)
      rateOf.set(impl, Math.min(500, Math.floor(middle(runs.map((x) => x.opsPerSec)) / 2)));
  }

  const visible = new Map<string, Run[]>(chosen.map((v) => [v.impl, []]));
  for (let r = 0; r < rounds; r++) {
    for (const variant of rotate(chosen, r)) {
      const rate = rateOf.get(variant.impl);
      if (skipped.has(variant.impl) || rate === undefined) continue;
      progress(`${visibilityScenario} · ${variant.impl} at ${rate}/s (round ${r + 1}/${rounds})`);
      try {
        visible.get(variant.impl)!.push(
          await withService(variant, async (service) => {
            // Warm-up at the measured rate, not counted: a service just started answers its
            // first second at this rate with a tail of its own (JIT, the pool's connections and
            // prepared statements made on demand: p99 ~200 ms on PostgreSQL where the steady
            // p99 is ~45; bench/diagnose-visibility.ts shows it by second). This is the steady
            // state.
            await visibility(service.url, rate, WARM_UP_SECONDS);
            const v = await visibility(service.url, rate, seconds);
            return {
              opsPerSec: Math.round(v.samples / seconds),
              p50Ms: v.p50Ms,
              p99Ms: v.p99Ms,
              rss: peakRssMb(service.child.pid!),
              ...(v.failures ? { notes: `${v.failures} stale or failed` } : {}),
            };
          }),
        );
      } catch (error) {
        progress(`  ${error instanceof Skip ? 'skipped' : 'FAILED'}: ${(error as Error).message}`);
        skipped.set(variant.impl, error);
      }
    }
  }

  const results: Result[] = [];
  for (const variant of chosen) {
    const failure = skipped.get(variant.impl);
    const post = posts.get(variant.impl)!;
    const seen = visible.get(variant.impl)!;
    if (post.length > 0) {
      // The median round by rate; RSS is the highest of the rounds (the target is a ceiling).
      const m = [...post].sort((a, b) => a.opsPerSec - b.opsPerSec)[(post.length - 1) >> 1]!;
      const notes = post.map((x) => x.notes).filter(Boolean);
      results.push({
        scenario: throughputScenario,
        impl: variant.impl,
        opsPerSec: m.opsPerSec,
        p50Ms: m.p50Ms,
        p99Ms: m.p99Ms,
        peakRssMb: Math.max(...post.map((x) => x.rss)),
        unit: 'commands/s; RSS: the service process, the highest of the rounds',
        runs: post.map((x) => x.opsPerSec),
        ...(notes.length ? { notes: notes.join('; ') } : {}),
      });
    } else
      results.push(failedResult(throughputScenario, variant.impl, failure ?? new Skip('not run')));
    if (seen.length > 0) {
      // The median round by p99.
      const m = [...seen].sort((a, b) => a.p99Ms - b.p99Ms)[(seen.length - 1) >> 1]!;
      const rate = rateOf.get(variant.impl)!;
      const notes = [
        `at ${rate} commands/s${rate < 500 ? ' (half of its measured POST capacity)' : ''}`,
        `p99 per round ${seen.map((x) => x.p99Ms.toFixed(1)).join(' / ')} ms`,
        ...seen.map((x) => x.notes).filter(Boolean),
      ];
      results.push({
        scenario: visibilityScenario,
        impl: variant.impl,
        opsPerSec: m.opsPerSec,
        p50Ms: m.p50Ms,
        p99Ms: m.p99Ms,
        peakRssMb: Math.max(...seen.map((x) => x.rss)),
        unit: 'ms from POST sent to a fresh GET answered; RSS: the service process',
        notes: notes.join('; '),
      });
    } else
      results.push(failedResult(visibilityScenario, variant.impl, failure ?? new Skip('not run')));
  }
  return results;
}
