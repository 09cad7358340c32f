/**
 * Projection catch-up: a read model built from the whole log (100 000 events over 1000 streams;
 * 20 000 with --quick), one upsert per event, progress stored with each batch. Store -> SQLite
 * (the read model in the store's file, the embedded default) and store -> PostgreSQL (store and
 * read model in one database, separate schemas).
 *
 * - `raw …`: read 1000 events by position, apply them and save the position in one
 *   transaction, repeat; SQLite read-model commits skip the WAL sync as Tidemark's do.
 * - `tidemark`: a `ProjectionRunner` with its defaults (batches of 500) over the store and a
 *   projection sink.
 * - `emmett`: Emmett's event store consumer with one processor, batches of 1000, no pause
 *   between full batches (see bench/emmett/).
 *
 * events/s is the whole catch-up; p50/p99 are the time per 1000 events. Each run gets a copy
 * of the seeded store (SQLite) or a fresh read-model schema (PostgreSQL).
 */
import Database from 'better-sqlite3';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { ProjectionRunner, defineProjection, type RecordedEvent } from 'tidemark';
import { PostgresEventStore, PostgresProjectionSink } from 'tidemark/postgres';
import { SqliteDatabase, SqliteEventStore, SqliteProjectionSink } from 'tidemark/sqlite';
import {
  alternate,
  benchDatabaseUrl,
  catchUpClock,
  emmettMissing,
  failedResult,
  progress,
  runChild,
  Skip,
  type Case,
  type Result,
} from '../lib.ts';
import { freshDatabase, freshSchema } from '../pg-scratch.ts';
import type { BenchContext } from '../run.ts';
import {
  createReadModelSql,
  eventType,
  payload,
  readModelTable,
  streamOf,
  upsertSql,
  upsertSqlQ,
  type CatchUpArgs,
} from '../workload.ts';

/** Child process: writes the log through Tidemark's store, 100 events per append. */
export async function tidemarkSeedLog(args: {
  target: string;
  schema?: string;
  events: number;
}): Promise<void> {
  const store = args.schema
    ? await PostgresEventStore.connect({
        connectionString: args.target,
        schema: args.schema,
        poolSize: 8,
      })
    : new SqliteEventStore(args.target);
  const batch = Array.from({ length: 100 }, () => ({ type: eventType, data: payload }));
  try {
    let next = 0;
    const total = args.events / 100;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let i = next++; i < total; i = next++) await store.appendToStream(streamOf(i), batch);
      }),
    );
  } finally {
    await store.close();
  }
}

function projection(tick: () => void, deferWrites = false) {
  // SQL text built once per physical table, as a projection would keep it.
  const sql = new Map<string, { create: string; upsert: string }>();
  const statements = (table: string) => {
    let found = sql.get(table);
    if (!found) {
      found = {
        create: createReadModelSql.replace(readModelTable, table),
        upsert: upsertSql.replaceAll(readModelTable, table),
      };
      sql.set(table, found);
    }
    return found;
  };
  return defineProjection({
    name: 'bench-totals',
    version: 1,
    handles: [eventType],
    tables: [readModelTable],
    deferWrites,
    async init(context) {
      await context.sql.execute(statements(context.table(readModelTable)).create);
    },
    async apply(event: RecordedEvent, context) {
      const data = event.data as typeof payload;
      await context.sql.execute(statements(context.table(readModelTable)).upsert, [
        event.streamId,
        data.quantity,
      ]);
      tick();
    },
  });
}

/** Child process: Tidemark's ProjectionRunner. */
export async function tidemarkCatchUp(args: CatchUpArgs): Promise<Result> {
  const clock = catchUpClock(args.events);
  const definition = projection(() => clock.tick(), args.deferWrites === true);
  let store: SqliteEventStore | PostgresEventStore;
  let sink: SqliteProjectionSink | PostgresProjectionSink;
  let database: SqliteDatabase | undefined;
  if (args.schema) {
    store = await PostgresEventStore.connect({
      connectionString: args.target,
      schema: args.schema,
    });
    sink = await PostgresProjectionSink.connect({
      connectionString: args.target,
      schema: args.readModelSchema!,
    });
  } else {
    database = new SqliteDatabase(args.target);
    store = new SqliteEventStore(database);
    sink = new SqliteProjectionSink(database);
  }
  const runner = new ProjectionRunner({ projection: definition, store, sink });
  try {
    clock.start();
    await runner.start();
    await clock.done;
    const result = clock.result(args.scenario, args.impl, args.unit);
    await runner.stop();
    const [row] = await sink.query<{ n: number | string }>(
      `SELECT sum(events) AS n FROM ${readModelTable}_v1`,
    );
    if (Number(row?.n) !== args.events) throw new Error(`read model has ${row?.n} events`);
    return result;
  } finally {
    await runner.stop();
    await store.close();
    await sink.close();
    await database?.close();
  }
}

