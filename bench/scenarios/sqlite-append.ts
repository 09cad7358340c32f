/**
 * Appends on SQLite, each implementation in a process of its own, alternating over rounds:
 *
 * - `raw better-sqlite3`: per append, a transaction that checks the stream's version, inserts
 *   the events and upserts the stream row, on Tidemark's own schema, WAL, synchronous=FULL.
 *   What a hand-written store does, with nothing else.
 * - `tidemark`: `SqliteEventStore.appendToStream` with an expected version (defaults: WAL,
 *   synchronous=FULL, group commit).
 * - `emmett`: Emmett's SQLite store (`@event-driven-io/emmett-sqlite`, node-sqlite3) on one
 *   shared connection, its fastest setup (without it every operation opens the file anew, and
 *   concurrent appends fail with SQLITE_BUSY), with an expected stream version.
 *
 * The concurrent scenario keeps 64 appends in flight on distinct streams. better-sqlite3 is
 * synchronous, so raw has no concurrency to offer: its row there is the same one-commit-per-
 * append loop, the rate Tidemark's group commit is measured against.
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { SqliteEventStore, eventStoreMigrations } from 'tidemark/sqlite';
import { emmettMissing, interleave, type Result, type SlicedCase, type Workload } from '../lib.ts';
import type { BenchContext } from '../run.ts';
import { eventType, payload, streamOf, type AppendArgs } from '../workload.ts';

export function rawSqliteAppender(path: string): {
  append: (streamId: string, count: number, expected: number) => number;
  close: () => void;
} {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec(eventStoreMigrations[0]!.sql);
  const version = db.prepare('SELECT version FROM tm_streams WHERE stream_id = ?').pluck();
  const insert = db.prepare(
    `INSERT INTO tm_events (stream_id, stream_version, event_id, type, schema_version, data, metadata, recorded_at)
     VALUES (?, ?, ?, ?, 1, ?, ?, ?)`,
  );
  const upsert = db.prepare(
    `INSERT INTO tm_streams (stream_id, version, position, updated_at) VALUES (?, ?, ?, ?)
     ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, position = excluded.position,
     updated_at = excluded.updated_at`,
  );
  const append = (streamId: string, count: number, expected: number) => {
    db.exec('BEGIN IMMEDIATE');
    try {
      const current = (version.get(streamId) as number | undefined) ?? 0;
      if (current !== expected) throw new Error('conflict');
      const now = Date.now();
      let position = 0;
      for (let i = 0; i < count; i++) {
        position = Number(
          insert.run(
            streamId,
            current + i + 1,
            crypto.randomUUID(),
            eventType,
            // Serialised per event, as a store must (the body is the caller's object).
            JSON.stringify(payload),
            '{}',
            now,
          ).lastInsertRowid,
        );
      }
      upsert.run(streamId, current + count, position, now);
      db.exec('COMMIT');
      return current + count;
    } catch (error) {
      db.exec('ROLLBACK');
      throw error;
    }
  };
  return { append, close: () => db.close() };
}

/** Child process: raw better-sqlite3 appends. */
export function rawAppend(args: AppendArgs): Workload {
  const raw = rawSqliteAppender(args.target);
  const versions = new Map<string, number>();
  return {
    op(i) {
      const stream = streamOf(i, args.streams);
      versions.set(stream, raw.append(stream, args.perCall, versions.get(stream) ?? 0));
    },
    close: () => raw.close(),
  };
}

/** Child process: Tidemark's SQLite store. */
export function tidemarkAppend(args: AppendArgs): Workload {
  const store = new SqliteEventStore(args.target);
  const versions = new Map<string, number>();
  const batch = Array.from({ length: args.perCall }, () => ({ type: eventType, data: payload }));
  return {
    async op(i) {
      const stream = streamOf(i, args.streams);
      const expected = versions.get(stream) ?? 0;
      // Set before the await: with many in flight, the next op on this stream is not this one.
      versions.set(stream, expected + args.perCall);
      await store.appendToStream(stream, batch, { expectedVersion: expected });
    },
    close: () => store.close(),
  };
}

export async function sqliteAppend(ctx: BenchContext): Promise<Result[]> {
  // Quick: shorter slices, more of them (the ratios are medians of per-slice ratios).
  const ops = ctx.quick ? 4000 : 8000;
  const slices = ctx.quick ? 10 : 8;
  const results: Result[] = [];
  let n = 0;
  const file = (label: string) => join(ctx.dir, `append-${label}-${n++}.db`);
  const here = 'bench/scenarios/sqlite-append.ts';
  const emmett = (args: AppendArgs): SlicedCase => ({
    impl: 'emmett',
    module: 'bench/emmett/sqlite.ts',
    fn: 'emmettAppend',
    args,
    ...(emmettMissing() ? { skip: emmettMissing() } : {}),
  });

  for (const perCall of [1, 10]) {
    const scenario = `sqlite append ${perCall} event${perCall > 1 ? 's' : ''} per call`;
    const unit = `events/s, ${perCall} per append with an expected version`;
    const base = { perCall, streams: 1000 };
    results.push(
      ...(await interleave(
        scenario,
        [
          {
            impl: 'raw better-sqlite3',
            module: here,
            fn: 'rawAppend',
            args: { ...base, target: file('raw') },
          },
          {
            impl: 'tidemark',
            module: here,
            fn: 'tidemarkAppend',
            args: { ...base, target: file('tidemark') },
          },
          emmett({ ...base, target: file('emmett') }),
        ],
        { unit, ops: perCall > 1 ? ops / 2 : ops, slices, itemsPerOp: perCall },
      )),
    );
  }

  {
    // better-sqlite3 is synchronous: raw runs one append at a time whatever is asked, so its row
    // is the one-commit-per-append rate that group commit is measured against.
    const scenario = 'sqlite append, 64 concurrent writers';
    const unit = 'events/s, 1 per append, 64 in flight on distinct streams (raw: one at a time)';
    const base = { perCall: 1, streams: 4096 };
    results.push(
      ...(await interleave(
        scenario,
        [
          {
            impl: 'raw better-sqlite3',
            module: here,
            fn: 'rawAppend',
            args: { ...base, target: file('raw') },
          },
          {
            impl: 'tidemark',
            module: here,
            fn: 'tidemarkAppend',
            args: { ...base, target: file('tidemark') },
          },
          emmett({ ...base, target: file('emmett') }),
        ],
        { unit, ops: ops * 2, slices, concurrency: 64 },
      )),
    );
  }
  return results;
}
