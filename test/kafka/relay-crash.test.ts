// kill -9 of the relay process, again and again, while events are appended to a PostgreSQL store
// by concurrent writers: the topic, read read_committed, holds every event exactly once, in
// per-stream order. (read_uncommitted shows what the kills left behind: aborted batches.)
//
// Default: 3,000 events, 5 kills. TIDEMARK_KAFKA_CRASH_FULL=1: 20,000 events, 20 kills.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { KafkaAdmin, KafkaReader, decodeEvent } from '../../src/kafka/internal.ts';
import { PostgresEventStore } from 'tidemark/postgres';
import {
  createTestDatabase,
  kafkaConnection,
  uniqueName,
  uniqueTopic,
  type TestDatabase,
} from '../support/services.ts';
import { startFixture, type FixtureProcess } from './support.ts';

const FULL = process.env.TIDEMARK_KAFKA_CRASH_FULL === '1';
const TOTAL = FULL ? 20_000 : 3_000;
const KILLS = FULL ? 20 : 5;
const STREAMS = 200;
const WRITERS = 8;

describe(`kafka: relay crash (${TOTAL} events, ${KILLS} x kill -9)`, () => {
  let db: TestDatabase;
  let store: PostgresEventStore;
  let admin: KafkaAdmin;
  const topic = uniqueTopic('relay-crash');
  const progressTopic = uniqueTopic('relay-crash-progress');
  before(async () => {
    db = await createTestDatabase('relay_crash');
    store = await PostgresEventStore.connect({ connectionString: db.url, poolSize: WRITERS + 2 });
    admin = new KafkaAdmin(kafkaConnection());
  });
  after(async () => {
    await store.close();
    await db.drop();
    if (process.env.TIDEMARK_KEEP_TOPICS === '1') {
      process.stderr.write(`kept topics ${topic} ${progressTopic}\n`);
    } else {
      await admin.deleteTopic(topic, { ifExists: true });
      await admin.deleteTopic(progressTopic, { ifExists: true });
    }
    await admin.close();
  });

  it('publishes every event exactly once, in stream order', { timeout: 900_000 }, async () => {
    const env = {
      DATABASE_URL: db.url,
      TOPIC: topic,
      PROGRESS_TOPIC: progressTopic,
      RELAY_NAME: uniqueName('crash'),
      PARTITIONS: '4',
      BATCH_SIZE: '50',
      HOLD_BEFORE_COMMIT_MS: '60',
    };
    // Writers: each appends 1 to 3 events at a time to random streams, concurrently, so that
    // PostgreSQL commits positions out of order (the relay's reads must stay gap-safe).
    let appended = 0;
    const appendChunk = async (count: number) => {
      const target = appended + count;
      await Promise.all(
        Array.from({ length: WRITERS }, async () => {
          while (appended < target) {
            const n = Math.min(1 + Math.floor(Math.random() * 3), target - appended);
            appended += n;
            const stream = `order-${Math.floor(Math.random() * STREAMS)}`;
            await store.appendToStream(
              stream,
              Array.from({ length: n }, (_, i) => ({
                type: 'Counted',
                data: { i, at: appended },
                metadata: { correlationId: `w-${appended}` },
              })),
            );
          }
        }),
      );
    };
    // The relay logs 'sent' when a transaction's records are written but not yet committed,
    // and 'committed' after; killing on the first leaves an open transaction behind.
    const logged = (relay: FixtureProcess, msg: string, position: number) =>
      relay.waitFor((l) => l.msg === msg && Number(l.position) >= position, 120_000);
    const commitsAfter = (relay: FixtureProcess, position: number) =>
      logged(relay, 'relay transaction committed', position);

    const children: FixtureProcess[] = [];
    const start = () => {
      const child = startFixture('relay', env);
      children.push(child);
      return child;
    };
    let relay = start();
    await relay.waitFor((l) => l.msg === 'relay started', 60_000);
    const chunk = Math.ceil(TOTAL / KILLS);
    for (let kill = 0; kill < KILLS; kill++) {
      // Append a chunk while the relay publishes; kill it somewhere in the middle of that work.
      const writing = appendChunk(Math.min(chunk, TOTAL - appended));
      const head = await store.headPosition();
      const at = head + Math.floor(chunk * (0.2 + Math.random() * 0.5));
      // Alternate: mid-transaction (records sent, not committed), and between transactions.
      await logged(
        relay,
        kill % 2 === 0 ? 'relay transaction sent; committing' : 'relay transaction committed',
        at,
      );
      await relay.kill9();
      await writing;
      relay = start();
      await relay.waitFor((l) => l.msg === 'relay started', 60_000);
    }
    const head = await store.headPosition();
    await commitsAfter(relay, head);
    await relay.kill9();
    assert.equal(appended, TOTAL);

    for (const [i, child] of children.entries()) {
      for (const line of child.lines.filter((l) => Number(l.level) >= 50)) {
        process.stderr.write(
          `relay #${i} logged an error: ${JSON.stringify(line).slice(0, 3000)}\n`,
        );
      }
    }
    const stored = await store.readAll({ maxCount: TOTAL + 1 });
    assert.equal(stored.length, TOTAL);
    const reader = new KafkaReader(kafkaConnection());
    const uncommitted = new KafkaReader(kafkaConnection(), { isolation: 'read_uncommitted' });
    try {
      const records = await reader.readAll(topic);
      const events = records.map((r) => decodeEvent(r));
      const ids = events.map((e) => e.eventId);
      if (new Set(ids).size !== ids.length) {
        // What each process did, to tell how a duplicate came about.
        const seen = new Map<string, number>();
        const twice = events.filter(
          (e) => seen.set(e.eventId, (seen.get(e.eventId) ?? 0) + 1).get(e.eventId)! > 1,
        );
        process.stderr.write(
          `duplicates: ${twice.length}, positions ${twice[0]?.position}..${twice[twice.length - 1]?.position}\n` +
            children
              .map((c, i) => {
                const lines = c.lines.filter((l) => typeof l.msg === 'string');
                const resumed = lines.find((l) => String(l.msg).startsWith('relay resumes'));
                const commits = lines.filter((l) => l.msg === 'relay transaction committed');
                const other = lines.filter(
                  (l) =>
                    String(l.msg).startsWith('relay progress') ||
                    (!String(l.msg).startsWith('relay transaction') && l.level !== 30),
                );
                return `#${i}: resumed after ${resumed?.position}; commits ${commits[0]?.position}..${commits[commits.length - 1]?.position} (${commits.length}); ${JSON.stringify(other).slice(0, 2000)}`;
              })
              .join('\n') +
            '\n',
        );
      }
      assert.equal(new Set(ids).size, ids.length, 'no event twice');
      assert.equal(ids.length, TOTAL, 'every event');
      const byId = new Map(stored.map((e) => [e.eventId, e]));
      const last = new Map<string, number>();
      const partitionOf = new Map<string, number>();
      for (const [i, event] of events.entries()) {
        assert.deepEqual(event, byId.get(event.eventId), 'as stored');
        assert.equal(event.streamVersion, (last.get(event.streamId) ?? 0) + 1, 'stream order');
        last.set(event.streamId, event.streamVersion);
        const partition = records[i]!.partition;
        assert.equal(partitionOf.get(event.streamId) ?? partition, partition, 'one partition');
        partitionOf.set(event.streamId, partition);
      }
      // An independent judge: what the transaction markers in the log say is committed.
      const ends = await reader.offsets(topic, 'latest');
      for (const [partition, end] of ends) {
        const byMarkers = await uncommitted.readCommittedByMarkers(topic, partition, 0n, end);
        assert.deepEqual(
          byMarkers.map((r) => r.offset),
          records.filter((r) => r.partition === partition).map((r) => r.offset),
          `partition ${partition}: read_committed and the markers agree`,
        );
      }
      const everything = await uncommitted.readAll(topic);
      process.stderr.write(
        `relay crash: ${TOTAL} events, ${KILLS} kills; read_committed ${records.length} records, ` +
          `read_uncommitted ${everything.length} (aborted by the kills: ${everything.length - records.length})\n`,
      );
    } finally {
      await reader.close();
      await uncommitted.close();
    }
  });
});
