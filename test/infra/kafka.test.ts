// The local Kafka broker, through Tidemark's Kafka port: topics, idempotent and transactional
// produce, read_committed isolation, consumer groups, rebalances, fencing.
// Every wait is on a signal (a record arriving, a callback, a position reaching the end offset).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  KafkaAdmin,
  KafkaConsumer,
  KafkaOperationError,
  KafkaProducer,
  KafkaProducerFencedError,
  isProducerFenced,
  offsetKey,
  type AssignmentChange,
  type ConsumedRecord,
  type KafkaConsumerOptions,
  type TopicPartition,
} from '../../src/kafka/internal.ts';
import {
  createTestTopic,
  kafkaConnection,
  uniqueName,
  uniqueTopic,
  type TestTopic,
} from '../support/services.ts';

const TEST = { timeout: 60_000 };

function consumer(topics: string[], options: Partial<KafkaConsumerOptions> = {}): KafkaConsumer {
  return new KafkaConsumer(kafkaConnection(), {
    groupId: uniqueName('group'),
    topics,
    heartbeatIntervalMs: 300,
    sessionTimeoutMs: 10_000,
    maxWaitMs: 200,
    ...options,
  });
}

/** Polls until every assigned partition's position reaches the end offset taken now. */
async function readToEnd(c: KafkaConsumer): Promise<ConsumedRecord[]> {
  await c.start();
  const ends = await c.endOffsets();
  const records: ConsumedRecord[] = [];
  const caughtUp = () =>
    c.assignment.every(
      (tp) =>
        (c.position(tp.topic, tp.partition) ?? -1n) >= ends.get(offsetKey(tp.topic, tp.partition))!,
    );
  while (!caughtUp()) {
    for (const batch of await c.poll()) records.push(...batch.records);
  }
  return records;
}

const text = (b: Buffer | null | undefined) => b?.toString('utf8');

/** A promise with its resolve function (Promise.withResolvers needs Node 22). */
function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

