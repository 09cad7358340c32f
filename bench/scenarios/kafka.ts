/**
 * Kafka: the relay and the Kafka-fed projector, each next to a baseline doing the same work
 * without Tidemark's logic, in the same run on the same broker.
 *
 * - `kafka relay`: Orders events from the store to a topic. `tidemark relay` reads the store's
 *   global log, encodes each event (CloudEvents headers) and publishes it in transactions of 500
 *   events with its progress record. The baselines send the very same records, encoded
 *   beforehand, with the port's producer: in transactions of 500 (`raw producer, transactional`)
 *   and without transactions (`raw producer, idempotent`). p50/p99: per transaction (or send).
 * - `kafka projector`: the order-details projection fed from that topic by a
 *   a projection runner on a Kafka feed (offsets and stream versions in the read-model transaction), into
 *   PostgreSQL and into SQLite, next to the store-fed ProjectionRunner applying the same events
 *   to the same kind of database. Time from start to caught up; p50/p99 not measured (0).
 * - `kafka projectors` / `store projectors` (3 Orders projections): all three Orders projections
 *   from that topic (or from the store's log), in one engine (`one engine (host)`: a
 *   ProjectionHost, one consumer group, one fetch loop, one read-model transaction per batch)
 *   and in an engine per projection (`engine per projection`: three ProjectionRunners, a group,
 *   a fetch loop and a transaction each, the layout before the host shared one engine). Time
 *   from start until all three have caught up; events/s counts each event once.
 *
 * Implementations take turns over `--rounds` (median kept), each run on a topic and a database
 * of its own. Needs Kafka (TIDEMARK_BENCH_KAFKA_BROKERS or KAFKA_BROKERS) and uses PostgreSQL
 * when TIDEMARK_BENCH_DATABASE_URL or DATABASE_URL is a postgres:// URL (else SQLite only).
 */
import { join } from 'node:path';
import {
  ProjectionHost,
  ProjectionRunner,
  storeFeed,
  type EventStore,
  type Logger,
  type ProjectionSink,
} from 'tidemark';
import {
  EventTopics,
  KafkaAdmin,
  KafkaProducer,
  kafkaFeed,
  KafkaRelay,
  encodeEvent,
  kafkaConnectionFromEnv,
  type KafkaConnection,
  type ProducerRecord,
} from '../../src/kafka/internal.ts';
import { PostgresEventStore, PostgresProjectionSink } from 'tidemark/postgres';
import { SqliteDatabase, SqliteEventStore, SqliteProjectionSink } from 'tidemark/sqlite';
import { orderDetails, orderProjections } from '../../examples/orders/src/projections.ts';
import {
  Skip,
  alternate,
  currentPeakRssMb,
  percentile,
  progress,
  resetPeakRss,
  type Result,
} from '../lib.ts';
import type { BenchContext } from '../run.ts';

const BATCH = 500;
const PARTITIONS = 6;

function connection(): KafkaConnection | undefined {
  const brokers = process.env.TIDEMARK_BENCH_KAFKA_BROKERS ?? process.env.KAFKA_BROKERS;
  if (!brokers) return undefined;
  return kafkaConnectionFromEnv({ ...process.env, KAFKA_BROKERS: brokers });
}

function postgresUrl(): string | undefined {
  const url = process.env.TIDEMARK_BENCH_DATABASE_URL ?? process.env.DATABASE_URL;
  return url && /^postgres(ql)?:\/\//.test(url) ? url : undefined;
}

/**
 * The scenario's event store: PostgreSQL when `url` is given (in a schema of its own, dropped by
 * `close`), else SQLite in `dir`.
 */
export async function openStore(
  url: string | undefined,
  dir: string,
  label: string,
): Promise<{ store: EventStore; kind: string; close: () => Promise<void> }> {
  if (!url) {
    const database = new SqliteDatabase(join(dir, `${label}-store.db`));
    return {
      store: new SqliteEventStore(database),
      kind: 'SQLite',
      close: async () => database.close(),
    };
  }
  const schema = `tm_bench_${label}_${process.pid}`;
  const pgStore = await PostgresEventStore.connect({ connectionString: url, schema });
  // One listener for the whole scenario: the store's LISTEN connection leaks when the last
  // onAppended listener leaves and another comes (each run's relay and runner subscribe).
  const keepListening = pgStore.onAppended(() => {});
  return {
    store: pgStore,
    kind: 'PostgreSQL',
    close: async () => {
      keepListening();
      await pgStore.close();
      const sink = await PostgresProjectionSink.connect({ connectionString: url });
      try {
        await sink.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      } finally {
        await sink.close();
      }
    },
  };
}

