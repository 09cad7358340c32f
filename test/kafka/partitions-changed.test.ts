/**
 * A projector does not go on quietly when its topic's partition count changes under it (keys
 * map to other partitions from then on, and the new partitions belong to nobody until the group
 * re-forms): its engine stops and says why. Restarted, it takes every partition, and the
 * per-stream guard keeps each stream in order across the change.
 */
import assert from 'node:assert/strict';
import { after, it } from 'node:test';
import { ProjectionRunner } from 'tidemark';
import { KafkaAdmin, kafkaFeed } from 'tidemark/kafka';
import { MemoryEventStore } from 'tidemark/memory';
import { sqliteStorage } from '../support/feed-fixtures.ts';
import { kafkaConnection, uniqueName, uniqueTopic } from '../support/services.ts';
import { appendCounted, publishAll, trackedRows, trackingProjection } from './support.ts';

const topic = uniqueTopic('repartitioned');
const progressTopic = uniqueTopic('repartitioned-progress');
after(async () => {
  const admin = new KafkaAdmin(kafkaConnection());
  for (const t of [topic, progressTopic]) await admin.deleteTopic(t, { ifExists: true });
  await admin.close();
});

it(
  'stops a projector whose topic gained partitions, and says why',
  { timeout: 120_000 },
  async () => {
    const storage = sqliteStorage();
    const runner = new ProjectionRunner({
      projection: trackingProjection(),
      sink: storage.sink,
      feed: kafkaFeed({
        connection: kafkaConnection(),
        topics: [topic],
        groupId: uniqueName('repartitioned'),
        maxWaitMs: 100,
      }),
    });
    try {
      const store = new MemoryEventStore();
      await appendCounted(store, ['order-a', 'order-b', 'order-c'], 3);
      await publishAll(kafkaConnection(), store, topic, {
        partitions: 2,
        progressTopic,
        name: uniqueName('relay'),
      });
      await runner.start();
      assert.equal(await runner.whenCaughtUp(30_000), true);
      const before = await trackedRows(storage.sink);

      const admin = new KafkaAdmin(kafkaConnection());
      try {
        await admin.addPartitions(topic, 4);
      } finally {
        await admin.close();
      }
      await runner.finished; // it stops by itself, once its metadata shows the change
      assert.equal(runner.state, 'stopped');
      assert.match(String((await runner.status()).lastError), /had 2 partitions and has 4/);
      assert.deepEqual(await trackedRows(storage.sink), before);
    } finally {
      await runner.stop();
      await storage.close();
    }
  },
);
