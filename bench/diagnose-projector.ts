/**
 * Diagnosis, not a benchmark: where a Kafka-fed projector's catch-up time goes, next to the
 * store-fed runner on the same events and the same kind of sink (the pair the bench's
 * "kafka projector" scenario compares). Each run is cut into phases:
 *
 *   start     start() until it returns (for Kafka: the group join, the first assignment)
 *   first     from then until the first batch's handler returned (a first fetch may bring most
 *             of a small topic: then this is most of the work, not a wait)
 *   rest      from then until whenCaughtUp answers
 *
 * and the rate after start() (events per second over first + rest) is given on its own, so a
 * fixed cost of starting is told apart from a per-event cost. The CPU this process used in each run
 * is shown too (the broker's and PostgreSQL's are not).
 *
 *   node --conditions=tidemark-source bench/diagnose-projector.ts [sqlite|postgres] [events] [rounds] [kafka|store]
 *
 * Needs `npm run services:up` (Kafka; PostgreSQL for the postgres sink). The events are the
 * bench's Orders events, written to a PostgreSQL store when DATABASE_URL is set (as in the bench,
 * whose store-fed runner reads that store), else to a SQLite one, and published once by the relay.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProjectionRunner, defineProjection, type ProjectionSink } from 'tidemark';
import { orderDetails } from '../examples/orders/src/projections.ts';
import { fill, freshSink, openStore } from './scenarios/kafka.ts';
import type { OrderEvent } from '../examples/orders/src/domain.ts';
import {
  EventTopics,
  KafkaAdmin,
  KafkaRelay,
  kafkaConnectionFromEnv,
  kafkaFeed,
} from '../src/kafka/internal.ts';

const sinkKind = process.argv[2] ?? 'sqlite';
const total = Number(process.argv[3] ?? 20_000);
const rounds = Number(process.argv[4] ?? 5);
// 'kafka' or 'store' runs one feed only (for a CPU profile of it: node --cpu-prof ...).
const only = process.argv[5];
if ((sinkKind !== 'sqlite' && sinkKind !== 'postgres') || !(total > 0) || !(rounds > 0)) {
  process.stderr.write('usage: diagnose-projector.ts [sqlite|postgres] [events] [rounds]\n');
  process.exit(2);
}
const env = (name: string) => process.env[`TIDEMARK_BENCH_${name}`] ?? process.env[name];
const brokers = env('KAFKA_BROKERS');
if (!brokers) {
  process.stderr.write('set KAFKA_BROKERS (npm run services:up prints it)\n');
  process.exit(2);
}
const kafka = kafkaConnectionFromEnv({ KAFKA_BROKERS: brokers })!;
const url = env('DATABASE_URL');
if (sinkKind === 'postgres' && !url) {
  process.stderr.write('set DATABASE_URL for the postgres sink\n');
  process.exit(2);
}

const dir = mkdtempSync(join(tmpdir(), 'tidemark-diagnose-projector-'));
const suffix = `${process.pid}-${Date.now()}`;
const topic = `tm-diagnose-${suffix}`;
const progressTopic = `tm-diagnose-progress-${suffix}`;
const cleanups: (() => Promise<void>)[] = [];
let runs = 0;

async function openSink(): Promise<ProjectionSink> {
  const kind = sinkKind === 'postgres' ? 'PostgreSQL' : 'SQLite';
  const { sink, close } = await freshSink(kind, url, dir, `diagnose_${++runs}`);
  cleanups.push(close);
  return sink;
}

interface Phases {
  start: number;
  first: number;
  rest: number;
  cpu: number;
}

/** When the current run's first batch was applied (its handler returned). */
let firstAt: number | undefined;
const projection = defineProjection<OrderEvent>({
  ...orderDetails,
  async applyBatch(events, context) {
    await orderDetails.applyBatch!.call(orderDetails, events, context);
    firstAt ??= performance.now();
  },
});

async function phases(runner: ProjectionRunner): Promise<Phases> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  firstAt = undefined;
  await runner.start();
  const t1 = performance.now();
  if (!(await runner.whenCaughtUp(600_000))) throw new Error('did not catch up');
  const t2 = performance.now();
  const cpu = process.cpuUsage(cpu0);
  await runner.stop();
  const first = (firstAt ?? t2) - t1;
  return {
    start: t1 - t0,
    first: Math.max(first, 0),
    rest: t2 - (firstAt ?? t2),
    cpu: (cpu.user + cpu.system) / 1000,
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const admin = new KafkaAdmin(kafka);
try {
  const { store, kind: storeKind, close } = await openStore(url, dir, 'diagnose');
  cleanups.push(close);
  process.stderr.write(
    `writing ${total} events to a ${storeKind} store, publishing them to ${topic}\n`,
  );
  await fill(store, total);
  const relay = new KafkaRelay({
    connection: kafka,
    store,
    topics: new EventTopics({ categories: { order: topic }, settings: { partitions: 6 } }),
    source: 'tidemark://diagnose',
    name: `diagnose-${suffix}`,
    progressTopic,
  });
  await relay.start();
  await relay.whenPublished(await store.headPosition());
  await relay.stop();
  const events = total;

  const results: Record<'kafka' | 'store', Phases[]> = { kafka: [], store: [] };
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? (['kafka', 'store'] as const) : (['store', 'kafka'] as const);
    for (const kind of order.filter((k) => only === undefined || k === only)) {
      const sink = await openSink();
      const runner =
        kind === 'kafka'
          ? new ProjectionRunner({
              projection,
              sink,
              feed: kafkaFeed({
                connection: kafka,
                topics: [topic],
                groupId: `tm-diagnose-${suffix}-${++runs}`,
                maxWaitMs: 100,
              }),
            })
          : new ProjectionRunner({ projection, store, sink });
      results[kind].push(await phases(runner));
    }
  }
  const row = (kind: 'kafka' | 'store') => {
    const r = results[kind];
    const start = median(r.map((p) => p.start));
    const first = median(r.map((p) => p.first));
    const rest = median(r.map((p) => p.rest));
    const all = median(r.map((p) => p.start + p.first + p.rest));
    const afterStart = median(r.map((p) => (events / (p.first + p.rest)) * 1000));
    const cpu = median(r.map((p) => p.cpu));
    return { kind, start, first, rest, all, rate: (events / all) * 1000, afterStart, cpu };
  };
  const rows = (['kafka', 'store'] as const).filter((k) => results[k].length > 0).map(row);
  const f = (n: number) => n.toFixed(1).padStart(8);
  process.stdout.write(
    `${events} events into ${sinkKind}, ${rounds} rounds in turns, medians (ms):\n` +
      `feed      start    first     rest    total   events/s   after start/s   cpu ms\n` +
      rows
        .map(
          (r) =>
            `${r.kind.padEnd(6)}${f(r.start)} ${f(r.first)} ${f(r.rest)} ${f(r.all)} ${r.rate.toFixed(0).padStart(10)} ${r.afterStart.toFixed(0).padStart(15)} ${f(r.cpu)}`,
        )
        .join('\n') +
      (rows.length === 2
        ? `\nratio, whole run: ${(rows[0]!.rate / rows[1]!.rate).toFixed(2)}x; after start(): ${(rows[0]!.afterStart / rows[1]!.afterStart).toFixed(2)}x; cpu: ${(rows[0]!.cpu / rows[1]!.cpu).toFixed(2)}x\n`
        : '\n'),
  );
} finally {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  for (const name of [topic, progressTopic]) await admin.deleteTopic(name, { ifExists: true });
  await admin.close();
  rmSync(dir, { recursive: true, force: true });
}