/** A read-model database of its own: a PostgreSQL schema (needs `url`) or a SQLite file. */
export async function freshSink(
  kind: 'PostgreSQL' | 'SQLite',
  url: string | undefined,
  dir: string,
  label: string,
): Promise<{ sink: ProjectionSink; close: () => Promise<void> }> {
  if (kind === 'SQLite') {
    const database = new SqliteDatabase(join(dir, `read-models-${label}.db`));
    return { sink: new SqliteProjectionSink(database), close: async () => database.close() };
  }
  if (!url) throw new Error('a PostgreSQL read model needs a database URL');
  const schema = `tm_bench_${label}_${process.pid}`;
  const sink = await PostgresProjectionSink.connect({ connectionString: url, schema });
  return {
    sink,
    close: async () => {
      try {
        await sink.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      } finally {
        await sink.close();
      }
    },
  };
}

/** Orders as the service writes them: created with a line, two items added, confirmed. */
export async function fill(store: EventStore, total: number): Promise<void> {
  const at = new Date().toISOString();
  const perOrder = 4;
  const orders = Math.ceil(total / perOrder);
  const writers = 8;
  let next = 0;
  await Promise.all(
    Array.from({ length: writers }, async () => {
      while (next < orders) {
        const i = next++;
        const stream = `order-${i}`;
        const line = { sku: `SKU-${i % 97}`, quantity: 1 + (i % 5), unitPriceCents: 1299 };
        await store.appendToStream(stream, [
          {
            type: 'OrderCreated',
            data: { orderId: String(i), customerId: `c-${i % 300}`, lines: [line], at },
            metadata: { correlationId: crypto.randomUUID() },
          },
        ]);
        await store.appendToStream(stream, [
          { type: 'ItemAdded', data: { ...line, sku: `SKU-X${i % 13}`, at } },
          { type: 'ItemAdded', data: { ...line, sku: `SKU-Y${i % 7}`, at } },
        ]);
        await store.appendToStream(stream, [{ type: 'OrderConfirmed', data: { at } }]);
      }
    }),
  );
}

function result(
  scenario: string,
  impl: string,
  events: number,
  ms: number,
  latencies: number[],
  unit: string,
): Result {
  const sorted = [...latencies].sort((a, b) => a - b);
  const round = (n: number) => Math.round(n * 1000) / 1000;
  return {
    scenario,
    impl,
    opsPerSec: Math.round((events / (ms / 1000)) * 10) / 10,
    p50Ms: round(percentile(sorted, 50)),
    p99Ms: round(percentile(sorted, 99)),
    peakRssMb: currentPeakRssMb(),
    unit,
  };
}

/** Publishes the store with a relay; per-transaction times from its debug log. */
async function runRelay(
  kafka: KafkaConnection,
  store: EventStore,
  topic: string,
  progressTopic: string,
): Promise<{ ms: number; latencies: number[] }> {
  const latencies: number[] = [];
  let last = 0;
  const logger: Logger = {
    info() {},
    warn() {},
    error() {},
    debug(_obj, msg) {
      if (msg !== 'relay transaction committed') return;
      const now = performance.now();
      latencies.push(now - last);
      last = now;
    },
  };
  const relay = new KafkaRelay({
    connection: kafka,
    store,
    topics: new EventTopics({ categories: { order: topic }, settings: { partitions: PARTITIONS } }),
    source: 'tidemark://bench',
    name: `bench-${process.pid}-${topic}`,
    progressTopic,
    batchSize: BATCH,
    logger,
  });
  await relay.start(); // topics created, producer initialised: not part of the measure
  const head = await store.headPosition();
  resetPeakRss();
  const started = performance.now();
  last = started;
  await relay.whenPublished(head);
  const ms = performance.now() - started;
  await relay.stop();
  return { ms, latencies };
}

async function rawProducer(
  kafka: KafkaConnection,
  records: ProducerRecord[],
  transactional: boolean,
): Promise<{ ms: number; latencies: number[]; count: number }> {
  const producer = new KafkaProducer(
    kafka,
    transactional ? { transactionalId: `bench-raw-${process.pid}-${Date.now()}` } : {},
  );
  if (transactional) await producer.initTransactions();
  // Warm the connection and metadata with an empty round trip on the topic.
  if (!transactional) await producer.send(records.slice(0, 1));
  const latencies: number[] = [];
  resetPeakRss();
  const started = performance.now();
  for (let i = transactional ? 0 : 1; i < records.length; i += BATCH) {
    const chunk = records.slice(i, i + BATCH);
    const t = performance.now();
    if (transactional) await producer.transact((tx) => tx.send(chunk));
    else await producer.send(chunk);
    latencies.push(performance.now() - t);
  }
  const ms = performance.now() - started;
  await producer.close();
  return { ms, latencies, count: records.length - (transactional ? 0 : 1) };
}

