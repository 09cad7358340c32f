// The Kafka-fed projection runner against the real broker, with SQLite read models: catch-up,
// offsets stored with the read models, redelivery without a second effect, undecodable records,
// upcasting, a rebalance between two members, consistency waits.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  ProjectionRunner,
  Upcasters,
  ledger,
  type ProjectionRunnerOptions,
  type RecordedEvent,
} from 'tidemark';
import { KafkaAdmin, KafkaProducer, encodeEvent, kafkaFeed } from '../../src/kafka/internal.ts';
import { MemoryEventStore } from 'tidemark/memory';
import { SqliteDatabase, SqliteProjectionSink } from 'tidemark/sqlite';
import { kafkaConnection, uniqueName, uniqueTopic } from '../support/services.ts';
import {
  appendCounted,
  expectedRows,
  leaveOpenTransaction,
  publishAll,
  trackedRows,
  trackingProjection,
  whenRunners,
} from './support.ts';

const TEST = { timeout: 120_000 };
const dir = mkdtempSync(join(tmpdir(), 'tidemark-kafka-runner-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function openSink() {
  const database = new SqliteDatabase(join(dir, `read-models-${++n}.db`));
  return { sink: new SqliteProjectionSink(database), close: () => database.close() };
}

function runner(
  options: Partial<ProjectionRunnerOptions> &
    Pick<ProjectionRunnerOptions, 'sink'> & {
      topics: string[];
      groupId?: string | undefined;
      groupPrefix?: string;
    },
) {
  const { topics, groupId, groupPrefix, ...rest } = options;
  return new ProjectionRunner({
    projection: trackingProjection(),
    feed: kafkaFeed({
      connection: kafkaConnection(),
      topics,
      ...(groupPrefix ? { groupPrefix } : { groupId: groupId ?? uniqueName('group') }),
      maxWaitMs: 100,
      heartbeatIntervalMs: 300,
      sessionTimeoutMs: 10_000,
    }),
    retry: { attempts: 2, initialDelayMs: 10, maxDelayMs: 20 },
    ...rest,
  });
}

describe('kafka: projection runner', () => {
  let admin: KafkaAdmin;
  const topics: string[] = [];
  const newTopic = (prefix: string) => {
    const name = uniqueTopic(prefix);
    topics.push(name);
    return name;
  };
  before(() => {
    admin = new KafkaAdmin(kafkaConnection());
  });
  after(async () => {
    for (const topic of topics) await admin.deleteTopic(topic, { ifExists: true });
    await admin.close();
  });

  /** A store with `rounds` events per stream, published to a new topic. */
  async function published(streams: string[], rounds: number, partitions = 3) {
    const store = new MemoryEventStore();
    await appendCounted(store, streams, rounds);
    const topic = newTopic('events');
    const progressTopic = newTopic('progress');
    const name = uniqueName('relay');
    await publishAll(kafkaConnection(), store, topic, { partitions, progressTopic, name });
    return { store, topic, progressTopic, name };
  }

  it(
    'catches up, stores per-partition offsets with the read models, and follows new events',
    TEST,
    async () => {
      const streams = Array.from({ length: 9 }, (_, i) => `order-${i}`);
      const { store, topic, progressTopic, name } = await published(streams, 20);
      const { sink, close } = openSink();
      const r = runner({ sink, topics: [topic] });
      try {
        await r.start();
        assert.equal(await r.whenCaughtUp(30_000), true);
        const all = await store.readAll({ maxCount: 10_000 });
        assert.deepEqual(await trackedRows(sink), expectedRows(all));

        const status = await r.status();
        assert.equal(status.state, 'active');
        assert.equal(status.lagEvents, 0);
        assert.equal(status.partitions!.length, 3);
        assert.ok(status.partitions!.every((p) => p.owned && p.offset === p.end));
        const offsets = await sink.query<{ kafka_partition: number; next_offset: number }>(
          'SELECT kafka_partition, next_offset FROM tm_projection_offsets ORDER BY kafka_partition',
        );
        assert.deepEqual(
          offsets.map((o) => Number(o.next_offset)),
          status.partitions!.map((p) => p.end),
        );
        // Each stream's applied version is kept (the consistency wait in Kafka mode reads it).
        assert.equal(await ledger.streamVersion(sink as never, 'tracking', 1, 'order-3'), 20);

        // New events: a stream wait is signalled by this process's commit.
        const waiting = r.whenApplied(
          { position: 0, streamId: 'order-3', streamVersion: 22 },
          30_000,
        );
        await appendCounted(store, ['order-3'], 2);
        await publishAll(kafkaConnection(), store, topic, { progressTopic, name });
        assert.equal(await waiting, true);
        assert.equal(await r.whenCaughtUp(30_000), true);
        assert.deepEqual(
          await trackedRows(sink),
          expectedRows(await store.readAll({ maxCount: 10_000 })),
        );
      } finally {
        await r.stop();
        close();
      }
    },
  );

  it(
    'reads everything committed in a topic left by crashed relays (aborts with and without records)',
    TEST,
    async () => {
      const store = new MemoryEventStore();
      const topic = newTopic('crashed-relays');
      const relay = {
        partitions: 2,
        progressTopic: newTopic('progress'),
        name: uniqueName('relay'),
      };
      const streams = Array.from({ length: 6 }, (_, i) => `order-${i}`);
      for (const leave of ['records', 'empty', undefined] as const) {
        await appendCounted(store, streams, 5);
        await publishAll(kafkaConnection(), store, topic, relay);
        if (leave) {
          const id = `tidemark-relay-${relay.name}`;
          await leaveOpenTransaction(kafkaConnection(), id, topic, 2, leave);
        }
      }
      const { sink, close } = openSink();
      const r = runner({ sink, topics: [topic] });
      try {
        await r.start();
        assert.equal(await r.whenCaughtUp(30_000), true);
        assert.deepEqual(
          await trackedRows(sink),
          expectedRows(await store.readAll({ maxCount: 1000 })),
        );
        assert.deepEqual(await r.parked(), [], 'no aborted record applied or parked');
      } finally {
        await r.stop();
        close();
      }
    },
  );

  it(
    'restarts from the offsets in the database, and a redelivered event has no second effect',
    TEST,
    async () => {
      const streams = Array.from({ length: 4 }, (_, i) => `order-${i}`);
      const { store, topic } = await published(streams, 10, 2);
      const { sink, close } = openSink();
      const groupId = uniqueName('group');
      try {
        const first = runner({ sink, topics: [topic], groupId });
        await first.start();
        assert.equal(await first.whenCaughtUp(30_000), true);
        await first.stop();

        // The same events once more, outside any transaction (as a careless producer would).
        const all = await store.readAll({ maxCount: 1000 });
        const producer = new KafkaProducer(kafkaConnection());
        await producer.send(all.slice(0, 15).map((e) => encodeEvent(e, { topic, source: '/x' })));
        await producer.close();
        // And a rewind of one partition's stored offset, as if a batch were fetched twice.
        await sink.transaction((sql) =>
          sql.execute('UPDATE tm_projection_offsets SET next_offset = 0 WHERE kafka_partition = 0'),
        );

        const second = runner({ sink, topics: [topic], groupId });
        await second.start();
        assert.equal(await second.whenCaughtUp(30_000), true);
        await second.stop();
        assert.deepEqual(await trackedRows(sink), expectedRows(all));
      } finally {
        close();
      }
    },
  );

  it('parks a record that is not a Tidemark event, and goes on', TEST, async () => {
    const { store, topic } = await published(['order-a', 'order-b'], 3, 1);
    const producer = new KafkaProducer(kafkaConnection());
    await producer.send([
      { topic, key: 'order-a', value: 'not json', headers: { ce_specversion: '1.0' } },
    ]);
    await producer.close();
    await appendCounted(store, ['order-a'], 1);
    const events = await store.readAll({ maxCount: 100 });
    const producer2 = new KafkaProducer(kafkaConnection());
    await producer2.send([encodeEvent(events[events.length - 1]!, { topic, source: '/x' })]);
    await producer2.close();

    const { sink, close } = openSink();
    const r = runner({ sink, topics: [topic] });
    try {
      await r.start();
      assert.equal(await r.whenCaughtUp(30_000), true);
      assert.deepEqual(await trackedRows(sink), expectedRows(events));
      const parked = await ledger.parked(sink, { name: 'tracking' });
      assert.equal(parked.length, 1);
      assert.equal(parked[0]!.event.type, '$tidemark.invalid-record');
      assert.match(parked[0]!.error, /ce_id: is missing|content-type/);
      assert.equal((await r.status()).parked, 1);
      assert.equal(await r.applier.skipParked(parked[0]!.event.eventId), true);
      assert.equal((await r.status()).parked, 0);
    } finally {
      await r.stop();
      close();
    }
  });

  it(
    'upcasts on the way to apply; an event no upcaster handles parks until one is deployed',
    TEST,
    async () => {
      const store = new MemoryEventStore();
      await store.appendToStream('order-1', [
        { type: 'Counted', data: { qty: 1 } },
        { type: 'Counted', data: { qty: 2 } },
      ]);
      const topic = newTopic('upcast');
      const progressTopic = newTopic('progress');
      await publishAll(kafkaConnection(), store, topic, {
        progressTopic,
        name: uniqueName('relay'),
      });
      // The second event claims a schema version the first deployment does not know yet.
      const [, second] = await store.readAll({ maxCount: 10 });
      const producer = new KafkaProducer(kafkaConnection());
      await producer.send([
        encodeEvent(
          {
            ...second!,
            eventId: 'e-v3',
            streamVersion: 3,
            position: 99,
            schemaVersion: 3,
            data: { quantity: 5, upcast: 3 },
          } as RecordedEvent,
          { topic, source: '/x' },
        ),
      ]);
      await producer.close();

      const v1to2 = {
        type: 'Counted',
        fromVersion: 1,
        upcast: (d: unknown) => ({ quantity: (d as { qty: number }).qty }),
      };
      const v2to3 = {
        type: 'Counted',
        fromVersion: 2,
        upcast: (d: unknown) => ({ ...(d as object), upcast: 3 }),
      };
      const { sink, close } = openSink();
      const r = runner({ sink, topics: [topic], upcasters: new Upcasters([v1to2]) });
      try {
        await r.start();
        assert.equal(await r.whenCaughtUp(30_000), true);
        const [row] = await sink.query<{ last_data: string; versions: string }>(
          'SELECT last_data, versions FROM streams_v1',
        );
        assert.deepEqual(JSON.parse(row!.last_data), { quantity: 2 });
        assert.equal(row!.versions, '1,2');
        const parked = await ledger.parked(sink, { name: 'tracking' });
        assert.equal(parked.length, 1);
        assert.match(parked[0]!.error, /newer schema/);
        assert.equal(parked[0]!.event.schemaVersion, 3, 'parked as it came, not upcast');
      } finally {
        await r.stop();
      }
      // The next deployment knows v3: its retry applies the parked event.
      const upgraded = runner({ sink, topics: [topic], upcasters: new Upcasters([v1to2, v2to3]) });
      try {
        await upgraded.start();
        assert.equal(await upgraded.applier.retryParked('order-1'), 1);
        const [row] = await sink.query<{ last_data: string; versions: string }>(
          'SELECT last_data, versions FROM streams_v1',
        );
        assert.deepEqual(JSON.parse(row!.last_data), { quantity: 5, upcast: 3 });
        assert.equal(row!.versions, '1,2,3');
      } finally {
        await upgraded.stop();
        close();
      }
    },
  );

  it(
    'builds a new version from the earliest offset beside the active one, then switches over',
    TEST,
    async () => {
      const streams = Array.from({ length: 5 }, (_, i) => `order-${i}`);
      const { store, topic, progressTopic, name } = await published(streams, 8, 2);
      const { sink, close } = openSink();
      const v1 = runner({
        sink,
        topics: [topic],
        groupId: undefined,
        groupPrefix: uniqueName('bg'),
      });
      const v2 = runner({
        sink,
        topics: [topic],
        groupId: undefined,
        groupPrefix: uniqueName('bg'),
        projection: trackingProjection({ version: 2 }),
        dropGraceMs: 50,
      });
      const until = (what: string, check: () => Promise<boolean> | boolean) =>
        whenRunners([v1, v2], what, check);
      try {
        await v1.start();
        assert.equal(await v1.whenCaughtUp(30_000), true);
        await v2.start();
        assert.equal(v2.state, 'building');
        assert.notEqual(v2.groupId, v1.groupId, 'a version reads in a group of its own');
        assert.equal(await v2.whenCaughtUp(30_000), true, 'caught up and switched over');
        assert.equal(v2.state, 'active');
        assert.deepEqual(
          await trackedRows(sink, v2.version),
          expectedRows(await store.readAll({ maxCount: 1000 })),
        );
        // The old version notices at its next transaction and stops; its tables go.
        await appendCounted(store, streams, 1);
        await publishAll(kafkaConnection(), store, topic, { progressTopic, name });
        await until('v1 stops', () => v1.state === 'retired');
        assert.equal(await v2.whenCaughtUp(30_000), true);
        await until('v1 tables dropped', async () => {
          const rows = await sink.query<{ name: string }>(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'streams_v1'",
          );
          return rows.length === 0;
        });
        assert.deepEqual(
          await trackedRows(sink, v2.version),
          expectedRows(await store.readAll({ maxCount: 1000 })),
        );
      } finally {
        await v1.stop();
        await v2.stop();
        close();
      }
    },
  );

  it(
    'two members share the partitions; when one leaves, the other takes over without double effects',
    TEST,
    async () => {
      const streams = Array.from({ length: 16 }, (_, i) => `order-${i}`);
      const { store, topic, progressTopic, name } = await published(streams, 10, 4);
      const { sink, close } = openSink();
      const groupId = uniqueName('group');
      const a = runner({ sink, topics: [topic], groupId });
      const b = runner({ sink, topics: [topic], groupId });
      try {
        await a.start();
        await b.start();
        // Both in the group: once b has joined, each owns some partitions.
        await whenRunners(
          [a, b],
          'the group settles',
          () => a.assignment.length + b.assignment.length === 4 && b.assignment.length > 0,
        );
        assert.equal(await a.whenCaughtUp(30_000), true);
        await b.stop(); // leaves the group: the coordinator rebalances it at once
        // a learns of the rebalance at its next heartbeat; until then it is caught up on the two
        // partitions it owns, so whenCaughtUp alone could answer before the takeover.
        await whenRunners([a], "a owns b's partitions too", () => a.assignment.length === 4);
        await appendCounted(store, streams, 5);
        await publishAll(kafkaConnection(), store, topic, { progressTopic, name });
        assert.equal(await a.whenCaughtUp(30_000), true);
        assert.equal(a.assignment.length, 4);
        assert.deepEqual(
          await trackedRows(sink),
          expectedRows(await store.readAll({ maxCount: 10_000 })),
        );
      } finally {
        await a.stop();
        await b.stop();
        close();
      }
    },
  );
});
