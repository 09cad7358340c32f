/**
 * Loading an aggregate of 1000 events (the state a command handler needs), on SQLite and on
 * PostgreSQL, with and without a snapshot:
 *
 * - `raw …`: one indexed query for the stream's events (or the snapshot row, then the events
 *   after it), JSON parsed and folded: the floor.
 * - `tidemark`: `CommandHandler.load` (snapshot policy on or off) over Tidemark's store: the
 *   store's read path with upcasting and recorded-event objects, then the decider's `evolve`.
 * - `emmett`: `aggregateStream` of Emmett's store. Emmett has no snapshots, so it has no row in
 *   the snapshot scenarios.
 *
 * Ten streams of 1000 events are loaded in turn; each implementation in its own process.
 */
import Database from 'better-sqlite3';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { CommandHandler, type EventStore, type FullEventStore } from 'tidemark';
import { PostgresEventStore } from 'tidemark/postgres';
import { SqliteEventStore } from 'tidemark/sqlite';
import {
  benchDatabaseUrl,
  emmettMissing,
  failedResult,
  interleave,
  progress,
  runChild,
  Skip,
  type Result,
  type SlicedCase,
  type Workload,
} from '../lib.ts';
import type { BenchContext } from '../run.ts';
import { freshDatabase, freshSchema } from '../pg-scratch.ts';
import {
  eventType,
  foldTotals,
  initialTotals,
  payload,
  type LoadArgs,
  type Totals,
} from '../workload.ts';

const STREAMS = 10;
const LENGTH = 1000;

const decider = {
  initialState: initialTotals,
  evolve: (state: Totals, event: { type: string; data: unknown }) =>
    foldTotals(state, event.data as typeof payload),
  decide: () => [],
};

async function openStore(args: { target: string; schema?: string }): Promise<FullEventStore> {
  return args.schema
    ? PostgresEventStore.connect({
        connectionString: args.target,
        schema: args.schema,
        poolSize: 2,
      })
    : new SqliteEventStore(args.target);
}

/** Child process: writes the streams (100 events per append) and a snapshot at their end. */
export async function tidemarkSeed(args: { target: string; schema?: string }): Promise<void> {
  const store = await openStore(args);
  const batch = Array.from({ length: 100 }, () => ({ type: eventType, data: payload }));
  try {
    for (let s = 0; s < STREAMS; s++) {
      let state = initialTotals();
      for (let v = 0; v < LENGTH; v += 100) {
        await store.appendToStream(`order-${s}`, batch);
        for (const e of batch) state = foldTotals(state, e.data);
      }
      await store.writeSnapshot({
        streamId: `order-${s}`,
        streamVersion: LENGTH,
        stateVersion: 1,
        state,
      });
    }
  } finally {
    await store.close();
  }
}

function check(state: Totals, version: number) {
  if (state.events !== LENGTH || version !== LENGTH) throw new Error('load: wrong state');
}

/** Child process: Tidemark's command handler loading the streams in turn. */
export async function tidemarkLoad(args: LoadArgs): Promise<Workload> {
  const store = await openStore(args);
  const handler = new CommandHandler({
    decider,
    store: store as EventStore,
    ...(args.snapshot ? { snapshots: { store, every: LENGTH, stateVersion: 1 } } : {}),
  });
  return {
    async op(i) {
      const loaded = await handler.load(`order-${i % args.streams}`);
      check(loaded.state, loaded.version);
    },
    close: () => store.close(),
  };
}

/** Child process: raw better-sqlite3 on Tidemark's tables. */
export function rawSqliteLoad(args: LoadArgs): Workload {
  const db = new Database(args.target, { readonly: true });
  const events = db.prepare<[string, number], { stream_version: number; data: string }>(
    'SELECT stream_version, data FROM tm_events WHERE stream_id = ? AND stream_version > ? ORDER BY stream_version',
  );
  const snapshot = db.prepare<[string], { stream_version: number; state: string }>(
    'SELECT stream_version, state FROM tm_snapshots WHERE stream_id = ?',
  );
  return {
    op(i) {
      const stream = `order-${i % args.streams}`;
      let state = initialTotals();
      let version = 0;
      if (args.snapshot) {
        const row = snapshot.get(stream);
        if (row) {
          state = JSON.parse(row.state) as Totals;
          version = row.stream_version;
        }
      }
      for (const row of events.iterate(stream, version)) {
        state = foldTotals(state, JSON.parse(row.data) as typeof payload);
        version = row.stream_version;
      }
      check(state, version);
    },
    close: () => db.close(),
  };
}

