// Sequenced dead letters through Kafka: a failing handler is retried with backoff, then its
// event is parked; later events of the same stream park behind it while other streams stay
// current; parked events are listed, retried (in order) and skipped through the library API.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ProjectionRunner, type Logger, type RecordedEvent } from 'tidemark';
import { KafkaAdmin, kafkaFeed } from 'tidemark/kafka';
import { MemoryEventStore } from 'tidemark/memory';
import { SqliteDatabase, SqliteProjectionSink } from 'tidemark/sqlite';
import { kafkaConnection, uniqueName, uniqueTopic } from '../support/services.ts';
import { appendCounted, publishAll, trackedRows, trackingProjection } from './support.ts';

const dir = mkdtempSync(join(tmpdir(), 'tidemark-dlq-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('kafka: sequenced dead letters', () => {
  it(
    'parks a poison event and its stream behind it; a retry after the fix applies them in order',
    {
      timeout: 120_000,
    },
    async () => {
      const store = new MemoryEventStore();
      const topic = uniqueTopic('dlq');
      const progressTopic = uniqueTopic('dlq-progress');
      const relayName = uniqueName('relay');
      const publish = () =>
        publishAll(kafkaConnection(), store, topic, {
          partitions: 2,
          progressTopic,
          name: relayName,
        });
      const database = new SqliteDatabase(join(dir, 'read-models.db'));
      const sink = new SqliteProjectionSink(database);

      // order-a's third event fails until the "fix" is deployed; c's fourth fails for good.
      let fixed = false;
      const poison = (e: RecordedEvent) =>
        (!fixed && e.streamId === 'order-a' && e.streamVersion === 3) ||
        (e.streamId === 'order-c' && e.streamVersion === 4);
      const attempts: { eventId: string; at: number; attempt: number }[] = [];
      const logger: Logger = {
        debug() {},
        info() {},
        error() {},
        warn(obj, msg) {
          if (msg === 'projection handler failed') {
            const o = obj as { eventId: string; attempt: number };
            attempts.push({ eventId: o.eventId, attempt: o.attempt, at: performance.now() });
          }
        },
      };
      const runner = new ProjectionRunner({
        projection: trackingProjection({ poison }),
        sink,
        feed: kafkaFeed({
          connection: kafkaConnection(),
          topics: [topic],
          groupId: uniqueName('dlq-group'),
          maxWaitMs: 100,
        }),
        retry: { attempts: 3, initialDelayMs: 50, maxDelayMs: 1000 },
        logger,
      });
      try {
        await appendCounted(store, ['order-a', 'order-b', 'order-c'], 6);
        await publish();
        await runner.start();
        assert.equal(await runner.whenCaughtUp(60_000), true);

        const rows = await trackedRows(sink);
        assert.equal(rows.streams['order-a']!.versions, '1,2', 'a stops before its poison event');
        assert.equal(rows.streams['order-b']!.versions, '1,2,3,4,5,6', 'b is current');
        assert.equal(rows.streams['order-c']!.versions, '1,2,3');

        // Retried with backoff: three attempts, the waits doubling (50 ms, then 100 ms).
        const a3 = (await store.readStream('order-a'))[2]!;
        const tries = attempts.filter((t) => t.eventId === a3.eventId);
        assert.deepEqual(
          tries.map((t) => t.attempt),
          [1, 2, 3],
        );
        assert.ok(tries[1]!.at - tries[0]!.at >= 45, 'first backoff ~50 ms');
        assert.ok(tries[2]!.at - tries[1]!.at >= 95, 'second backoff ~100 ms');

        // Listed: the failed one with its error, the rest of its stream behind it, in order.
        const parkedA = await runner.parked({ streamId: 'order-a' });
        assert.deepEqual(
          parkedA.map((p) => p.event.streamVersion),
          [3, 4, 5, 6],
        );
        assert.match(parkedA[0]!.error, /poison order-a@3/);
        assert.equal(parkedA[0]!.attempts, 3);
        assert.equal(parkedA[1]!.attempts, 0);
        assert.match(parkedA[1]!.error, /held behind/);
        assert.equal((await runner.status()).parked, 4 + 3);

        // New events: a's park behind too, b's apply.
        await appendCounted(store, ['order-a', 'order-b'], 1);
        await publish();
        assert.equal(await runner.whenCaughtUp(60_000), true);
        assert.equal((await trackedRows(sink)).streams['order-b']!.versions, '1,2,3,4,5,6,7');
        assert.equal((await runner.parked({ streamId: 'order-a' })).length, 5);

        // The fix is deployed: the retry applies a's parked events in order, once each.
        fixed = true;
        assert.equal(await runner.applier.retryParked('order-a'), 5);
        assert.equal((await trackedRows(sink)).streams['order-a']!.versions, '1,2,3,4,5,6,7');
        assert.deepEqual(await runner.parked({ streamId: 'order-a' }), []);
        // ... and the stream flows again.
        await appendCounted(store, ['order-a'], 1);
        await publish();
        assert.equal(await runner.whenCaughtUp(60_000), true);
        assert.equal((await trackedRows(sink)).streams['order-a']!.versions, '1,2,3,4,5,6,7,8');

        // c's poison event is skipped instead: the rest of c is then retried without it.
        const [c4] = await runner.parked({ streamId: 'order-c' });
        assert.equal(c4!.event.streamVersion, 4);
        assert.equal(await runner.applier.skipParked(c4!.event.eventId), true);
        assert.equal(await runner.applier.retryParked('order-c'), 2);
        const final = await trackedRows(sink);
        assert.equal(final.streams['order-c']!.versions, '1,2,3,5,6');
        assert.equal((await runner.status()).parked, 0);
      } finally {
        await runner.stop();
        database.close();
        const admin = new KafkaAdmin(kafkaConnection());
        await admin.deleteTopic(topic, { ifExists: true });
        await admin.deleteTopic(progressTopic, { ifExists: true });
        await admin.close();
      }
    },
  );
});
