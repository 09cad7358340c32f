/**
 * A fetch error is never ignored: a topic deleted and recreated leaves the stored offsets
 * outside what the new partitions hold, and the projector stops, with the reason in its status,
 * instead of stalling with a lag of 0 or skipping the first records of the new topic.
 */
import assert from 'node:assert/strict';
import { after, it } from 'node:test';
import { ProjectionRunner } from 'tidemark';
import { KafkaAdmin, kafkaFeed } from 'tidemark/kafka';
import { MemoryEventStore } from 'tidemark/memory';
import { sqliteStorage } from '../support/feed-fixtures.ts';
import { kafkaConnection, uniqueName, uniqueTopic } from '../support/services.ts';
import { appendCounted, publishAll, trackedRows, trackingProjection } from './support.ts';

const topic = uniqueTopic('recreated');
const progress = [uniqueTopic('recreated-progress'), uniqueTopic('recreated-progress')];
after(async () => {
  const admin = new KafkaAdmin(kafkaConnection());
  for (const t of [topic, ...progress]) await admin.deleteTopic(t, { ifExists: true });
  await admin.close();
});

it(
  'stops a projector whose topic was deleted and recreated, and says why',
  { timeout: 120_000 },
  async () => {
    const storage = sqliteStorage();
    const groupId = uniqueName('recreated');
    const runner = () =>
      new ProjectionRunner({
        projection: trackingProjection(),
        sink: storage.sink,
        feed: kafkaFeed({
          connection: kafkaConnection(),
          topics: [topic],
          groupId,
          maxWaitMs: 100,
        }),
      });
    try {
      const before = new MemoryEventStore();
      await appendCounted(before, ['order-a', 'order-b', 'order-c'], 8);
      await publishAll(kafkaConnection(), before, topic, {
        partitions: 2,
        progressTopic: progress[0]!,
        name: uniqueName('relay'),
      });
      const first = runner();
      await first.start();
      assert.equal(await first.whenCaughtUp(30_000), true);
      await first.stop();
      const applied = await trackedRows(storage.sink);

      // The topic goes, and comes back with a little of another store's events.
      const admin = new KafkaAdmin(kafkaConnection());
      try {
        await admin.deleteTopic(topic);
      } finally {
        await admin.close();
      }
      const afterwards = new MemoryEventStore();
      await appendCounted(afterwards, ['order-x'], 1);
      await publishAll(kafkaConnection(), afterwards, topic, {
        partitions: 2,
        progressTopic: progress[1]!,
        name: uniqueName('relay'),
      });

      const second = runner();
      await second.start();
      await second.finished; // it stops by itself
      assert.equal(second.state, 'stopped');
      const status = await second.status();
      assert.match(
        String(status.lastError),
        /OFFSET_OUT_OF_RANGE|outside what the partition holds/,
      );
      assert.deepEqual(
        await trackedRows(storage.sink),
        applied,
        'nothing of the new topic applied',
      );
      await second.stop();
    } finally {
      await storage.close();
    }
  },
);
