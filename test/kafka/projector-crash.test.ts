// kill -9 of projector processes during a catch-up from Kafka into PostgreSQL read models:
// one process killed again and again, then two processes in one group with one killed halfway.
// Either way the read models end up equal to a rebuild from scratch (the store-fed runner over
// the same events): no event lost, none applied twice, each stream in order.
//
// Default: 3,000 events, 5 kills. TIDEMARK_KAFKA_CRASH_FULL=1: 20,000 events, 20 kills.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ProjectionRunner, ledger, ledgerMigrations } from 'tidemark';
import { KafkaAdmin } from 'tidemark/kafka';
import { MemoryEventStore } from 'tidemark/memory';
import { PostgresProjectionSink } from 'tidemark/postgres';
import {
  createTestDatabase,
  kafkaConnection,
  uniqueName,
  uniqueTopic,
  type TestDatabase,
} from '../support/services.ts';
import {
  appendCounted,
  leaveOpenTransaction,
  offsetCommits,
  publishAll,
  startFixture,
  trackedRows,
  trackingProjection,
  type TrackedRows,
} from './support.ts';

const FULL = process.env.TIDEMARK_KAFKA_CRASH_FULL === '1';
const TOTAL = FULL ? 20_000 : 3_000;
const KILLS = FULL ? 20 : 5;
const STREAMS = 250;
const PARTITIONS = 4;

describe(`kafka: projector crash (${TOTAL} events)`, () => {
  const store = new MemoryEventStore();
  const topic = uniqueTopic('projector-crash');
  const progressTopic = uniqueTopic('projector-crash-progress');
  const databases: TestDatabase[] = [];
  const closers: { close(): Promise<void> }[] = [];
  let admin: KafkaAdmin;
  let rebuilt: TrackedRows;

  before(async () => {
    admin = new KafkaAdmin(kafkaConnection());
    // Published in three parts, with what crashed relays leave between them (an aborted
    // transaction with records, then ABORT markers with none), so the projectors read the
    // kind of topic a real deployment has.
    const streams = Array.from({ length: STREAMS }, (_, i) => `order-${i}`);
    const relay = { partitions: PARTITIONS, progressTopic, name: uniqueName('relay') };
    const rounds = TOTAL / STREAMS / 2;
    const third = Math.floor(rounds / 3);
    for (const [part, leave] of [
      [third, 'records'],
      [third, 'empty'],
      [rounds - 2 * third, undefined],
    ] as const) {
      await appendCounted(store, streams, part, 2);
      await publishAll(kafkaConnection(), store, topic, relay);
      if (leave) {
        const id = `tidemark-relay-${relay.name}`;
        await leaveOpenTransaction(kafkaConnection(), id, topic, PARTITIONS, leave);
      }
    }
    // The reference: a rebuild from scratch by the store-fed runner, in a database of its own.
    const db = await createTestDatabase('rebuild');
    databases.push(db);
    const sink = await PostgresProjectionSink.connect({ connectionString: db.url });
    const runner = new ProjectionRunner({ projection: trackingProjection(), store, sink });
    await runner.start();
    assert.equal(await runner.whenCaughtUp(120_000), true);
    await runner.stop();
    rebuilt = await trackedRows(sink);
    await sink.close();
    assert.equal(Object.keys(rebuilt.streams).length, STREAMS);
    assert.equal(rebuilt.totals['order'], TOTAL);
  });
  after(async () => {
    for (const closer of closers) await closer.close().catch(() => {});
    for (const db of databases) await db.drop();
    await admin.deleteTopic(topic, { ifExists: true });
    await admin.deleteTopic(progressTopic, { ifExists: true });
    await admin.close();
  });

  /** A fresh read-model database, and the sum of its stored offsets (progress, as a signal). */
  async function readModels() {
    const db = await createTestDatabase('projector');
    databases.push(db);
    const sink = await PostgresProjectionSink.connect({ connectionString: db.url });
    const applied = async () => {
      const rows = await sink
        .query<{ n: unknown }>(
          'SELECT coalesce(sum(next_offset), 0) AS n FROM tm_projection_offsets',
        )
        .catch(() => [{ n: 0 }]);
      return Number(rows[0]?.n ?? 0);
    };
    // The projector processes are children: they tell us of their commits through the database.
    // A statement trigger on the offsets table (created here, before any projector starts, with
    // the ledger's tables) NOTIFYs at each commit that moves offsets.
    await sink.migrate('projections', ledgerMigrations);
    const commits = await offsetCommits(db.url);
    closers.push(commits);
    /** Resolves when the stored offsets have moved past `target` (re-read at each commit). */
    const progressPast = async (target: number, timeoutMs = 120_000) => {
      let now = 0;
      await commits.until(
        async () => (now = await applied()) >= target,
        `offsets moving past ${target}`,
        timeoutMs,
      );
      return now;
    };
    return { db, sink, applied, progressPast };
  }

  it(`one projector, killed ${KILLS} times during the catch-up`, { timeout: 900_000 }, async () => {
    const { db, sink, progressPast } = await readModels();
    const env = {
      DATABASE_URL: db.url,
      TOPIC: topic,
      GROUP_ID: uniqueName('crash-group'),
      // Static membership: the restarted process takes its place back without a session timeout.
      INSTANCE_ID: 'projector-1',
      LOG_LEVEL: 'info',
      MAX_BYTES: String(16 * 1024),
    };
    try {
      // The topic holds a bit more than TOTAL offsets (transaction markers), so spread kills
      // over about TOTAL offsets of progress.
      const step = Math.floor(TOTAL / (KILLS + 1));
      for (let kill = 1; kill <= KILLS; kill++) {
        const projector = startFixture('projector', env);
        await projector.waitFor((l) => l.msg === 'projector started');
        await progressPast(step * kill + Math.floor(Math.random() * step * 0.5));
        await projector.kill9();
      }
      const last = startFixture('projector', env);
      await last.waitFor((l) => l.msg === 'projector caught up', 300_000);
      await last.kill9();
      assert.deepEqual(await trackedRows(sink), rebuilt);
      assert.deepEqual(
        await ledger.parked(sink, { name: 'tracking' }),
        [],
        'no aborted record leaked',
      );
    } finally {
      await sink.close();
    }
  });

  it(
    'two projectors in one group; one is killed halfway, the other finishes',
    { timeout: 600_000 },
    async () => {
      const { db, sink, progressPast } = await readModels();
      const base = {
        DATABASE_URL: db.url,
        TOPIC: topic,
        GROUP_ID: uniqueName('pair-group'),
        LOG_LEVEL: 'info',
        MAX_BYTES: String(16 * 1024),
      };
      try {
        const a = startFixture('projector', { ...base, INSTANCE_ID: 'projector-a' });
        await a.waitFor((l) => l.msg === 'projector started');
        const b = startFixture('projector', { ...base, INSTANCE_ID: 'projector-b' });
        await b.waitFor((l) => l.msg === 'projector started');
        // Both members are working once the group has rebalanced to include b.
        await a.waitFor(
          (l) =>
            l.msg?.toString().startsWith('partitions assigned') === true &&
            Number(l.generation) > 1,
        );
        await progressPast(Math.floor(TOTAL / 2));
        await a.kill9();
        // b gets a's partitions once a's session times out (6 s), and resumes them from the
        // offsets a stored.
        await b.waitFor((l) => l.msg === 'projector caught up', 300_000);
        await b.kill9();
        assert.deepEqual(await trackedRows(sink), rebuilt);
      } finally {
        await sink.close();
      }
    },
  );
});