describe('infra: Kafka through the port', () => {
  let admin: KafkaAdmin;
  before(() => {
    admin = new KafkaAdmin(kafkaConnection());
  });
  after(() => admin.close());

  it('describes a single-node cluster on 127.0.0.1', TEST, async () => {
    const cluster = await admin.describeCluster();
    assert.ok(cluster.clusterId.length > 0);
    assert.ok(cluster.brokers.length >= 1);
    for (const broker of cluster.brokers) assert.notEqual(broker.host, 'localhost');
  });

  it('creates, describes and deletes a topic with partitions and configs', TEST, async () => {
    const name = uniqueTopic('admin');
    assert.equal(
      await admin.createTopic({ name, partitions: 3, configs: { 'retention.ms': '-1' } }),
      true,
    );
    const described = await admin.describeTopic(name);
    assert.ok(described);
    assert.equal(described.partitions.length, 3);
    assert.ok(described.partitions.every((p) => p.leader >= 0 && p.isr.length === 1));
    assert.equal(described.configs['retention.ms'], '-1');
    assert.ok((await admin.listTopics()).includes(name));

    assert.equal(await admin.createTopic({ name, partitions: 3 }, { ifNotExists: true }), false);
    await assert.rejects(admin.createTopic({ name }), (error: unknown) => {
      assert.ok(error instanceof KafkaOperationError);
      assert.equal(error.code, 'kafka_operation_failed');
      assert.equal(error.brokerError, 'TOPIC_ALREADY_EXISTS');
      return true;
    });

    await admin.deleteTopic(name);
    await admin.deleteTopic(name, { ifExists: true });
    assert.equal(await admin.describeTopic(name), undefined);
  });

  it('refuses to produce to a topic nobody created (auto-creation is off)', TEST, async () => {
    const producer = new KafkaProducer(kafkaConnection(), { retries: 2 });
    try {
      await assert.rejects(
        producer.send([{ topic: uniqueTopic('missing'), value: 'x' }]),
        (error: unknown) => {
          assert.ok(error instanceof KafkaOperationError);
          assert.equal(error.brokerError, 'UNKNOWN_TOPIC_OR_PARTITION');
          return true;
        },
      );
    } finally {
      await producer.close();
    }
  });

  describe('with a topic', () => {
    let topic: TestTopic;
    before(async () => {
      topic = await createTestTopic({ prefix: 'produce', partitions: 3 });
    });
    after(() => topic.delete());

    it(
      'produces idempotently; keys, values and headers arrive intact, one key in one partition',
      TEST,
      async () => {
        const producer = new KafkaProducer(kafkaConnection());
        const offsets = await producer.send(
          ['a', 'b', 'c', 'a', 'a'].map((stream, i) => ({
            topic: topic.name,
            key: `order-${stream}`,
            value: JSON.stringify({ i }),
            headers: { ce_type: 'OrderCreated', ce_id: `evt-${i}`, raw: Buffer.from([0, 1, 2]) },
          })),
        );
        assert.ok(offsets.length >= 1);
        await producer.close();

        const c = consumer([topic.name], { defaultStart: 'earliest' });
        try {
          const records = await readToEnd(c);
          assert.equal(records.length, 5);
          const ofA = records.filter((r) => text(r.key) === 'order-a');
          assert.equal(new Set(ofA.map((r) => r.partition)).size, 1, 'one stream, one partition');
          assert.deepEqual(
            ofA.map((r) => JSON.parse(text(r.value)!).i),
            [0, 3, 4],
            'in order within the partition',
          );
          const first = records.find((r) => text(r.headers.get('ce_id')) === 'evt-0')!;
          assert.equal(text(first.headers.get('ce_type')), 'OrderCreated');
          assert.deepEqual([...first.headers.get('raw')!], [0, 1, 2]);
          assert.equal(typeof first.timestamp, 'bigint');
        } finally {
          await c.close();
        }
      },
    );
  });

  describe('transactions', () => {
    let topic: TestTopic;
    before(async () => {
      topic = await createTestTopic({ prefix: 'txn', partitions: 1 });
    });
    after(() => topic.delete());

    it(
      'read_committed sees committed transactions only; read_uncommitted sees everything',
      TEST,
      async () => {
        const producer = new KafkaProducer(kafkaConnection(), {
          transactionalId: uniqueName('txn'),
        });
        await producer.initTransactions();
        // abort, commit, abort, commit from ONE producer: two aborted transactions of the same
        // producer id in one fetch is the case @platformatic/kafka's own filter gets wrong.
        for (const [label, commit] of [
          ['first-aborted', false],
          ['first-committed', true],
          ['second-aborted', false],
          ['second-committed', true],
        ] as const) {
          const tx = await producer.beginTransaction();
          await tx.send([
            { topic: topic.name, key: 's', value: `${label}-1` },
            { topic: topic.name, key: 's', value: `${label}-2` },
          ]);
          if (commit) await tx.commit();
          else await tx.abort();
          assert.equal(tx.state, commit ? 'committed' : 'aborted');
        }
        await producer.close();

        const committed = consumer([topic.name], { defaultStart: 'earliest' });
        const uncommitted = consumer([topic.name], {
          defaultStart: 'earliest',
          isolation: 'read_uncommitted',
        });
        try {
          const seen = (await readToEnd(committed)).map((r) => text(r.value));
          assert.deepEqual(seen, [
            'first-committed-1',
            'first-committed-2',
            'second-committed-1',
            'second-committed-2',
          ]);
          const all = (await readToEnd(uncommitted)).map((r) => text(r.value));
          assert.equal(all.length, 8);
          assert.ok(all.includes('first-aborted-1') && all.includes('second-aborted-2'));
        } finally {
          await committed.close();
          await uncommitted.close();
        }
      },
    );

    it('transact() commits on success and aborts when the work throws', TEST, async () => {
      const t = await createTestTopic({ prefix: 'transact' });
      const producer = new KafkaProducer(kafkaConnection(), {
        transactionalId: uniqueName('transact'),
      });
      try {
        await producer.transact((tx) => tx.send([{ topic: t.name, value: 'kept' }]));
        await assert.rejects(
          producer.transact(async (tx) => {
            await tx.send([{ topic: t.name, value: 'dropped' }]);
            throw new Error('projection of the batch failed');
          }),
          /projection of the batch failed/,
        );
        // An empty transaction ends locally (the broker would refuse EndTxn for it).
        await producer.transact(async () => {});
        const c = consumer([t.name], { defaultStart: 'earliest' });
        try {
          assert.deepEqual(
            (await readToEnd(c)).map((r) => text(r.value)),
            ['kept'],
          );
        } finally {
          await c.close();
        }
      } finally {
        await producer.close();
        await t.delete();
      }
    });

    it('a second producer with the same transactional id fences the first', TEST, async () => {
      const transactionalId = uniqueName('fenced');
      const t = await createTestTopic({ prefix: 'fence' });
      const zombie = new KafkaProducer(kafkaConnection(), { transactionalId });
      const successor = new KafkaProducer(kafkaConnection(), { transactionalId });
      try {
        const open = await zombie.beginTransaction();
        await open.send([{ topic: t.name, value: 'from-zombie' }]);

        await successor.initTransactions(); // bumps the epoch, aborts the zombie's transaction

        await assert.rejects(
          open.send([{ topic: t.name, value: 'zombie-again' }]),
          (error: unknown) => {
            assert.ok(error instanceof KafkaProducerFencedError);
            assert.equal(error.code, 'kafka_producer_fenced');
            assert.equal(error.retryable, false);
            assert.equal(error.transactionalId, transactionalId);
            return true;
          },
        );
        assert.equal(zombie.fenced, true);
        // Every later call reports the same fence.
        await assert.rejects(zombie.beginTransaction(), (e: unknown) => isProducerFenced(e));

        await successor.transact((tx) => tx.send([{ topic: t.name, value: 'from-successor' }]));
        const c = consumer([t.name], { defaultStart: 'earliest' });
        try {
          assert.deepEqual(
            (await readToEnd(c)).map((r) => text(r.value)),
            ['from-successor'],
          );
        } finally {
          await c.close();
        }
      } finally {
        await zombie.close();
        await successor.close();
        await t.delete();
      }
    });

    it('a fenced producer cannot commit either', TEST, async () => {
      const transactionalId = uniqueName('fenced-commit');
      const t = await createTestTopic({ prefix: 'fence-commit' });
      const zombie = new KafkaProducer(kafkaConnection(), { transactionalId });
      const successor = new KafkaProducer(kafkaConnection(), { transactionalId });
      try {
        const open = await zombie.beginTransaction();
        await open.send([{ topic: t.name, value: 'x' }]);
        await successor.initTransactions();
        await assert.rejects(open.commit(), KafkaProducerFencedError);
      } finally {
        await zombie.close();
        await successor.close();
        await t.delete();
      }
    });
  });

  describe('consumer groups', () => {
    let topic: TestTopic;
    before(async () => {
      topic = await createTestTopic({ prefix: 'group', partitions: 1 });
      const producer = new KafkaProducer(kafkaConnection());
      await producer.send(
        Array.from({ length: 10 }, (_, i) => ({ topic: topic.name, key: 'k', value: `m${i}` })),
      );
      await producer.close();
    });
    after(() => topic.delete());

    it(
      'commits offsets, stops, and a new member resumes where the group left off',
      TEST,
      async () => {
        const groupId = uniqueName('resume');
        const first = consumer([topic.name], { groupId });
        let firstRecords: ConsumedRecord[];
        try {
          firstRecords = await readToEnd(first);
          assert.equal(firstRecords.length, 10);
          // Processed four: commit the next offset to read.
          await first.commit([
            { topic: topic.name, partition: 0, offset: firstRecords[3]!.offset + 1n },
          ]);
        } finally {
          await first.close(); // leaves the group: no wait for a session timeout
        }

        const second = consumer([topic.name], { groupId }); // defaultStart: 'committed'
        try {
          const records = await readToEnd(second);
          assert.deepEqual(
            records.map((r) => text(r.value)),
            ['m4', 'm5', 'm6', 'm7', 'm8', 'm9'],
          );
          const committed = await second.committed();
          assert.equal(committed.get(offsetKey(topic.name, 0)), firstRecords[3]!.offset + 1n);
        } finally {
          await second.close();
        }
      },
    );

    it(
      'starts each assigned partition where onAssigned says (offsets kept elsewhere)',
      TEST,
      async () => {
        const changes: AssignmentChange[] = [];
        const c = consumer([topic.name], {
          onAssigned: (change) => {
            changes.push(change);
            return change.assigned.map((tp) => ({ ...tp, start: 7n }));
          },
        });
        try {
          const records = await readToEnd(c);
          assert.deepEqual(
            records.map((r) => text(r.value)),
            ['m7', 'm8', 'm9'],
          );
          assert.equal(changes.length, 1);
          assert.deepEqual(changes[0]!.added, [{ topic: topic.name, partition: 0 }]);
          c.seek(topic.name, 0, 8n);
          const again = await readToEnd(c);
          assert.deepEqual(
            again.map((r) => text(r.value)),
            ['m8', 'm9'],
          );
        } finally {
          await c.close();
        }
      },
    );
  });

  it(
    'reads ahead (readAhead): every record once and in order; a seek drops what was read ahead',
    TEST,
    async () => {
      const t = await createTestTopic({ prefix: 'read-ahead', partitions: 1 });
      const producer = new KafkaProducer(kafkaConnection());
      // A send each: a record batch each, and with maxBytesPerPartition 1 a fetch returns one.
      for (let i = 0; i < 6; i++) await producer.send([{ topic: t.name, value: `r${i}` }]);
      await producer.close();
      const c = consumer([t.name], {
        readAhead: true,
        maxBytesPerPartition: 1,
        onAssigned: (change) => change.assigned.map((tp) => ({ ...tp, start: 0n })),
      });
      /** The values of the next poll that brings records. */
      const next = async () => {
        for (;;) {
          const values = (await c.poll()).flatMap((b) => b.records.map((r) => text(r.value)));
          if (values.length > 0) return values;
        }
      };
      try {
        await c.start();
        assert.deepEqual(await next(), ['r0']);
        // The fetch for r1 left with that poll; it is taken, not fetched again.
        assert.deepEqual(await next(), ['r1']);
        assert.equal(c.position(t.name, 0), 2n);
        // The fetch for r2 is out now: a seek makes it worthless, and the poll reads from 1.
        c.seek(t.name, 0, 1n);
        assert.deepEqual(await next(), ['r1']);
        const rest = await readToEnd(c);
        assert.deepEqual(
          rest.map((r) => text(r.value)),
          ['r2', 'r3', 'r4', 'r5'],
        );
      } finally {
        await c.close();
        await t.delete();
      }
    },
  );

  it('reports rebalances: a second member takes partitions from the first', TEST, async () => {
    const t = await createTestTopic({ prefix: 'rebalance', partitions: 2 });
    const groupId = uniqueName('rebalance');
    const revokedFromA = deferred<readonly TopicPartition[]>();
    const secondAssignmentOfA = deferred<AssignmentChange>();
    const a = consumer([t.name], {
      groupId,
      onRevoked: (partitions) => revokedFromA.resolve(partitions),
      onAssigned: (change) => {
        if (change.revoked.length > 0) secondAssignmentOfA.resolve(change);
      },
    });
    const b = consumer([t.name], { groupId });
    let polling = true;
    try {
      await a.start();
      assert.equal(a.assignment.length, 2);
      const firstGeneration = a.generation;
      // A keeps polling (as a runner would); B's join makes the coordinator rebalance the group.
      const loop = (async () => {
        while (polling) await a.poll();
      })();
      await b.start();
      const change = await secondAssignmentOfA.promise;
      const revoked = await revokedFromA.promise;
      polling = false;
      await loop;

      assert.equal(revoked.length, 1);
      assert.ok(change.generation > firstGeneration);
      assert.equal(change.assigned.length, 1);
      assert.deepEqual(change.revoked, revoked);
      assert.equal(b.assignment.length, 1);
      assert.notDeepEqual(b.assignment, a.assignment);
    } finally {
      polling = false;
      await a.close();
      await b.close();
      await t.delete();
    }
  });
});
