/**
 * The Orders service over HTTP, as a separate process (so the load generator does not share its
 * event loop): POST /orders throughput with autocannon, and command-to-query visibility at a
 * fixed rate (open loop): from sending a command until a GET carrying its Consistency-Token has
 * answered fresh, i.e. the read model shows the write.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { startServiceProcess, type ServiceProcess } from '../../test/support/process.ts';
import { percentile, type Result } from '../lib.ts';
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

export async function httpEmbedded(ctx: BenchContext): Promise<Result[]> {
  const seconds = ctx.quick ? 5 : 20;
  const results: Result[] = [];
  const service = await startServiceProcess({ DATABASE_URL: join(ctx.dir, 'http.db') });
  try {
    await throughput(service.url, 1); // warm-up
    const t = await throughput(service.url, seconds);
    results.push({
      scenario: 'http POST /orders (32 connections)',
      impl: 'tidemark embedded (SQLite)',
      opsPerSec: t.opsPerSec,
      p50Ms: t.p50Ms,
      p99Ms: t.p99Ms,
      peakRssMb: peakRssMb(service.child.pid!),
      unit: 'commands/s',
      ...(t.errors ? { notes: `${t.errors} errors` } : {}),
    });
    const v = await visibility(service.url, 500, seconds);
    results.push({
      scenario: 'http command-to-query visibility at 500 commands/s',
      impl: 'tidemark embedded (SQLite)',
      opsPerSec: Math.round(v.samples / seconds),
      p50Ms: v.p50Ms,
      p99Ms: v.p99Ms,
      peakRssMb: peakRssMb(service.child.pid!),
      unit: 'ms from POST sent to a fresh GET answered',
      ...(v.failures ? { notes: `${v.failures} stale or failed` } : {}),
    });
  } finally {
    await stop(service);
  }
  return results;
}
