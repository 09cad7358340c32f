// What the relay refuses, against the real broker: progress made from another store, progress
// past the store's head (a restore from backup), a topic whose partition count changed; and what
// it parks: an event too big to publish parks its stream, the other streams go on. Each refusal
// is lifted only by an operator's rebase; a parked stream by retry or skip.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { EventStore, Logger } from 'tidemark';
import {
  EventTopics,
  KafkaAdmin,
  KafkaProducer,
  KafkaReader,
  KafkaRelay,
  decodeEvent,
  readRelayProgressRecord,
  rebaseRelay,
  retryRelayParked,
  skipRelayParked,
} from '../../src/kafka/internal.ts';
import { MemoryEventStore } from 'tidemark/memory';
import { SqliteEventStore } from 'tidemark/sqlite';
import { kafkaConnection, uniqueName, uniqueTopic } from '../support/services.ts';

const TEST = { timeout: 90_000 };

/** A logger that keeps its lines, to check what an operator reads. */
function recordingLogger() {
  const lines: { level: string; msg: string; fields: object }[] = [];
  const at =
    (level: string) =>
    (fields: object, msg = '') =>
      lines.push({ level, msg, fields });
  const logger: Logger = {
    debug: () => {},
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
  };
  return { logger, lines, find: (re: RegExp) => lines.find((l) => re.test(l.msg)) };
}

interface Setup {
  readonly name: string;
  readonly topic: string;
  readonly progressTopic: string;
}

function relayOn(
  store: EventStore,
  setup: Setup,
  options: { logger?: Logger; maxEventBytes?: number; partitions?: number } = {},
) {
  return new KafkaRelay({
    connection: kafkaConnection(),
    store,
    topics: new EventTopics({
      categories: { order: setup.topic },
      settings: { partitions: options.partitions ?? 2 },
    }),
    source: 'tidemark://test',
    name: setup.name,
    progressTopic: setup.progressTopic,
    pollIntervalMs: 200,
    ...(options.logger ? { logger: options.logger } : {}),
    ...(options.maxEventBytes ? { maxEventBytes: options.maxEventBytes } : {}),
  });
}

async function append(store: EventStore, count: number, stream = (i: number) => `order-${i % 3}`) {
  for (let i = 0; i < count; i++)
    await store.appendToStream(stream(i), [{ type: 'Counted', data: { i } }]);
}

async function published(topic: string) {
  const reader = new KafkaReader(kafkaConnection());
  try {
    return (await reader.readAll(topic)).map((r) => decodeEvent(r));
  } finally {
    await reader.close();
  }
}