/** Child process: raw pg on Tidemark's tables (one connection, prepared statements). */
export async function rawPgLoad(args: LoadArgs): Promise<Workload> {
  const client = new pg.Client({ connectionString: args.target });
  await client.connect();
  const s = `"${args.schema}"`;
  return {
    async op(i) {
      const stream = `order-${i % args.streams}`;
      let state = initialTotals();
      let version = 0;
      if (args.snapshot) {
        const { rows } = await client.query<{ stream_version: string; state: Totals }>({
          name: 'snapshot',
          text: `SELECT stream_version, state FROM ${s}.tm_snapshots WHERE stream_id = $1`,
          values: [stream],
        });
        if (rows[0]) {
          state = rows[0].state;
          version = Number(rows[0].stream_version);
        }
      }
      const { rows } = await client.query<{ stream_version: string; data: typeof payload }>({
        name: 'events',
        text: `SELECT stream_version, data FROM ${s}.tm_events WHERE stream_id = $1 AND stream_version > $2 ORDER BY stream_version`,
        values: [stream, version],
      });
      for (const row of rows) {
        state = foldTotals(state, row.data);
        version = Number(row.stream_version);
      }
      check(state, version);
    },
    close: () => client.end(),
  };
}

export async function loadAggregate(ctx: BenchContext): Promise<Result[]> {
  // Quick: shorter slices, more of them (the ratios are medians of per-slice ratios).
  const ops = ctx.quick ? 400 : 1500;
  const slices = ctx.quick ? 10 : 8;
  const results: Result[] = [];
  const unit = `loads/s of a ${LENGTH}-event stream`;
  const here = 'bench/scenarios/load.ts';
  const base = { streams: STREAMS, length: LENGTH };
  const emmettSkip = emmettMissing();
  const emmett = (module: string, args: LoadArgs): SlicedCase => ({
    impl: 'emmett',
    module,
    fn: 'emmettLoad',
    args,
    ...(emmettSkip ? { skip: emmettSkip } : {}),
  });

  // SQLite: one seeded file per implementation (Tidemark and raw read the same schema).
  {
    progress('seeding SQLite streams');
    const seeded = join(ctx.dir, 'load-tidemark.db');
    await runChild('bench/scenarios/load.ts', 'tidemarkSeed', { target: seeded });
    const rawCopy = join(ctx.dir, 'load-raw.db');
    copyFileSync(seeded, rawCopy);
    const emmettFile = join(ctx.dir, 'load-emmett.db');
    if (!emmettSkip) {
      await runChild('bench/emmett/sqlite.ts', 'emmettSeedStreams', {
        target: emmettFile,
        streams: STREAMS,
        length: LENGTH,
      });
    }
    for (const snapshot of [false, true]) {
      const scenario = `sqlite load ${LENGTH}-event aggregate${snapshot ? ' from a snapshot' : ''}`;
      const cases: SlicedCase[] = [
        {
          impl: 'raw better-sqlite3',
          module: here,
          fn: 'rawSqliteLoad',
          args: { ...base, snapshot, target: rawCopy },
        },
        {
          impl: 'tidemark',
          module: here,
          fn: 'tidemarkLoad',
          args: { ...base, snapshot, target: seeded },
        },
      ];
      // Emmett has no snapshots: no row in the snapshot scenario.
      if (!snapshot)
        cases.push(emmett('bench/emmett/sqlite.ts', { ...base, snapshot, target: emmettFile }));
      // A load from a snapshot takes tens of microseconds: many more of them, so that each
      // slice lasts long enough to measure.
      results.push(
        ...(await interleave(scenario, cases, { unit, ops: snapshot ? ops * 20 : ops, slices })),
      );
    }
  }

  // PostgreSQL: one seeded schema (Tidemark and raw) and one seeded database (Emmett).
  const pgScenarios = [false, true].map(
    (snapshot) => `postgres load ${LENGTH}-event aggregate${snapshot ? ' from a snapshot' : ''}`,
  );
  const url = benchDatabaseUrl();
  if (!url) {
    const why = new Skip(
      'PostgreSQL missing: `npm run services:up`, or set TIDEMARK_BENCH_DATABASE_URL',
    );
    for (const scenario of pgScenarios) results.push(failedResult(scenario, '*', why));
    return results;
  }
  const schema = await freshSchema(url, 'load');
  const emmettDb = emmettSkip ? undefined : await freshDatabase(url, 'load');
  try {
    progress('seeding PostgreSQL streams');
    await runChild(here, 'tidemarkSeed', { target: url, schema: schema.name });
    if (emmettDb) {
      await runChild('bench/emmett/postgres.ts', 'emmettSeedStreams', {
        target: emmettDb.url,
        streams: STREAMS,
        length: LENGTH,
      });
    }
    for (const snapshot of [false, true]) {
      const scenario = pgScenarios[snapshot ? 1 : 0]!;
      const args = { ...base, snapshot, target: url, schema: schema.name };
      const cases: SlicedCase[] = [
        { impl: 'raw pg', module: here, fn: 'rawPgLoad', args },
        { impl: 'tidemark', module: here, fn: 'tidemarkLoad', args },
      ];
      if (!snapshot) {
        cases.push(
          emmett('bench/emmett/postgres.ts', { ...base, snapshot, target: emmettDb?.url ?? '' }),
        );
      }
      results.push(
        ...(await interleave(scenario, cases, { unit, ops: snapshot ? ops * 10 : ops, slices })),
      );
    }
  } finally {
    await schema.drop();
    await emmettDb?.drop();
  }
  return results;
}