async function timeCatchUp(run: {
  start(): Promise<void>;
  whenCaughtUp(timeoutMs?: number): Promise<boolean>;
  stop(): Promise<void>;
}): Promise<number> {
  resetPeakRss();
  const started = performance.now();
  await run.start();
  if (!(await run.whenCaughtUp(600_000))) throw new Error('did not catch up');
  const ms = performance.now() - started;
  await run.stop();
  return ms;
}

/**
 * Times a catch-up of several runs started side by side (each `start()` on its own, as separate
 * runners would): from the first start until every one has caught up.
 */
async function timeCatchUpAll(
  runs: {
    start(): Promise<void>;
    whenCaughtUp(timeoutMs?: number): Promise<boolean>;
    stop(): Promise<void>;
  }[],
): Promise<number> {
  resetPeakRss();
  const started = performance.now();
  try {
    await Promise.all(
      runs.map(async (run) => {
        await run.start();
        if (!(await run.whenCaughtUp(600_000))) throw new Error('did not catch up');
      }),
    );
    return performance.now() - started;
  } finally {
    await Promise.all(runs.map((run) => run.stop()));
  }
}

export async function kafkaScenario(ctx: BenchContext): Promise<Result[]> {
  const kafka = connection();
  if (!kafka) {
    throw new Skip(
      'no broker: set TIDEMARK_BENCH_KAFKA_BROKERS (or KAFKA_BROKERS); `npm run services:up` prints one',
    );
  }
  const url = postgresUrl();
  const total = ctx.quick ? 10_000 : 20_000;
  const suffix = `${process.pid}-${Date.now()}`;
  let runs = 0;
  const topicsMade: string[] = [];
  const newTopic = (label: string) => {
    const name = `tm-bench-${label}-${suffix}-${++runs}`;
    topicsMade.push(name);
    return name;
  };
  const progressTopic = newTopic('progress');
  const admin = new KafkaAdmin(kafka);
  const results: Result[] = [];
  const cleanups: (() => Promise<void>)[] = [];
  try {
    const { store, kind: storeKind, close } = await openStore(url, ctx.dir, 'kafka');
    cleanups.push(close);
    progress(`kafka: writing ${total} Orders events to ${storeKind}`);
    await fill(store, total);
    const events = await store.readAll({ maxCount: total + 10 });
    const encode = (topic: string) =>
      events.map((event) => encodeEvent(event, { topic, source: 'tidemark://bench' }));

    // The relay and the same records from a bare producer, alternating over rounds.
    const scenario = `kafka relay, ${storeKind} → topic (${PARTITIONS} partitions)`;
    const unit = `events/s, transactions of ${BATCH}`;
    let sourceTopic: string | undefined;
    const rawTopic = async (label: string) => {
      const name = newTopic(label);
      await admin.createTopic({ name, partitions: PARTITIONS, configs: { 'retention.ms': '-1' } });
      return name;
    };
    // The raw transactional producer's rounds swing most (0.4x to 1x of the relay's rate in one
    // quick run), and the projectors' next: five short rounds give the median something to
    // stand on.
    const relayRounds = ctx.quick ? Math.max(ctx.rounds, 5) : ctx.rounds;
    results.push(
      ...(await alternate(scenario, relayRounds, [
        {
          impl: 'tidemark',
          run: async () => {
            const topic = newTopic('relay');
            sourceTopic ??= topic;
            const run = await runRelay(kafka, store, topic, progressTopic);
            return result(
              scenario,
              'tidemark',
              events.length,
              run.ms,
              run.latencies,
              `${unit}, read from the store, exactly once`,
            );
          },
        },
        {
          impl: 'raw producer, transactional',
          run: async () => {
            const run = await rawProducer(kafka, encode(await rawTopic('raw-txn')), true);
            return result(
              scenario,
              'raw producer, transactional',
              run.count,
              run.ms,
              run.latencies,
              `${unit}, pre-encoded`,
            );
          },
        },
        {
          impl: 'raw producer, idempotent',
          run: async () => {
            const run = await rawProducer(kafka, encode(await rawTopic('raw-idem')), false);
            return result(
              scenario,
              'raw producer, idempotent',
              run.count,
              run.ms,
              run.latencies,
              `events/s, sends of ${BATCH}, no transaction, pre-encoded`,
            );
          },
        },
      ])),
    );
    if (!sourceTopic) return results; // the relay failed: nothing to project from

    // The order-details projection, from that topic and from the store, into a fresh database
    // each run.
    const sinks: { kind: string; open(): Promise<ProjectionSink> }[] = [];
    const opener = (kind: 'PostgreSQL' | 'SQLite') => async () => {
      const { sink, close } = await freshSink(kind, url, ctx.dir, `rm_${++runs}`);
      cleanups.push(close);
      return sink;
    };
    if (url) sinks.push({ kind: 'PostgreSQL', open: opener('PostgreSQL') });
    sinks.push({ kind: 'SQLite', open: opener('SQLite') });
    const topic = sourceTopic;
    for (const { kind, open } of sinks) {
      const projectorScenario = `kafka projector, topic → ${kind} (order-details)`;
      results.push(
        ...(await alternate(projectorScenario, relayRounds, [
          {
            impl: 'tidemark',
            run: async () => {
              const ms = await timeCatchUp(
                new ProjectionRunner({
                  projection: orderDetails,
                  sink: await open(),
                  feed: kafkaFeed({
                    connection: kafka,
                    topics: [topic],
                    groupId: `tm-bench-${suffix}-${++runs}`,
                    maxWaitMs: 100,
                  }),
                }),
              );
              return result(
                projectorScenario,
                'tidemark',
                events.length,
                ms,
                [],
                'events/s, catch-up from the earliest offset',
              );
            },
          },
          {
            impl: 'store-fed ProjectionRunner',
            run: async () => {
              const ms = await timeCatchUp(
                new ProjectionRunner({ projection: orderDetails, store, sink: await open() }),
              );
              return result(
                projectorScenario,
                'store-fed ProjectionRunner',
                events.length,
                ms,
                [],
                `events/s, catch-up from the ${storeKind} store's log (no Kafka)`,
              );
            },
          },
        ])),
      );
    }

    // All three Orders projections, in one engine (a ProjectionHost: one consumer group, one
    // fetch loop, one read-model transaction per batch for all of them) next to the layout
    // before it (a runner per projection: its own group, fetch loop and transaction).
    const names = orderProjections.map((p) => p.name).join(', ');
    const perEvent = `events/s (each applied by ${orderProjections.length} projections: ${names})`;
    for (const { kind, open } of sinks) {
      const engines = `kafka projectors, topic → ${kind} (${orderProjections.length} Orders projections)`;
      results.push(
        ...(await alternate(engines, ctx.rounds, [
          {
            impl: 'one engine (host)',
            run: async () => {
              const ms = await timeCatchUpAll([
                new ProjectionHost({
                  projections: orderProjections,
                  sink: await open(),
                  feed: kafkaFeed({
                    connection: kafka,
                    topics: [topic],
                    groupPrefix: `tm-bench-${suffix}-${++runs}`,
                    maxWaitMs: 100,
                  }),
                }),
              ]);
              return result(
                engines,
                'one engine (host)',
                events.length,
                ms,
                [],
                `${perEvent}, one consumer group, catch-up from the earliest offset`,
              );
            },
          },
          {
            impl: 'engine per projection',
            run: async () => {
              const sink = await open();
              const ms = await timeCatchUpAll(
                orderProjections.map(
                  (projection) =>
                    new ProjectionRunner({
                      projection,
                      sink,
                      feed: kafkaFeed({
                        connection: kafka,
                        topics: [topic],
                        groupId: `tm-bench-${suffix}-${++runs}-${projection.name}`,
                        maxWaitMs: 100,
                      }),
                    }),
                ),
              );
              return result(
                engines,
                'engine per projection',
                events.length,
                ms,
                [],
                `${perEvent}, a consumer group each, catch-up from the earliest offset`,
              );
            },
          },
        ])),
      );
    }
    for (const { kind, open } of sinks) {
      const engines = `store projectors, ${storeKind} store → ${kind} (${orderProjections.length} Orders projections)`;
      results.push(
        ...(await alternate(engines, ctx.rounds, [
          {
            impl: 'one engine (host)',
            run: async () => {
              const ms = await timeCatchUpAll([
                new ProjectionHost({
                  projections: orderProjections,
                  sink: await open(),
                  feed: storeFeed(store),
                }),
              ]);
              return result(
                engines,
                'one engine (host)',
                events.length,
                ms,
                [],
                `${perEvent}, one read of the log, catch-up from the start`,
              );
            },
          },
          {
            impl: 'engine per projection',
            run: async () => {
              const sink = await open();
              const ms = await timeCatchUpAll(
                orderProjections.map(
                  (projection) => new ProjectionRunner({ projection, store, sink }),
                ),
              );
              return result(
                engines,
                'engine per projection',
                events.length,
                ms,
                [],
                `${perEvent}, a read of the log each, catch-up from the start`,
              );
            },
          },
        ])),
      );
    }
  } finally {
    for (const cleanup of cleanups.reverse()) {
      await cleanup().catch((error: unknown) =>
        progress(`kafka: cleanup failed: ${String(error)}`),
      );
    }
    for (const name of topicsMade) await admin.deleteTopic(name, { ifExists: true });
    await admin.close();
  }
  return results;
}
