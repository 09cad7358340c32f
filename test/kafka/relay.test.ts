// The relay against the real broker: topics it creates, what it publishes (every event once,
// per-stream order, one stream in one partition, decodable), resuming from the progress it
// committed in Kafka, and fencing by a second instance.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { RecordedEvent } from 'tidemark';
import {
  EventTopics,
  KafkaAdmin,
  KafkaProducerFencedError,
  KafkaReader,
  KafkaRelay,
  decodeEvent,
  type ConsumedRecord,
} from '../../src/kafka/internal.ts';
import { MemoryEventStore } from 'tidemark/memory';
import { kafkaConnection, uniqueName, uniqueTopic } from '../support/services.ts';

const TEST = { timeout: 90_000 };

function relayFor(
  store: MemoryEventStore,
  topic: string,
  progressTopic: string,
  options: { name?: string; batchSize?: number; partitions?: number } = {},
) {
  return new KafkaRelay({
    connection: kafkaConnection(),
    store,
    topics: new EventTopics({
      categories: { order: topic },
      settings: { partitions: options.partitions ?? 3 },
    }),
    source: 'tidemark://test',
    name: options.name ?? uniqueName('relay'),
    progressTopic,
    batchSize: options.batchSize ?? 50,
    pollIntervalMs: 200,
  });
}

async function append(store: MemoryEventStore, streams: string[], rounds: number) {
  for (let round = 0; round < rounds; round++) {
    for (const stream of streams) {
      await store.appendToStream(stream, [
        {
          type: 'Counted',
          data: { round, stream },
          metadata: { correlationId: `c-${round}`, note: 'x' },
        },
      ]);
    }
  }
}

async function readTopic(topic: string): Promise<ConsumedRecord[]> {
  const reader = new KafkaReader(kafkaConnection());
  try {
    return await reader.readAll(topic);
  } finally {
    await reader.close();
  }
}

/** Every stored event of the listed category is in the topic once, in order, decodable. */
function assertExactlyOnce(records: ConsumedRecord[], stored: RecordedEvent[]) {
  const decoded = records.map((r) => decodeEvent(r));
  const ids = decoded.map((e) => e.eventId);
  assert.equal(new Set(ids).size, ids.length, 'no event twice');
  assert.deepEqual(
    [...ids].sort(),
    stored.map((e) => e.eventId).sort(),
    'every event of the category, nothing else',
  );
  const byId = new Map(stored.map((e) => [e.eventId, e]));
  for (const event of decoded) assert.deepEqual(event, byId.get(event.eventId));
  const partitionOf = new Map<string, number>();
  const lastVersion = new Map<string, number>();
  for (const record of records) {
    const event = decodeEvent(record);
    const partition = partitionOf.get(event.streamId) ?? record.partition;
    assert.equal(record.partition, partition, `${event.streamId} stays in one partition`);
    partitionOf.set(event.streamId, partition);
    assert.equal(event.streamVersion, (lastVersion.get(event.streamId) ?? 0) + 1, 'in order');
    lastVersion.set(event.streamId, event.streamVersion);
  }
}

describe('kafka: relay', () => {
  let admin: KafkaAdmin;
  const topics: string[] = [];
  before(() => {
    admin = new KafkaAdmin(kafkaConnection());
  });
  after(async () => {
    for (const topic of topics) await admin.deleteTopic(topic, { ifExists: true });
    await admin.close();
  });
  const newTopic = (prefix: string) => {
    const name = uniqueTopic(prefix);
    topics.push(name);
    return name;
  };

  it(
    'creates its topics: event topics keep data forever, progress is compacted',
    TEST,
    async () => {
      const store = new MemoryEventStore();
      const topic = newTopic('relay-config');
      const progress = newTopic('relay-progress');
      const relay = relayFor(store, topic, progress, { partitions: 4 });
      await relay.start();
      await relay.stop();
      const described = await admin.describeTopic(topic);
      assert.ok(described);
      assert.equal(described.partitions.length, 4);
      assert.equal(described.configs['retention.ms'], '-1');
      assert.equal(described.configs['cleanup.policy'], 'delete');
      const progressTopic = await admin.describeTopic(progress);
      assert.ok(progressTopic);
      assert.equal(progressTopic.partitions.length, 1);
      assert.equal(progressTopic.configs['cleanup.policy'], 'compact');
      assert.equal(progressTopic.configs['retention.ms'], '-1');
    },
  );

  it(
    'publishes every event of its categories once, in stream order, and resumes after a restart',
    TEST,
    async () => {
      const store = new MemoryEventStore();
      const topic = newTopic('relay-publish');
      const progress = newTopic('relay-progress');
      const name = uniqueName('relay');
      const streams = Array.from({ length: 12 }, (_, i) => `order-${i}`);
      await append(store, streams, 10);
      await store.appendToStream('customer-1', [{ type: 'Ignored', data: {} }]);

      const first = relayFor(store, topic, progress, { name });
      await first.start();
      assert.equal(await first.whenCaughtUp(30_000), true);
      // Appends while it runs are picked up through onAppended.
      await append(store, streams, 2);
      assert.equal(await first.whenCaughtUp(30_000), true);
      const status = await first.status();
      assert.equal(status.state, 'running');
      assert.equal(status.backlog, 0);
      assert.equal(status.published, 12 * 12);
      await first.stop();
      assert.equal(first.state, 'stopped');

      await append(store, streams, 3);
      const second = relayFor(store, topic, progress, { name });
      await second.start();
      assert.equal(second.position, 12 * 12 + 1, 'resumes after what the first one committed');
      assert.equal(await second.whenCaughtUp(30_000), true);
      assert.equal((await second.status()).published, 12 * 3);
      await second.stop();

      const stored = (await store.readAll({ maxCount: 10_000 })).filter((e) =>
        e.streamId.startsWith('order-'),
      );
      assertExactlyOnce(await readTopic(topic), stored);
    },
  );

  it(
    'a second instance with the same transactional id fences the first, which stops with a typed error',
    TEST,
    async () => {
      const store = new MemoryEventStore();
      const topic = newTopic('relay-fence');
      const progress = newTopic('relay-progress');
      const name = uniqueName('relay');
      const streams = Array.from({ length: 5 }, (_, i) => `order-${i}`);
      await append(store, streams, 4);

      const zombie = relayFor(store, topic, progress, { name, batchSize: 5 });
      await zombie.start();
      assert.equal(await zombie.whenCaughtUp(30_000), true);
      const successor = relayFor(store, topic, progress, { name, batchSize: 5 });
      await successor.start(); // InitProducerId: the zombie's epoch is now stale

      await append(store, streams, 4); // both wake up; only the successor may publish
      await assert.rejects(zombie.done, (error: unknown) => {
        assert.ok(error instanceof KafkaProducerFencedError);
        assert.equal(error.code, 'kafka_producer_fenced');
        return true;
      });
      assert.equal(zombie.state, 'fenced');
      assert.match((await zombie.status()).lastError ?? '', /fenced/);
      assert.equal(await successor.whenCaughtUp(30_000), true);
      await successor.stop();
      await zombie.stop();

      const stored = (await store.readAll({ maxCount: 10_000 })).filter((e) =>
        e.streamId.startsWith('order-'),
      );
      assertExactlyOnce(await readTopic(topic), stored);
    },
  );
});
