/**
 * Appends on SQLite: Tidemark's store against raw better-sqlite3 doing the same work per append
 * (a transaction that checks the stream's version, inserts the events, updates the stream row)
 * on the same schema, pragmas and disk.
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { SqliteEventStore, eventStoreMigrations } from 'tidemark/sqlite';
import { measure, type Result } from '../lib.ts';
import type { BenchContext } from '../run.ts';

const payload = { sku: 'SKU-000123', quantity: 3, unitPriceCents: 1299, note: 'x'.repeat(80) };

function rawAppender(path: string) {
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
            'ItemAdded',
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

export async function sqliteAppend(ctx: BenchContext): Promise<Result[]> {
  const ops = ctx.quick ? 2000 : 10000;
  const results: Result[] = [];
  const events = (n: number) =>
    Array.from({ length: n }, () => ({ type: 'ItemAdded', data: payload }));

  for (const perCall of [1, 10]) {
    const scenario = `sqlite append ${perCall} event${perCall > 1 ? 's' : ''} per call`;
    const unit = `events/s, ${perCall} per append with an expected version`;
    // Raw and Tidemark alternate so drift on a shared machine hits both.
    const raw = rawAppender(join(ctx.dir, `raw-${perCall}.db`));
    const rawVersions = new Map<string, number>();
    results.push(
      await measure(
        scenario,
        'raw better-sqlite3',
        (i) => {
          const stream = `order-${i % 1000}`;
          rawVersions.set(stream, raw.append(stream, perCall, rawVersions.get(stream) ?? 0));
        },
        { ops, itemsPerOp: perCall, unit },
      ),
    );
    raw.close();
    const store = new SqliteEventStore(join(ctx.dir, `tidemark-${perCall}.db`));
    const versions = new Map<string, number>();
    const batch = events(perCall);
    results.push(
      await measure(
        scenario,
        'tidemark',
        async (i) => {
          const stream = `order-${i % 1000}`;
          const result = await store.appendToStream(stream, batch, {
            expectedVersion: versions.get(stream) ?? 0,
          });
          versions.set(stream, result.nextExpectedVersion);
        },
        { ops, itemsPerOp: perCall, unit },
      ),
    );
    await store.close();
  }

  {
    const scenario = 'sqlite append, 64 concurrent writers';
    const unit = 'events/s, 1 per append, 64 in flight on distinct streams';
    const store = new SqliteEventStore(join(ctx.dir, 'tidemark-concurrent.db'));
    const versions = new Map<string, number>();
    const batch = events(1);
    results.push(
      await measure(
        scenario,
        'tidemark',
        async (i) => {
          const stream = `order-${i % 4096}`;
          const expected = versions.get(stream) ?? 0;
          versions.set(stream, expected + 1);
          await store.appendToStream(stream, batch, { expectedVersion: expected });
        },
        { ops: ops * 2, concurrency: 64, unit },
      ),
    );
    await store.close();
  }
  return results;
}