/** Child process: raw better-sqlite3, on the store's file. */
export async function rawSqliteCatchUp(args: CatchUpArgs): Promise<Result> {
  const clock = catchUpClock(args.events);
  const db = new Database(args.target);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec(createReadModelSql);
  db.exec(
    'CREATE TABLE IF NOT EXISTS bench_checkpoint (name TEXT PRIMARY KEY, position INTEGER NOT NULL)',
  );
  db.prepare("INSERT INTO bench_checkpoint VALUES ('totals', 0)").run();
  const read = db.prepare<[number, number], { position: number; stream_id: string; data: string }>(
    'SELECT position, stream_id, data FROM tm_events WHERE position > ? ORDER BY position LIMIT ?',
  );
  const upsert = db.prepare(upsertSqlQ);
  const save = db.prepare("UPDATE bench_checkpoint SET position = ? WHERE name = 'totals'");
  clock.start();
  let position = 0;
  for (;;) {
    const rows = read.all(position, args.batchSize);
    if (rows.length === 0) break;
    db.exec('BEGIN IMMEDIATE');
    for (const row of rows) {
      const data = JSON.parse(row.data) as typeof payload;
      upsert.run(row.stream_id, data.quantity);
      clock.tick();
    }
    position = rows[rows.length - 1]!.position;
    save.run(position);
    db.exec('COMMIT');
    // Yield between batches, as any runner sharing its process must.
    await new Promise((resolve) => setImmediate(resolve));
  }
  const result = clock.result(args.scenario, args.impl, args.unit);
  db.close();
  return result;
}

/** Child process: raw pg, one connection, prepared statements. */
export async function rawPgCatchUp(args: CatchUpArgs): Promise<Result> {
  const clock = catchUpClock(args.events);
  const client = new pg.Client({ connectionString: args.target });
  await client.connect();
  const rm = `"${args.readModelSchema}"`;
  await client.query(`CREATE SCHEMA ${rm}`);
  await client.query(`SET search_path TO ${rm}`);
  await client.query(createReadModelSql);
  await client.query(
    'CREATE TABLE bench_checkpoint (name TEXT PRIMARY KEY, position BIGINT NOT NULL)',
  );
  await client.query("INSERT INTO bench_checkpoint VALUES ('totals', 0)");
  clock.start();
  let position = 0;
  for (;;) {
    const { rows } = await client.query<{
      position: string;
      stream_id: string;
      data: typeof payload;
    }>({
      name: 'read',
      text: `SELECT position, stream_id, data FROM "${args.schema}".tm_events WHERE position > $1 ORDER BY position LIMIT $2`,
      values: [position, args.batchSize],
    });
    if (rows.length === 0) break;
    await client.query('BEGIN');
    for (const row of rows) {
      await client.query({
        name: 'upsert',
        text: upsertSql,
        values: [row.stream_id, row.data.quantity],
      });
      clock.tick();
    }
    position = Number(rows[rows.length - 1]!.position);
    await client.query({
      name: 'save',
      text: "UPDATE bench_checkpoint SET position = $1 WHERE name = 'totals'",
      values: [position],
    });
    await client.query('COMMIT');
  }
  const result = clock.result(args.scenario, args.impl, args.unit);
  await client.end();
  return result;
}

function emmettCase(module: string, args: () => CatchUpArgs, ready: () => Promise<unknown>): Case {
  return {
    impl: 'emmett',
    run: async () => {
      const missing = emmettMissing();
      if (missing) throw new Skip(missing);
      await ready();
      return runChild<Result>(module, 'emmettCatchUp', args());
    },
  };
}

