/**
 * Diagnosis, not a benchmark: POST /orders capacity of the compiled Orders service in one mode
 * (autocannon, 32 connections, 10 s after a 2 s warm-up) and where the machine's CPU went in
 * 5 s of it: the service, PostgreSQL's backends, the Kafka broker, this load generator (from
 * /proc, Linux only). On a machine whose cores are all busy, the rate is set by the CPU each
 * command costs across all of them, which is what this shows.
 *
 *   node bench/diagnose-cpu.ts <postgres|kafka>
 *
 * In Kafka mode it also gives the relay's events per transaction in the window (from the admin
 * console's API). With TIDEMARK_DIAG_CPU_PROF=<dir> the service writes a CPU profile there
 * (`node --cpu-prof`) when it stops.
 *
 * Needs `npm run build` (dist-examples/) and `npm run services:up`.
 */
import { readFileSync, readdirSync } from 'node:fs';
import autocannon from 'autocannon';
import { startServiceProcess } from '../test/support/process.ts';
import { deleteTopics } from './lib.ts';
import { freshDatabase } from './pg-scratch.ts';

const mode = process.argv[2] ?? 'kafka';
if (mode !== 'postgres' && mode !== 'kafka') {
  process.stderr.write('usage: diagnose-cpu.ts <postgres|kafka>\n');
  process.exit(2);
}

/** CPU seconds (user + system) of every process now, by pid, with its command line. */
function cpuByProcess(): Map<number, { seconds: number; command: string }> {
  const ticks = 100; // USER_HZ on Linux
  const seen = new Map<number, { seconds: number; command: string }>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const seconds = (Number(fields[11]) + Number(fields[12])) / ticks;
      const command = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ');
      seen.set(Number(entry), { seconds, command });
    } catch {
      // gone meanwhile
    }
  }
  return seen;
}

const db = await freshDatabase(process.env.DATABASE_URL!, 'cpu');
const id = `cpu-${process.pid}`;
const env: Record<string, string> =
  mode === 'kafka'
    ? {
        DATABASE_URL: db.url,
        KAFKA_BROKERS: process.env.KAFKA_BROKERS!,
        KAFKA_TOPIC: `tm-${id}`,
        KAFKA_GROUP_PREFIX: id,
        KAFKA_RELAY_NAME: id,
      }
    : { DATABASE_URL: db.url, KAFKA_BROKERS: '' };
const profileDir = process.env.TIDEMARK_DIAG_CPU_PROF;
const service = await startServiceProcess(env, [], {
  compiled: true,
  ...(profileDir ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] } : {}),
});
/** The relay's events and transactions since start (Kafka mode), from the admin API. */
async function relayCounts(): Promise<{ published: number; transactions: number } | undefined> {
  if (mode !== 'kafka') return undefined;
  const answer = await fetch(`${service.url}/admin/api/relay`);
  if (!answer.ok) throw new Error(`GET /admin/api/relay: ${answer.status} ${await answer.text()}`);
  return (await answer.json()) as { published: number; transactions: number };
}
try {
  const options = {
    url: `${service.url}/orders`,
    method: 'POST' as const,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      customerId: 'c-bench',
      lines: [{ sku: 'sku-1', quantity: 2, unitPriceCents: 1250 }],
    }),
    connections: 32,
  };
  await autocannon({ ...options, duration: 2 });
  const window = new Promise<{
    busy: Map<string, number>;
    seconds: number;
    relay: Promise<
      [Awaited<ReturnType<typeof relayCounts>>, Awaited<ReturnType<typeof relayCounts>>]
    >;
  }>((resolve) => {
    setTimeout(() => {
      const before = cpuByProcess();
      const relayBefore = relayCounts();
      const started = performance.now();
      setTimeout(() => {
        const after = cpuByProcess();
        const busy = new Map<string, number>();
        for (const [pid, now] of after) {
          const was = before.get(pid);
          if (!was) continue;
          const who =
            pid === service.child.pid
              ? 'service'
              : pid === process.pid
                ? 'load generator'
                : now.command.startsWith('postgres')
                  ? 'postgres'
                  : /kafka\.Kafka/.test(now.command)
                    ? 'kafka broker'
                    : 'other';
          busy.set(who, (busy.get(who) ?? 0) + now.seconds - was.seconds);
        }
        resolve({
          busy,
          seconds: (performance.now() - started) / 1000,
          relay: Promise.all([relayBefore, relayCounts()]),
        });
      }, 5000);
    }, 3000);
  });
  const result = await autocannon({ ...options, duration: 10 });
  const { busy, seconds, relay } = await window;
  const rate = result.requests.average;
  console.log(`${mode}: ${Math.round(rate)} POST/s`);
  let sum = 0;
  for (const [who, cpu] of [...busy].sort((a, b) => b[1] - a[1])) {
    const cores = cpu / seconds;
    sum += cores;
    console.log(
      `  ${who.padEnd(15)} ${cores.toFixed(2)} cores  ${((cores / rate) * 1000).toFixed(3)} ms CPU per POST`,
    );
  }
  console.log(
    `  ${'all'.padEnd(15)} ${sum.toFixed(2)} cores  ${((sum / rate) * 1000).toFixed(3)} ms`,
  );
  const [from, to] = await relay;
  if (from && to) {
    const events = to.published - from.published;
    const transactions = to.transactions - from.transactions;
    console.log(
      `  relay: ${events} events in ${transactions} transactions (${(events / Math.max(1, transactions)).toFixed(1)} per transaction)`,
    );
  }
} finally {
  service.child.kill('SIGTERM');
  await service.exited;
  await db.drop();
  if (mode === 'kafka') await deleteTopics(process.env.KAFKA_BROKERS!, [`tm-${id}`]);
}
