/**
 * A projection applies a stream's next version and nothing else, against the real broker:
 * a record from another producer that looks like a Tidemark event is parked as foreign and moves
 * no stream; a version that comes too early holds its stream (others go on), shows in status,
 * and the stream goes on, in order, when the missing version arrives.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { ProjectionRunner, ReadModels, ledger, type RecordedEvent } from 'tidemark';
import { KafkaAdmin, KafkaProducer, encodeEvent, kafkaFeed } from '../../src/kafka/internal.ts';
import { MemoryEventStore } from 'tidemark/memory';
import { sqliteStorage } from '../support/feed-fixtures.ts';
import { kafkaConnection, uniqueName, uniqueTopic } from '../support/services.ts';
import { appendCounted, publishAll, trackedRows, trackingProjection } from './support.ts';

const TEST = { timeout: 120_000 };
const topics: string[] = [];
after(async () => {
  const admin = new KafkaAdmin(kafkaConnection());
  for (const topic of topics) await admin.deleteTopic(topic, { ifExists: true });
  await admin.close();
});

async function setup() {
  const store = new MemoryEventStore();
  const topic = uniqueTopic('guard');
  const progressTopic = uniqueTopic('guard-progress');
  topics.push(topic, progressTopic);
  const name = uniqueName('relay');
  const publish = () =>
    publishAll(kafkaConnection(), store, topic, { partitions: 2, progressTopic, name });
  const storage = sqliteStorage();
  const runner = new ProjectionRunner({
    projection: trackingProjection(),
    sink: storage.sink,
    feed: kafkaFeed({
      connection: kafkaConnection(),
      topics: [topic],
      groupId: uniqueName('guard'),
      maxWaitMs: 100,
      // publishAll's relay writes with this source (test/kafka/support.ts).
      sources: ['tidemark://test'],
    }),
    retry: { attempts: 1 },
  });
  const readModels = new ReadModels({ sink: storage.sink, projections: [trackingProjection()] });
  return { store, topic, publish, runner, sink: storage.sink, readModels, close: storage.close };
}

/** A copy of `event` written to the topic by a producer of our own, outside the relay. */
async function produce(topic: string, event: RecordedEvent, source: string) {
  const producer = new KafkaProducer(kafkaConnection());
  try {
    await producer.send([encodeEvent(event, { topic, source })]);
  } finally {
    await producer.close();
  }
}

const ahead = (event: RecordedEvent, by: number): RecordedEvent => ({
  ...event,
  eventId: crypto.randomUUID(),
  streamVersion: event.streamVersion + by,
  data: { forged: true },
});

describe('kafka: the per-stream guard', () => {
  it(
    'parks a look-alike record from another producer as foreign; the stream goes on',
    TEST,
    async () => {
      const { store, topic, publish, runner, sink, readModels, close } = await setup();
      try {
        await appendCounted(store, ['order-a', 'order-b'], 3);
        await publish();
        const [last] = await store.readStream('order-a', { direction: 'backwards', maxCount: 1 });
        // Another environment on the same topic: the documented headers, a real stream id,
        // a version a few ahead.
        await produce(topic, ahead(last!, 3), 'tidemark://staging');
        await runner.start();
        assert.equal(await runner.whenCaughtUp(30_000), true);
        const parked = await runner.parked();
        assert.deepEqual(
          parked.map((p) => [p.reason, p.event.type, p.event.streamId.startsWith('$foreign-')]),
          [['foreign', '$tidemark.foreign-record', true]],
        );
        assert.match(parked[0]!.error, /tidemark:\/\/staging/);
        // The real stream's next events apply, and their consistency tokens are true.
        const { position, nextExpectedVersion } = await store.appendToStream('order-a', [
          { type: 'Counted', data: { i: 4 } },
          { type: 'Counted', data: { i: 5 } },
        ]);
        await publish();
        const token = { position, streamId: 'order-a', streamVersion: nextExpectedVersion };
        assert.equal(await readModels.waitFor(token, ['tracking'], 30_000), true);
        const rows = await trackedRows(sink);
        assert.deepEqual(rows.streams['order-a']?.versions, '1,2,3,4,5');
        const status = await runner.status();
        assert.equal(status.parked, 1);
        assert.equal(status.gaps, 0);
      } finally {
        await runner.stop();
        await close();
      }
    },
  );

  it(
    'a version that comes too early holds its stream, in status, until the missing one arrives',
    TEST,
    async () => {
      const { store, topic, publish, runner, sink, readModels, close } = await setup();
      try {
        await appendCounted(store, ['order-a', 'order-b'], 2);
        await publish();
        await runner.start();
        assert.equal(await runner.whenCaughtUp(30_000), true);
        // Version 4 of order-a before its version 3 (a record lost or delayed upstream).
        const [last] = await store.readStream('order-a', { direction: 'backwards', maxCount: 1 });
        const early = { ...ahead(last!, 2), data: { i: 'early' } };
        await produce(topic, early, 'tidemark://test');
        await appendCounted(store, ['order-b'], 1);
        await publish();
        assert.equal(await runner.whenCaughtUp(30_000), true);
        let status = await runner.status();
        assert.equal(status.gaps, 1, 'the held stream shows in status');
        assert.deepEqual(
          (await runner.parked()).map((p) => [p.reason, p.event.streamId, p.event.streamVersion]),
          [['gap', 'order-a', 4]],
        );
        let rows = await trackedRows(sink);
        assert.deepEqual(rows.streams['order-a']?.versions, '1,2', 'nothing applied past the hole');
        assert.deepEqual(rows.streams['order-b']?.versions, '1,2,3', 'other streams go on');
        // A token for the missing write is not fresh while the stream is held.
        const waiting = { position: 0, streamId: 'order-a', streamVersion: 3 };
        assert.equal(await readModels.waitFor(waiting, ['tracking'], 300), false);
        // The missing version arrives: it applies, then the held one, in order.
        await store.appendToStream('order-a', [{ type: 'Counted', data: { i: 3 } }]);
        await publish();
        assert.equal(await readModels.waitFor(waiting, ['tracking'], 30_000), true);
        assert.equal(await runner.whenCaughtUp(30_000), true);
        rows = await trackedRows(sink);
        assert.deepEqual(rows.streams['order-a']?.versions, '1,2,3,4');
        status = await runner.status();
        assert.equal(status.gaps, 0);
        assert.equal(status.parked, 0);
        assert.equal(await ledger.streamVersion(sink, 'tracking', 1, 'order-a'), 4);
      } finally {
        await runner.stop();
        await close();
      }
    },
  );
});
