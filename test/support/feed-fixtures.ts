/**
 * Fixtures of the projection runner contract (tidemark/testing): the store's log or Kafka as
 * the feed, SQLite or PostgreSQL as the read-model database.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { storeFeed, type EventStore } from 'tidemark';
import { SqliteDatabase, SqliteEventStore, SqliteProjectionSink } from 'tidemark/sqlite';
import type { ProjectionFeedFixture } from 'tidemark/testing';
import type { KafkaConnection } from '../../src/kafka/connection.ts';

export const sqliteTransient = () =>
  Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' });
/** What a server restart looks like to a connection in use. */
export const postgresTransient = () =>
  Object.assign(new Error('terminating connection due to administrator command'), {
    code: '57P01',
  });

/** A SQLite file holding events and read models. */
export function sqliteStorage() {
  const dir = mkdtempSync(join(tmpdir(), 'tidemark-feed-'));
  const database = new SqliteDatabase(join(dir, 'db.sqlite'));
  return {
    store: new SqliteEventStore(database),
    sink: new SqliteProjectionSink(database),
    close: async () => {
      await database.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A PostgreSQL schema of its own holding events and read models. */
export async function postgresStorage(source: {
  db: { url: string };
  schema(label?: string): string;
  sql(text: string): Promise<unknown>;
}) {
  const { PostgresEventStore, PostgresProjectionSink } = await import('tidemark/postgres');
  const schema = source.schema('contract');
  const options = { connectionString: source.db.url, schema, poolSize: 4 };
  const store = await PostgresEventStore.connect(options);
  const sink = await PostgresProjectionSink.connect(options);
  return {
    store,
    sink,
    close: async () => {
      await sink.close();
      await store.close();
      await source.sql(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    },
  };
}

/** The store's log as the feed. */
export function storeFed(
  storage: { store: EventStore; sink: ProjectionFeedFixture['sink']; close(): Promise<void> },
  transientError: () => Error,
): ProjectionFeedFixture {
  return {
    store: storage.store,
    sink: storage.sink,
    feed: () => storeFeed(storage.store, { batchSize: 7 }),
    publish: async () => {},
    transientError,
    dispose: () => storage.close(),
  };
}

/** Kafka as the feed: a relay publishes the store to a topic of the fixture's own. */
export async function kafkaFed(
  storage: { store: EventStore; sink: ProjectionFeedFixture['sink']; close(): Promise<void> },
  transientError: () => Error,
): Promise<ProjectionFeedFixture> {
  const { KafkaAdmin, KafkaRelay, EventTopics, kafkaFeed } =
    await import('../../src/kafka/internal.ts');
  const { kafkaConnection, uniqueName, uniqueTopic } = await import('./services.ts');
  const connection = kafkaConnection();
  const topic = uniqueTopic('contract');
  const progressTopic = uniqueTopic('contract-progress');
  const groupPrefix = uniqueName('contract');
  const relay = new KafkaRelay({
    connection,
    store: storage.store,
    // Every category into the one topic (listed, so that the relay creates it at start).
    topics: new EventTopics({
      categories: { contract: topic },
      others: () => topic,
      settings: { partitions: 3 },
    }),
    source: 'tidemark://contract',
    name: uniqueName('contract-relay'),
    progressTopic,
  });
  await relay.start();
  const visible = () => committedEnds(connection, topic);
  return {
    store: storage.store,
    sink: storage.sink,
    feed: () =>
      kafkaFeed({
        connection,
        topics: [topic],
        groupPrefix,
        maxWaitMs: 100,
        heartbeatIntervalMs: 300,
        sessionTimeoutMs: 10_000,
      }),
    publish: async () => {
      if (!(await relay.whenCaughtUp(60_000))) throw new Error('the relay did not catch up');
      await visible();
    },
    transientError,
    dispose: async () => {
      await relay.stop();
      const admin = new KafkaAdmin(connection);
      try {
        for (const t of [topic, progressTopic]) await admin.deleteTopic(t, { ifExists: true });
      } finally {
        await admin.close();
      }
      await storage.close();
    },
  };
}

/**
 * The end of each partition of `topic` once every transaction in it is visible to read_committed
 * readers. A relay's commit returns before the broker has written the transaction's markers,
 * and until it has, a partition's last stable offset lags its high watermark: look again until
 * every one has reached it. Each look is a round trip to the broker; bounded by count.
 */
export async function committedEnds(
  connection: KafkaConnection,
  topic: string,
): Promise<Map<number, bigint>> {
  const { KafkaReader } = await import('../../src/kafka/internal.ts');
  const committed = new KafkaReader(connection, { isolation: 'read_committed' });
  const everything = new KafkaReader(connection, { isolation: 'read_uncommitted' });
  try {
    for (let looks = 0; looks < 10_000; looks++) {
      const [stable, high] = await Promise.all([
        committed.offsets(topic, 'latest'),
        everything.offsets(topic, 'latest'),
      ]);
      if ([...high].every(([partition, end]) => (stable.get(partition) ?? -1n) >= end)) {
        return stable;
      }
    }
    throw new Error(`the transactions on ${topic} did not become visible`);
  } finally {
    await committed.close();
    await everything.close();
  }
}
