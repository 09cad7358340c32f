/**
 * Emmett's PostgreSQL store (`@event-driven-io/emmett-postgresql`, on pg through dumbo), doing
 * what the Tidemark and raw sides of each scenario do, in a database of its own (Emmett keeps
 * its tables in `public`). Runs in a process of its own (bench/child.ts).
 *
 * Its best setup, as far as we could find: a pg pool as large as the writers in flight, and a
 * consumer pulling batches of 1000 with no pause between full batches; the read model is
 * written through the transaction's own pg client with bound parameters (cheaper than building
 * SQL text).
 */
import {
  getPostgreSQLEventStore,
  postgreSQLEventStoreConsumer,
  type PostgresEventStore,
} from '@event-driven-io/emmett-postgresql';
import pg from 'pg';
import { catchUpClock, type Result, type Workload } from '../lib.ts';
import {
  createReadModelSql,
  eventType,
  foldTotals,
  initialTotals,
  payload,
  streamOf,
  upsertSql,
  type AppendArgs,
  type CatchUpArgs,
  type LoadArgs,
  type Totals,
} from '../workload.ts';

function open(url: string, poolSize = 4): { store: PostgresEventStore; pool: pg.Pool } {
  const pool = new pg.Pool({ connectionString: url, max: poolSize });
  const store = getPostgreSQLEventStore(url, {
    connectionOptions: { pooled: true, pool },
    schema: { autoMigration: 'CreateOrUpdate' },
  });
  return { store, pool };
}

async function close({ store, pool }: { store: PostgresEventStore; pool: pg.Pool }) {
  await store.close();
  await pool.end().catch(() => {});
}

export async function emmettAppend(args: AppendArgs): Promise<Workload> {
  const opened = open(args.target, args.poolSize ?? 2);
  const { store } = opened;
  const versions = new Map<string, bigint>();
  const batch = Array.from({ length: args.perCall }, () => ({ type: eventType, data: payload }));
  // The schema is created by the first operation; keep it out of the measurement.
  await store.appendToStream('warm-up', [batch[0]!]);
  return {
    async op(i) {
      const stream = streamOf(i, args.streams);
      const expected = versions.get(stream) ?? 0n;
      versions.set(stream, expected + BigInt(args.perCall));
      await store.appendToStream(stream, batch, { expectedStreamVersion: expected });
    },
    close: () => close(opened),
  };
}

export async function emmettSeedStreams(args: {
  target: string;
  streams: number;
  length: number;
}): Promise<void> {
  const opened = open(args.target);
  const batch = Array.from({ length: 100 }, () => ({ type: eventType, data: payload }));
  try {
    for (let s = 0; s < args.streams; s++) {
      for (let v = 0; v < args.length; v += 100) {
        await opened.store.appendToStream(`order-${s}`, batch);
      }
    }
  } finally {
    await close(opened);
  }
}

export function emmettLoad(args: LoadArgs): Workload {
  const opened = open(args.target, 2);
  return {
    async op(i) {
      const { state, currentStreamVersion } = await opened.store.aggregateStream<
        Totals,
        { type: string; data: typeof payload }
      >(`order-${i % args.streams}`, {
        evolve: (s, e) => foldTotals(s, e.data),
        initialState: initialTotals,
      });
      if (state.events !== args.length || Number(currentStreamVersion) !== args.length)
        throw new Error('short read');
    },
    close: () => close(opened),
  };
}

/**
 * Writes `events` events over 1000 streams, 100 per append, one append at a time. When the log
 * was written by 8 connections at once, Emmett 0.42's consumer missed events here (a catch-up of
 * 20 000 stopped at 19 975). Our reading of why: its batch query orders by transaction id and
 * the next batch starts after the position of the last event returned, while concurrent
 * multi-event appends interleave their positions. One writer keeps the comparison about speed.
 */
export async function emmettSeedLog(args: { target: string; events: number }): Promise<void> {
  const opened = open(args.target, 2);
  const batch = Array.from({ length: 100 }, () => ({ type: eventType, data: payload }));
  try {
    for (let i = 0; i < args.events / 100; i++) {
      await opened.store.appendToStream(streamOf(i), batch);
    }
  } finally {
    await close(opened);
  }
}

/**
 * Catch-up: a consumer with one reactor from the beginning of the log, upserting the read model
 * (in the same database, in a table of this run), batch 1000, no pause between full batches.
 * Emmett runs each batch in one transaction and stores the checkpoint after every message.
 */
export async function emmettCatchUp(args: CatchUpArgs): Promise<Result> {
  const table = `bench_stream_totals_${args.readModelSchema ?? 'x'}`;
  const setup = new pg.Client({ connectionString: args.target });
  await setup.connect();
  await setup.query(createReadModelSql.replaceAll('bench_stream_totals', table));
  await setup.end();
  const upsert = upsertSql.replaceAll('bench_stream_totals', table);
  const clock = catchUpClock(args.events);
  const consumer = postgreSQLEventStoreConsumer({
    connectionString: args.target,
    pulling: { batchSize: args.batchSize, pullingFrequencyInMs: 0 },
  });
  consumer.reactor({
    processorId: `bench-${table}`,
    startFrom: 'BEGINNING',
    eachMessage: async (event, context) => {
      const data = event.data as typeof payload;
      await context.connection.client.query(upsert, [event.metadata.streamName, data.quantity]);
      clock.tick();
    },
    stopAfter: () => clock.count >= args.events,
  });
  clock.start();
  const running = consumer.start();
  await clock.done;
  const result = clock.result(args.scenario, args.impl, args.unit);
  await running;
  await consumer.close();
  const check = new pg.Client({ connectionString: args.target });
  await check.connect();
  const { rows } = await check.query<{ n: string }>(`SELECT sum(events) AS n FROM ${table}`);
  await check.end();
  if (Number(rows[0]?.n) !== args.events) throw new Error(`read model has ${rows[0]?.n} events`);
  return result;
}
