/**
 * The hot store's size before and after archiving 100,000 events, and how long archiving took
 * (docs/retention.md, "Measured"):
 *
 *   node --conditions=tidemark-source bench/archive-size.ts sqlite
 *   node --conditions=tidemark-source bench/archive-size.ts postgres postgres://…/db
 *
 * It writes 25,000 finished orders of 4 events each (created with two lines, an item added,
 * confirmed, then shipped or cancelled) recorded 120 days ago, plus one recent order, then runs
 * `archiveStreams` with the Orders policy (`--older-than 90d`, 1000 streams per segment).
 * SQLite: the file's size after VACUUM. PostgreSQL: pg_total_relation_size of the event tables
 * (tm_events, tm_streams, tm_snapshots, and the archive index) after a plain VACUUM (space kept
 * for reuse, what a running system sees) and after VACUUM FULL (space returned to the OS).
 * Prints one JSON line.
 */
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { DirectoryArchive, archiveStreams, type ArchivableStore } from 'tidemark';
import { orderArchivePolicy } from '../examples/orders/src/archive-policy.ts';

const ORDERS = 25_000;
const [kind = 'sqlite', url] = process.argv.slice(2);
const dir = mkdtempSync(join(tmpdir(), 'tidemark-archive-size-'));
const old = new Date(Date.now() - 120 * 86_400_000);
const clock = { now: old };

async function seed(store: ArchivableStore): Promise<void> {
  for (let i = 0; i < ORDERS; i++) {
    const orderId = `o${String(i).padStart(6, '0')}`;
    const at = old.toISOString();
    await store.appendToStream(`order-${orderId}`, [
      {
        type: 'OrderCreated',
        data: {
          orderId,
          customerId: `c-${i % 997}`,
          lines: [
            { sku: `sku-${i % 31}`, quantity: 1 + (i % 3), unitPriceCents: 1299 },
            { sku: `sku-${(i + 7) % 31}`, quantity: 2, unitPriceCents: 499 },
          ],
          at,
        },
        metadata: { correlationId: `req-${i}`, causationId: `req-${i}` },
      },
      {
        type: 'ItemAdded',
        data: { sku: `sku-${(i + 3) % 31}`, quantity: 1, unitPriceCents: 250, at },
        metadata: { correlationId: `req-${i}-a` },
      },
      { type: 'OrderConfirmed', data: { at }, metadata: { correlationId: `req-${i}-c` } },
      i % 5 === 0
        ? { type: 'OrderCancelled', data: { reason: 'customer asked', at }, metadata: {} }
        : { type: 'OrderShipped', data: { at }, metadata: {} },
    ]);
  }
  clock.now = new Date();
  await store.appendToStream('order-recent', [
    { type: 'OrderCreated', data: { orderId: 'recent' } },
  ]);
}

async function archive(store: ArchivableStore) {
  const segments = new DirectoryArchive(join(dir, 'archive'));
  const started = performance.now();
  const progress = await archiveStreams({
    tables: store.archival(),
    segments,
    olderThanMs: 90 * 86_400_000,
    policy: orderArchivePolicy,
    prefix: 'order-',
  });
  const seconds = (performance.now() - started) / 1000;
  const archiveBytes = readdirSync(segments.directory).reduce(
    (n, f) => n + statSync(join(segments.directory, f)).size,
    0,
  );
  return {
    seconds,
    events: progress.events,
    streams: progress.streams,
    segments: progress.segments,
    archiveBytes,
  };
}

try {
  if (kind === 'sqlite') {
    const { SqliteDatabase, SqliteEventStore } = await import('tidemark/sqlite');
    const path = join(dir, 'store.db');
    const database = new SqliteDatabase(path, { synchronous: 'NORMAL' });
    const store = new SqliteEventStore(database, { now: () => clock.now });
    const size = () => {
      database.writer.exec('VACUUM');
      database.writer.pragma('wal_checkpoint(TRUNCATE)');
      return statSync(path).size;
    };
    await seed(store);
    const before = size();
    const result = await archive(store);
    const after = size();
    console.log(JSON.stringify({ store: 'sqlite', before, after, ...result }));
    await store.close();
    await database.close();
  } else {
    if (!url) throw new Error('usage: archive-size.ts postgres <database url>');
    const { PostgresEventStore } = await import('tidemark/postgres');
    const schema = `archive_size_${process.pid}`;
    const store = await PostgresEventStore.connect({
      connectionString: url,
      schema,
      now: () => clock.now,
    });
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const tables = [
      'tm_events',
      'tm_streams',
      'tm_snapshots',
      'tm_archive_segments',
      'tm_archived_streams',
    ];
    const size = async (full: boolean) => {
      for (const t of tables) await client.query(`VACUUM ${full ? 'FULL ' : ''}"${schema}".${t}`);
      const rows = await client.query<{ n: string }>(
        `SELECT sum(pg_total_relation_size(format('%I.%I', $1::text, t)))::bigint AS n FROM unnest($2::text[]) AS t`,
        [schema, tables],
      );
      return Number(rows.rows[0]!.n);
    };
    try {
      await seed(store);
      const before = await size(true);
      const result = await archive(store);
      const afterVacuum = await size(false);
      const after = await size(true);
      console.log(JSON.stringify({ store: 'postgres', before, afterVacuum, after, ...result }));
    } finally {
      await store.close();
      await client.query(`DROP SCHEMA "${schema}" CASCADE`);
      await client.end();
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