describe('kafka: what the relay refuses', () => {
  let admin: KafkaAdmin;
  const topics: string[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'tidemark-relay-refusals-'));
  before(() => {
    admin = new KafkaAdmin(kafkaConnection());
  });
  after(async () => {
    for (const topic of topics) await admin.deleteTopic(topic, { ifExists: true });
    await admin.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const setup = (): Setup => {
    const s = {
      name: uniqueName('refuse'),
      topic: uniqueTopic('refuse'),
      progressTopic: uniqueTopic('refuse-progress'),
    };
    topics.push(s.topic, s.progressTopic);
    return s;
  };

  it(
    "refuses another store's progress until an operator re-bases it on this store",
    TEST,
    async () => {
      const s = setup();
      const first = new MemoryEventStore();
      await append(first, 6);
      const a = relayOn(first, s);
      await a.start();
      assert.equal(await a.whenCaughtUp(30_000), true);
      await a.stop();
      assert.equal(
        (
          await readRelayProgressRecord(kafkaConnection(), {
            transactionalId: `tidemark-relay-${s.name}`,
            progressTopic: s.progressTopic,
          })
        ).storeId,
        await first.storeId(),
        'the progress names its store',
      );

      // A second environment with the same relay name, and as many events: nothing tells the
      // positions apart, only the store id.
      const second = new MemoryEventStore();
      await append(second, 9);
      const log = recordingLogger();
      const b = relayOn(second, s, { logger: log.logger });
      await b.start();
      assert.equal(b.state, 'refused');
      const status = await b.status();
      assert.equal(status.refusal?.reason, 'store_mismatch');
      assert.equal(status.storeId, await second.storeId());
      assert.equal(status.progressStoreId, await first.storeId());
      assert.equal(status.position, 6, 'what Kafka holds');
      assert.equal(await b.whenCaughtUp(1000), false);
      const line = log.find(/relay refused to publish/);
      assert.equal(line?.level, 'error');
      assert.match(line!.msg, /tidemark relay rebase --name .* --to head/);
      await b.stop();
      assert.equal((await published(s.topic)).length, 6, 'nothing of the second store');

      await rebaseRelay({
        connection: kafkaConnection(),
        store: second,
        name: s.name,
        progressTopic: s.progressTopic,
        to: 6,
      });
      const c = relayOn(second, s);
      await c.start();
      assert.equal(c.state, 'running');
      assert.equal(await c.whenCaughtUp(30_000), true);
      await c.stop();
      const events = await published(s.topic);
      assert.equal(events.length, 9, 'the second store from position 7 on');
      assert.deepEqual(
        events.map((e) => e.position).sort((x, y) => x - y),
        [1, 2, 3, 4, 5, 6, 7, 8, 9],
        'positions 1 to 6 from the first store, 7 to 9 from the second',
      );
    },
  );

  it("refuses progress past the store's head (a restore from backup)", TEST, async () => {
    const s = setup();
    const path = join(dir, `${s.name}.db`);
    const store = new SqliteEventStore(path);
    await append(store, 5);
    await store.database.writer.backup(join(dir, `${s.name}.backup.db`)); // at position 5
    await append(store, 4);
    const relay = relayOn(store, s);
    await relay.start();
    assert.equal(await relay.whenCaughtUp(30_000), true);
    await relay.stop();
    await store.close();

    const restored = new SqliteEventStore(join(dir, `${s.name}.backup.db`));
    const log = recordingLogger();
    const refused = relayOn(restored, s, { logger: log.logger });
    await refused.start();
    const status = await refused.status();
    assert.equal(status.state, 'refused');
    assert.equal(status.refusal?.reason, 'position_past_head');
    assert.equal(status.storeId, status.progressStoreId, 'the same store, restored');
    assert.equal(status.head, 5);
    assert.equal(status.position, 9);
    assert.equal(status.pastHead, 4);
    assert.equal(status.backlog, 0);
    assert.match(log.find(/relay refused/)!.msg, /published up to position 9.*head is 5/);
    // New appends would reuse positions 6..9: nothing of them may reach Kafka as is.
    await append(restored, 2);
    await refused.stop();
    assert.equal((await published(s.topic)).length, 9);
    await restored.close();
  });

  it(
    'adopts the store once for progress written before stores had an id, and logs it',
    TEST,
    async () => {
      const s = setup();
      const store = new MemoryEventStore();
      await append(store, 4);
      // A version 1 progress record, as older relays wrote it.
      const transactionalId = `tidemark-relay-${s.name}`;
      await admin.createTopic({ name: s.progressTopic, partitions: 1 });
      const producer = new KafkaProducer(kafkaConnection(), { transactionalId });
      await producer.initTransactions();
      await producer.transact((tx) =>
        tx.send([
          {
            topic: s.progressTopic,
            partition: 0,
            key: transactionalId,
            value: '{"v":1,"position":3}',
          },
        ]),
      );
      await producer.close();

      const log = recordingLogger();
      const relay = relayOn(store, s, { logger: log.logger });
      await relay.start();
      assert.equal(relay.state, 'running');
      assert.equal(relay.position, 3);
      assert.equal(log.find(/no store id/)?.level, 'warn');
      assert.equal(await relay.whenCaughtUp(30_000), true);
      await relay.stop();
      const progress = await readRelayProgressRecord(kafkaConnection(), {
        transactionalId,
        progressTopic: s.progressTopic,
      });
      assert.equal(progress.storeId, await store.storeId());
      assert.equal(progress.position, 4);
      assert.deepEqual(progress.partitions, { [s.topic]: 2 });
    },
  );

  it(
    'refuses a topic whose partition count changed, until the change is accepted',
    TEST,
    async () => {
      const s = setup();
      const store = new MemoryEventStore();
      await append(store, 4);
      const relay = relayOn(store, s);
      await relay.start();
      assert.equal(await relay.whenCaughtUp(30_000), true);
      await relay.stop();

      await admin.addPartitions(s.topic, 3);
      await append(store, 3);
      const log = recordingLogger();
      const refused = relayOn(store, s, { logger: log.logger });
      await refused.start();
      const status = await refused.status();
      assert.equal(status.state, 'refused');
      assert.equal(status.refusal?.reason, 'partitions_changed');
      assert.equal(status.refusal?.topic, s.topic);
      assert.deepEqual(status.partitions, { [s.topic]: 2 });
      assert.match(
        log.find(/relay refused/)!.msg,
        /has 3 partitions, it had 2.*--accept-partitions/,
      );
      const warned = log.lines.find((l) => /another setting than configured/.test(l.msg));
      assert.deepEqual(
        warned?.fields,
        { topic: s.topic, setting: 'partitions', expected: '2', actual: '3' },
        'EventTopics.ensure says the existing topic differs',
      );
      await refused.stop();
      assert.equal((await published(s.topic)).length, 4);

      await rebaseRelay({
        connection: kafkaConnection(),
        store,
        name: s.name,
        progressTopic: s.progressTopic,
        acceptPartitions: true,
      });
      const accepted = relayOn(store, s);
      await accepted.start();
      assert.equal(accepted.state, 'running');
      assert.equal(await accepted.whenCaughtUp(30_000), true);
      assert.deepEqual((await accepted.status()).partitions, { [s.topic]: 3 });
      await accepted.stop();
      assert.equal((await published(s.topic)).length, 7);
    },
  );

  it(
    'parks the stream of an event too big to publish; the others go on; retry and skip release it',
    TEST,
    async () => {
      const s = setup();
      const store = new MemoryEventStore();
      const big = 'x'.repeat(4000);
      await store.appendToStream('order-a', [{ type: 'Counted', data: { n: 1 } }]);
      await store.appendToStream('order-b', [{ type: 'Counted', data: { n: 1 } }]);
      await store.appendToStream('order-a', [{ type: 'Counted', data: { n: 2, big } }]); // 3
      await store.appendToStream('order-b', [{ type: 'Counted', data: { n: 2 } }]);
      await store.appendToStream('order-a', [{ type: 'Counted', data: { n: 3 } }]); // held
      await store.appendToStream('order-c', [{ type: 'Counted', data: { n: 1, big } }]); // 6

      const log = recordingLogger();
      const relay = relayOn(store, s, { logger: log.logger, maxEventBytes: 2000 });
      await relay.start();
      assert.equal(await relay.whenCaughtUp(30_000), true);
      const status = await relay.status();
      assert.equal(status.state, 'running', 'parking is not a stop');
      assert.deepEqual(
        status.parked.map((p) => [p.streamId, p.streamVersion, p.position, p.limit]),
        [
          ['order-a', 2, 3, 2000],
          ['order-c', 1, 6, 2000],
        ],
      );
      const line = log.find(/relay parked stream order-a/);
      assert.equal(line?.level, 'error');
      assert.match(line!.msg, /position 3 .* over the limit of 2000.*relay retry/);
      // Later events of a parked stream are held, even once appended after the park.
      await store.appendToStream('order-a', [{ type: 'Counted', data: { n: 4 } }]);
      await store.appendToStream('order-b', [{ type: 'Counted', data: { n: 3 } }]);
      assert.equal(await relay.whenCaughtUp(30_000), true);
      await relay.stop();
      const ids = (events: { streamId: string; streamVersion: number }[]) =>
        events.map((e) => `${e.streamId}@${e.streamVersion}`).sort();
      assert.deepEqual(ids(await published(s.topic)), [
        'order-a@1',
        'order-b@1',
        'order-b@2',
        'order-b@3',
      ]);

      // A restarted relay keeps them parked: the list is in the progress record.
      const again = relayOn(store, s, { maxEventBytes: 2000 });
      await again.start();
      assert.deepEqual(
        (await again.status()).parked.map((p) => p.streamId),
        ['order-a', 'order-c'],
      );
      await again.stop();

      const operation = {
        connection: kafkaConnection(),
        store,
        name: s.name,
        progressTopic: s.progressTopic,
      };
      // Retried under the same limit, the event is still too big: nothing moves.
      const refusedAgain = await retryRelayParked({
        ...operation,
        streamId: 'order-a',
        maxEventBytes: 2000,
      });
      assert.equal(refusedAgain.published, 0);
      assert.equal(refusedAgain.parked?.position, 3);
      // With the limit raised: the parked event and the two held behind it, in order.
      const retried = await retryRelayParked({ ...operation, streamId: 'order-a' });
      assert.deepEqual(retried, { published: 3, parked: undefined });
      const skipped = await skipRelayParked({ ...operation, streamId: 'order-c' });
      assert.deepEqual(skipped, { published: 0, parked: undefined });

      const last = relayOn(store, s, { maxEventBytes: 2000 });
      await last.start();
      assert.deepEqual((await last.status()).parked, []);
      await store.appendToStream('order-a', [{ type: 'Counted', data: { n: 5 } }]);
      assert.equal(await last.whenCaughtUp(30_000), true);
      await last.stop();
      const events = await published(s.topic);
      assert.deepEqual(
        events.filter((e) => e.streamId === 'order-a').map((e) => e.streamVersion),
        [1, 2, 3, 4, 5],
        'per-stream order kept across the park',
      );
      assert.equal(
        events.some((e) => e.streamId === 'order-c'),
        false,
        'the skipped event is never published',
      );
    },
  );
});
