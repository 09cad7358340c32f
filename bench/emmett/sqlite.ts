/**
 * Emmett's SQLite store (`@event-driven-io/emmett-sqlite`, on node-sqlite3), doing what the
 * Tidemark and raw sides of each scenario do. Runs in a process of its own (bench/child.ts),
 * resolving Emmett from bench/emmett/node_modules.
 *
 * Its best setup, as far as we could find: one connection shared by the store and the consumer
 * (`connectionOptions: { singleton: true, connection }`; without it every operation opens the
 * file anew), and a consumer pulling batches of 1000 with no pause between full batches.
 */
import {
  getSQLiteEventStore,
  sqliteConnection,
  type SQLiteConnection,
  type SQLiteEventStore,
} from '@event-driven-io/emmett-sqlite';
import { catchUpClock, type Result, type Workload } from '../lib.ts';
import {
  createReadModelSql,
  eventType,
  foldTotals,
  initialTotals,
  payload,
  streamOf,
  upsertSqlQ,
  type AppendArgs,
  type CatchUpArgs,
  type LoadArgs,
  type Totals,
} from '../workload.ts';

function open(file: string): { store: SQLiteEventStore; connection: SQLiteConnection } {
  const connection = sqliteConnection({ fileName: file });
  const store = getSQLiteEventStore({
    fileName: file,
    connectionOptions: { singleton: true, connection },
    schema: { autoMigration: 'CreateOrUpdate' },
  });
  return { store, connection };
}

async function synchronousMode(connection: SQLiteConnection): Promise<string> {
  const row = await connection.querySingle<{ synchronous: number }>('PRAGMA synchronous');
  return ['OFF', 'NORMAL', 'FULL', 'EXTRA'][row?.synchronous ?? -1] ?? 'unknown';
}

export async function emmettAppend(args: AppendArgs): Promise<Workload> {
  const { store, connection } = open(args.target);
  const versions = new Map<string, bigint>();
  const batch = Array.from({ length: args.perCall }, () => ({ type: eventType, data: payload }));
  return {
    async op(i) {
      const stream = streamOf(i, args.streams);
      const expected = versions.get(stream) ?? 0n;
      versions.set(stream, expected + BigInt(args.perCall));
      await store.appendToStream(stream, batch, { expectedStreamVersion: expected });
    },
    close: () => connection.close(),
    notes: `synchronous=${await synchronousMode(connection)}`,
  };
}

/** Writes `streams` streams of `length` events, 100 per append. */
export async function emmettSeedStreams(args: {
  target: string;
  streams: number;
  length: number;
}): Promise<void> {
  const { store, connection } = open(args.target);
  const batch = Array.from({ length: 100 }, () => ({ type: eventType, data: payload }));
  try {
    for (let s = 0; s < args.streams; s++) {
      for (let v = 0; v < args.length; v += 100) {
        await store.appendToStream(`order-${s}`, batch.slice(0, Math.min(100, args.length - v)));
      }
    }
  } finally {
    connection.close();
  }
}

export async function emmettLoad(args: LoadArgs): Promise<Workload> {
  const { store, connection } = open(args.target);
  // Emmett's connection sends `PRAGMA journal_mode = WAL` when it opens, without waiting for it;
  // a read transaction started before that pragma has run fails it ("cannot change into wal mode
  // from within a transaction", thrown as an unhandled 'error' event), as it did in one full run.
  // One query first, awaited, lets the pragma through; the measured loads come after.
  await synchronousMode(connection);
  return {
    async op(i) {
      const { state, currentStreamVersion } = await store.aggregateStream<
        Totals,
        { type: string; data: typeof payload }
      >(`order-${i % args.streams}`, {
        evolve: (s, e) => foldTotals(s, e.data),
        initialState: initialTotals,
      });
      if (state.events !== args.length || Number(currentStreamVersion) !== args.length)
        throw new Error('short read');
    },
    close: () => connection.close(),
  };
}

/** Writes `events` events over 1000 streams, 100 per append. */
export async function emmettSeedLog(args: { target: string; events: number }): Promise<void> {
  const { store, connection } = open(args.target);
  const batch = Array.from({ length: 100 }, () => ({ type: eventType, data: payload }));
  try {
    for (let i = 0; i < args.events / 100; i++) await store.appendToStream(streamOf(i), batch);
  } finally {
    connection.close();
  }
}

/**
 * Catch-up: a consumer with one processor from the beginning of the log, upserting the read
 * model in the store's file (Emmett's processors write where the events are), batch 1000, no
 * pause between full batches. Emmett stores the processor's checkpoint after every message, in
 * the batch's transaction.
 */
export async function emmettCatchUp(args: CatchUpArgs): Promise<Result> {
  const { store, connection } = open(args.target);
  await connection.command(createReadModelSql);
  const clock = catchUpClock(args.events);
  const consumer = store.consumer({
    pulling: { batchSize: args.batchSize, pullingFrequencyInMs: 0 },
  });
  consumer.processor({
    processorId: 'bench-totals',
    startFrom: 'BEGINNING',
    eachMessage: async (event, context) => {
      const data = event.data as typeof payload;
      await context.connection.command(upsertSqlQ, [event.metadata.streamName, data.quantity]);
      clock.tick();
    },
    stopAfter: () => clock.count >= args.events,
  });
  clock.start();
  await consumer.start();
  await clock.done;
  const result = clock.result(args.scenario, args.impl, args.unit);
  await consumer.stop();
  const [row] = await connection.query<{ n: number }>(
    'SELECT sum(events) AS n FROM bench_stream_totals',
  );
  connection.close();
  if (Number(row?.n) !== args.events) throw new Error(`read model has ${row?.n} events`);
  return result;
}