export async function catchUp(ctx: BenchContext): Promise<Result[]> {
  const events = ctx.quick ? 10_000 : 100_000;
  // Emmett takes about a minute per 100k events: two rounds keep the full run near 15 minutes.
  // A quick round is a tenth of that.
  const rounds = ctx.quick ? ctx.rounds : Math.min(ctx.rounds, 2);
  const label = ctx.quick ? '10k' : '100k';
  const batchSize = 1000;
  const unit = 'events/s over the whole catch-up; p50/p99: ms per 1000 events';
  const results: Result[] = [];

  {
    const scenario = `catch-up store->SQLite, ${label} events`;
    const seeded = join(ctx.dir, 'catch-up-tidemark.db');
    progress(`seeding ${events} events (SQLite)`);
    await runChild('bench/scenarios/catch-up.ts', 'tidemarkSeedLog', { target: seeded, events });
    const emmettSeeded = join(ctx.dir, 'catch-up-emmett.db');
    let seeding: Promise<unknown> | undefined;
    let n = 0;
    const copy = (from: string) => {
      const path = join(ctx.dir, `catch-up-run-${n++}.db`);
      copyFileSync(from, path);
      return path;
    };
    const base = { scenario, unit, events, batchSize };
    results.push(
      ...(await alternate(scenario, rounds, [
        {
          impl: 'raw better-sqlite3',
          run: () =>
            runChild<Result>('bench/scenarios/catch-up.ts', 'rawSqliteCatchUp', {
              ...base,
              impl: 'raw better-sqlite3',
              target: copy(seeded),
            }),
        },
        {
          impl: 'tidemark',
          run: () =>
            runChild<Result>('bench/scenarios/catch-up.ts', 'tidemarkCatchUp', {
              ...base,
              impl: 'tidemark',
              target: copy(seeded),
            }),
        },
        {
          impl: 'emmett',
          run: async () => {
            const missing = emmettMissing();
            if (missing) throw new Skip(missing);
            seeding ??= runChild('bench/emmett/sqlite.ts', 'emmettSeedLog', {
              target: emmettSeeded,
              events,
            });
            await seeding;
            return runChild<Result>('bench/emmett/sqlite.ts', 'emmettCatchUp', {
              ...base,
              impl: 'emmett',
              target: copy(emmettSeeded),
            });
          },
        },
      ])),
    );
  }

  const scenario = `catch-up store->PostgreSQL, ${label} events`;
  const url = benchDatabaseUrl();
  if (!url) {
    results.push(
      failedResult(
        scenario,
        '*',
        new Skip('PostgreSQL missing: `npm run services:up`, or set TIDEMARK_BENCH_DATABASE_URL'),
      ),
    );
    return results;
  }
  const store = await freshSchema(url, 'catchup');
  const readModels: Awaited<ReturnType<typeof freshSchema>>[] = [];
  const readModel = async () => {
    const schema = await freshSchema(url, 'rm');
    readModels.push(schema);
    return schema.name;
  };
  const emmettDb = emmettMissing() ? undefined : await freshDatabase(url, 'catchup');
  let seeding: Promise<unknown> | undefined;
  try {
    progress(`seeding ${events} events (PostgreSQL)`);
    await runChild('bench/scenarios/catch-up.ts', 'tidemarkSeedLog', {
      target: url,
      schema: store.name,
      events,
    });
    const base = { scenario, unit, events, batchSize, target: url, schema: store.name };
    let run = 0;
    results.push(
      ...(await alternate(scenario, rounds, [
        {
          impl: 'raw pg',
          run: async () =>
            runChild<Result>('bench/scenarios/catch-up.ts', 'rawPgCatchUp', {
              ...base,
              impl: 'raw pg',
              readModelSchema: await readModel(),
            }),
        },
        {
          impl: 'tidemark',
          run: async () =>
            runChild<Result>('bench/scenarios/catch-up.ts', 'tidemarkCatchUp', {
              ...base,
              impl: 'tidemark',
              readModelSchema: await readModel(),
            }),
        },
        {
          // The same plain per-event projection, with its writes deferred.
          impl: 'tidemark, deferWrites',
          run: async () =>
            runChild<Result>('bench/scenarios/catch-up.ts', 'tidemarkCatchUp', {
              ...base,
              impl: 'tidemark, deferWrites',
              readModelSchema: await readModel(),
              deferWrites: true,
            }),
        },
        emmettCase(
          'bench/emmett/postgres.ts',
          () => ({
            ...base,
            impl: 'emmett',
            target: emmettDb?.url ?? '',
            readModelSchema: `r${run++}`,
          }),
          () =>
            (seeding ??= runChild('bench/emmett/postgres.ts', 'emmettSeedLog', {
              target: emmettDb!.url,
              events,
            })),
        ),
      ])),
    );
  } finally {
    await store.drop();
    for (const schema of readModels) await schema.drop();
    await emmettDb?.drop();
  }
  return results;
}
