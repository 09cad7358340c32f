// read_committed after a transactional producer was restarted twice: once with records of an
// open transaction (an aborted transaction with data), once right after AddPartitionsToTxn (an
// ABORT marker with no data). Every committed record must be read, by the group consumer and by
// the group-less reader, and the markers in the log must agree.
//
// @platformatic/kafka's own Consumer.fetch drops the committed records between the two aborts;
// the port therefore sends Fetch itself (src/kafka/fetch.ts). The last check keeps an eye on the
// library: when it fails, the library has fixed its filter.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Consumer, FetchIsolationLevels } from '@platformatic/kafka';
import {
  KafkaConsumer,
  KafkaProducer,
  KafkaReader,
  offsetKey,
  type ProducerRecord,
} from '../../src/kafka/internal.ts';
import {
  createTestTopic,
  kafkaBrokers,
  kafkaConnection,
  uniqueName,
  type TestTopic,
} from '../support/services.ts';

const TEST = { timeout: 60_000 };
const text = (b: Buffer | null) => b?.toString('utf8') ?? '';

describe('kafka: read_committed across producer restarts', () => {
  let topic: TestTopic;
  const committed: string[] = [];

  before(async () => {
    topic = await createTestTopic({ prefix: 'read-committed', partitions: 2 });
    const transactionalId = uniqueName('restarts');
    const records = (label: string): ProducerRecord[] =>
      ['a', 'b', 'c', 'd'].map((key) => ({ topic: topic.name, key, value: `${label}-${key}` }));
    const commit = async (producer: KafkaProducer, label: string) => {
      await producer.transact((tx) => tx.send(records(label)));
      committed.push(...records(label).map((r) => String(r.value)));
    };

    const first = new KafkaProducer(kafkaConnection(), { transactionalId, retries: 1 });
    await commit(first, 't1');
    const open = await first.beginTransaction();
    await open.send(records('t2-aborted')); // then "crashes" with the transaction open
    await first.close();

    const second = new KafkaProducer(kafkaConnection(), { transactionalId, retries: 1 });
    await second.initTransactions(); // aborts t2 (ABORT markers after its records)
    await commit(second, 't3');
    await commit(second, 't4');
    const empty = await second.beginTransaction();
    // AddPartitionsToTxn succeeds, the produce is refused: partitions joined, nothing written.
    await assert.rejects(
      empty.send(
        ['a', 'b', 'c', 'd'].map((key) => ({
          topic: topic.name,
          key,
          value: Buffer.alloc(2 * 1024 * 1024),
        })),
      ),
    );
    await second.close();

    const third = new KafkaProducer(kafkaConnection(), { transactionalId });
    await third.initTransactions(); // ABORT markers with no aborted records before them
    await commit(third, 't5');
    await third.close();
  });
  after(() => topic.delete());

  it('the group-less reader returns every committed record, nothing else', TEST, async () => {
    const reader = new KafkaReader(kafkaConnection());
    const markers = new KafkaReader(kafkaConnection());
    try {
      const records = await reader.readAll(topic.name);
      assert.deepEqual(records.map((r) => text(r.value)).sort(), [...committed].sort());
      // The same, judged from the markers in the log alone.
      const ends = await reader.offsets(topic.name, 'latest');
      for (const [partition, end] of ends) {
        const byMarkers = await markers.readCommittedByMarkers(topic.name, partition, 0n, end);
        assert.deepEqual(
          byMarkers.map((r) => r.offset),
          records.filter((r) => r.partition === partition).map((r) => r.offset),
        );
      }
    } finally {
      await reader.close();
      await markers.close();
    }
  });

  it('the group consumer returns every committed record', TEST, async () => {
    const consumer = new KafkaConsumer(kafkaConnection(), {
      groupId: uniqueName('read-committed'),
      topics: [topic.name],
      defaultStart: 'earliest',
      maxWaitMs: 100,
    });
    try {
      await consumer.start();
      const ends = await consumer.endOffsets();
      const seen: string[] = [];
      const done = () =>
        consumer.assignment.every(
          (tp) =>
            (consumer.position(tp.topic, tp.partition) ?? -1n) >=
            ends.get(offsetKey(tp.topic, tp.partition))!,
        );
      while (!done()) {
        for (const batch of await consumer.poll())
          seen.push(...batch.records.map((r) => text(r.value)));
      }
      assert.deepEqual(seen.sort(), [...committed].sort());
    } finally {
      await consumer.close();
    }
  });

  it("documents the library's own filter, which drops committed records here", TEST, async () => {
    const client = new Consumer<Buffer, Buffer, Buffer, Buffer>({
      clientId: 'tidemark-test-library-fetch',
      bootstrapBrokers: kafkaBrokers(),
      groupId: uniqueName('unused'),
    });
    try {
      const metadata = await client.metadata({ topics: [topic.name], forceUpdate: true });
      const described = metadata.topics.get(topic.name)!;
      const seen: string[] = [];
      for (const [partition, info] of described.partitions.entries()) {
        const response = await client.fetch({
          node: info.leader,
          topics: [
            {
              topicId: described.id,
              partitions: [
                {
                  partition,
                  fetchOffset: 0n,
                  partitionMaxBytes: 1024 * 1024,
                  currentLeaderEpoch: -1,
                  lastFetchedEpoch: -1,
                },
              ],
            },
          ],
          maxWaitTime: 100,
          isolationLevel: FetchIsolationLevels.READ_COMMITTED,
        });
        for (const batch of response.responses[0]!.partitions[0]!.records ?? []) {
          if ((batch.attributes & 0x20) === 0)
            seen.push(...batch.records.map((r) => text(r.value)));
        }
      }
      const missing = committed.filter((value) => !seen.includes(value));
      assert.ok(
        missing.some((v) => v.startsWith('t3')) && missing.some((v) => v.startsWith('t4')),
        'the library no longer drops committed records: src/kafka/fetch.ts may go back to Consumer.fetch',
      );
    } finally {
      await client.close();
    }
  });
});
