/**
 * Bounded retention: a topic that dropped its beginning (DeleteRecords, which is what retention
 * does segment by segment) never yields a silently partial read model. Without a store to fill
 * from, the projector stops and says why; with one, it fills the dropped part from the store of
 * record and reads the rest from Kafka (a hybrid replay), for a new group as for a version whose
 * stored offsets fell below what the topic keeps.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ArchiveAwareStore, DirectoryArchive, ProjectionRunner, archiveStreams } from 'tidemark';
import { EventTopics, KafkaAdmin, KafkaHistoryTruncatedError, kafkaFeed } from 'tidemark/kafka';
import { KafkaReader } from '../../src/kafka/internal.ts';
import { committedEnds, postgresStorage, sqliteStorage } from '../support/feed-fixtures.ts';
import { schemaSource } from '../support/pg-schemas.ts';
import {
  createTestDatabase,
  kafkaConnection,
  uniqueName,
  uniqueTopic,
} from '../support/services.ts';
import {
  appendCounted,
  expectedRows,
  publishAll,
  trackedRows,
  trackingProjection,
} from './support.ts';

const topic = uniqueTopic('retention');
const progressTopic = uniqueTopic('retention-progress');
const relayName = uniqueName('retention-relay');
const streams = ['order-a', 'order-b', 'order-c', 'order-d', 'order-e', 'order-f', 'order-g'];
const routing = new EventTopics({ categories: { order: topic }, settings: { partitions: 2 } });

after(async () => {
  const admin = new KafkaAdmin(kafkaConnection());
  for (const t of [topic, progressTopic]) await admin.deleteTopic(t, { ifExists: true });
  await admin.close();
});

/** Deletes each partition's records below `at(end)`; answers the new log start offsets. */
async function dropBeginning(at: (partition: number, end: bigint) => bigint) {
  const reader = new KafkaReader(kafkaConnection());
  const admin = new KafkaAdmin(kafkaConnection());
  try {
    // Every partition's end, once the relay's transactions are visible.
    const ends = await committedEnds(kafkaConnection(), topic);
    const before = new Map([...ends].map(([p, end]) => [p, at(p, end)]));
    const starts = await admin.deleteRecords(topic, before);
    // The broker's own answer is the signal that the records are gone.
    assert.deepEqual(await reader.offsets(topic, 'earliest'), starts);
    return starts;
  } finally {
    await admin.close();
    await reader.close();
  }
}

describe('kafka: bounded retention', () => {
  const storage = sqliteStorage();
  after(() => storage.close());
  const publish = () =>
    publishAll(kafkaConnection(), storage.store, topic, {
      partitions: 2,
      progressTopic,
      name: relayName,
    });

  it('a new group without a store to fill from stops, loudly, and applies nothing', async () => {
    await appendCounted(storage.store, streams, 4);
    await publish();
    // Partition 0 loses everything, partition 1 its first half.
    const starts = await dropBeginning((p, end) => (p === 0 ? end : end / 2n));
    assert.ok([...starts.values()].every((s) => s > 0n));

    const runner = new ProjectionRunner({
      projection: trackingProjection(),
      sink: storage.sink,
      feed: kafkaFeed({
        connection: kafkaConnection(),
        topics: [topic],
        groupId: uniqueName('retention-nofill'),
        maxWaitMs: 100,
      }),
    });
    try {
      await runner.start();
      await runner.finished;
      assert.equal(runner.state, 'stopped');
      const status = await runner.status();
      assert.match(String(status.lastError), /starts at offset \d+ \(retention dropped/);
      assert.equal(runner.lastError instanceof KafkaHistoryTruncatedError, true);
      assert.equal(
        (runner.lastError as KafkaHistoryTruncatedError).code,
        'kafka_history_truncated',
      );
      assert.deepEqual(await trackedRows(storage.sink), { streams: {}, totals: {} });
    } finally {
      await runner.stop();
    }
  });

  it('a new group fills from the store what the topic dropped, then reads Kafka', async () => {
    const models = sqliteStorage(); // read models of their own
    after(() => models.close());
    const runner = new ProjectionRunner({
      projection: trackingProjection(),
      sink: models.sink,
      feed: kafkaFeed({
        connection: kafkaConnection(),
        topics: [topic],
        groupId: uniqueName('retention-fill'),
        maxWaitMs: 100,
        backfill: { store: storage.store, topics: routing, batchSize: 5 },
      }),
    });
    try {
      await runner.start();
      assert.equal(await runner.whenCaughtUp(30_000), true);
      const all = await storage.store.readAll({ maxCount: 10_000 });
      assert.deepEqual(await trackedRows(models.sink), expectedRows(all));
      // Kafka takes over: new events arrive through the topic only.
      await appendCounted(storage.store, streams, 2);
      await publish();
      assert.equal(await runner.whenCaughtUp(30_000), true);
      const now = await storage.store.readAll({ maxCount: 10_000 });
      assert.deepEqual(await trackedRows(models.sink), expectedRows(now));
      const offsets = await models.sink.query<{ n: unknown }>(
        `SELECT count(*) AS n FROM tm_projection_offsets WHERE name = 'tracking'`,
      );
      assert.equal(Number(offsets[0]!.n), 2);
    } finally {
      await runner.stop();
    }
  });

  it('a version whose stored offsets fell below the log start is filled, not stopped', async () => {
    const models = sqliteStorage();
    after(() => models.close());
    const groupId = uniqueName('retention-behind');
    const feed = () =>
      kafkaFeed({
        connection: kafkaConnection(),
        topics: [topic],
        groupId,
        maxWaitMs: 100,
        backfill: { store: storage.store, topics: routing, batchSize: 3 },
      });
    const first = new ProjectionRunner({
      projection: trackingProjection(),
      sink: models.sink,
      feed: feed(),
    });
    await first.start();
    assert.equal(await first.whenCaughtUp(30_000), true);
    await first.stop();

    // While it is down: more events, and retention drops all of them but the last ones.
    await appendCounted(storage.store, streams, 3);
    await publish();
    await dropBeginning((_p, end) => end - 2n);

    const second = new ProjectionRunner({
      projection: trackingProjection(),
      sink: models.sink,
      feed: feed(),
    });
    try {
      await second.start();
      assert.equal(await second.whenCaughtUp(30_000), true);
      const all = await storage.store.readAll({ maxCount: 10_000 });
      // Every event once, in stream order: nothing held behind a gap, nothing parked.
      assert.deepEqual(await trackedRows(models.sink), expectedRows(all));
      const status = await second.status();
      assert.equal(status.gaps, 0);
      assert.equal(status.parked, 0);
    } finally {
      await second.stop();
    }
  });

  it('fills PostgreSQL read models the same way', async () => {
    const source = schemaSource(await createTestDatabase('retention'));
    const models = await postgresStorage(source);
    after(async () => {
      await models.close();
      await source.drop();
    });
    const runner = new ProjectionRunner({
      projection: trackingProjection(),
      sink: models.sink,
      feed: kafkaFeed({
        connection: kafkaConnection(),
        topics: [topic],
        groupId: uniqueName('retention-pg'),
        maxWaitMs: 100,
        backfill: { store: storage.store, topics: routing, batchSize: 3 },
      }),
    });
    try {
      await runner.start();
      assert.equal(await runner.whenCaughtUp(30_000), true);
      const all = await storage.store.readAll({ maxCount: 10_000, upcast: false });
      assert.deepEqual(await trackedRows(models.sink), expectedRows(all));
      assert.equal((await runner.status()).gaps, 0);
    } finally {
      await runner.stop();
    }
  });
  it('fills from the store and the archive alike', async () => {
    const models = sqliteStorage();
    const dir = mkdtempSync(join(tmpdir(), 'tidemark-retention-archive-'));
    after(async () => {
      await models.close();
      rmSync(dir, { recursive: true, force: true });
    });
    const segments = new DirectoryArchive(dir);
    const store = new ArchiveAwareStore(storage.store, segments);
    const all = await store.readAll({ maxCount: 10_000, upcast: false });
    // Every stream but the one holding the log's last position leaves the hot tables.
    const moved = await archiveStreams({ tables: store.tables, segments, olderThanMs: 0 });
    assert.equal(moved.streams, streams.length - 1);
    assert.ok((await storage.store.readAll({ maxCount: 10_000 })).length < all.length / 2);

    const runner = new ProjectionRunner({
      projection: trackingProjection(),
      sink: models.sink,
      feed: kafkaFeed({
        connection: kafkaConnection(),
        topics: [topic],
        groupId: uniqueName('retention-archive'),
        maxWaitMs: 100,
        backfill: { store, topics: routing, batchSize: 4 },
      }),
    });
    try {
      await runner.start();
      assert.equal(await runner.whenCaughtUp(30_000), true);
      assert.deepEqual(await trackedRows(models.sink), expectedRows(all));
    } finally {
      await runner.stop();
    }
  });
});
