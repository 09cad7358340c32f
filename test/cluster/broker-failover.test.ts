// A real cluster: three KRaft nodes (each broker and controller), topics with replication factor
// 3 and min.insync.replicas 2. Writers append to a PostgreSQL store; a relay process publishes
// it transactionally; a projector process applies the topic to PostgreSQL read models. During
// the load the broker that leads the topic's partitions is killed with SIGKILL (and, in the full
// form, the active KRaft controller too), then restarted. Afterwards every acknowledged append is
// in the read models exactly once and in stream order, and a read_committed consumer sees each
// event exactly once. How long publishing stalled after each kill (until the relay's next
// committed transaction) is written to the test output.
//
// Skipped unless the run has the cluster (TIDEMARK_TEST_KAFKA_CLUSTER_BROKERS, set by
// scripts/test.mjs, which starts it for this file) and it is this checkout's (nodes are killed).
// Default (CI): a few hundred events, one leader kill. TIDEMARK_CLUSTER_FULL=1: thousands of
// events, three rounds of a leader kill and a controller kill.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { KafkaAdmin, KafkaReader, decodeEvent } from '../../src/kafka/internal.ts';
import { PostgresEventStore, PostgresProjectionSink } from 'tidemark/postgres';
import {
  createTestDatabase,
  kafkaClusterBrokers,
  kafkaClusterConnection,
  uniqueName,
  uniqueTopic,
  type TestDatabase,
} from '../support/services.ts';
import {
  expectedRows,
  offsetCommits,
  startFixture,
  trackedRows,
  type FixtureProcess,
} from '../kafka/support.ts';
import {
  activeController,
  clusterIsLocal,
  holdCluster,
  kill9Node,
  nodeMissing,
  partitionLeaders,
  restartMissingNodes,
} from './support.ts';

const FULL = process.env.TIDEMARK_CLUSTER_FULL === '1';
const brokers = kafkaClusterBrokers();
const skip = !brokers
  ? 'no three-broker cluster in this run (TIDEMARK_TEST_KAFKA_CLUSTER_BROKERS)'
  : !clusterIsLocal(brokers)
    ? 'the cluster was not started by this checkout; its nodes cannot be killed'
    : false;

type Kill = 'leader' | 'controller';
const KILLS: Kill[] = FULL
  ? ['leader', 'controller', 'leader', 'controller', 'leader', 'controller']
  : ['leader'];
/** Events appended per phase at least (a phase runs on until its kill has been recovered from). */
const CHUNK = FULL ? 500 : 300;
/** Appends per second, all writers together; each append holds 1 to 3 events. */
const RATE = FULL ? 30 : 10;
const WRITERS = 4;
const STREAMS = 100;
const PARTITIONS = 4;

describe(`kafka cluster: broker and controller kills (${KILLS.join(', ')})`, { skip }, () => {
  let db: TestDatabase;
  let readDb: TestDatabase;
  let store: PostgresEventStore;
  let admin: KafkaAdmin;
  const topic = uniqueTopic('cluster-failover');
  const progressTopic = uniqueTopic('cluster-failover-progress');
  let release: (() => void) | undefined;

  before(async () => {
    release = await holdCluster();
    db = await createTestDatabase('cluster_store');
    readDb = await createTestDatabase('cluster_reads');
    store = await PostgresEventStore.connect({ connectionString: db.url, poolSize: WRITERS + 2 });
    admin = new KafkaAdmin(kafkaClusterConnection());
  });
  after(async () => {
    try {
      // A failure between a kill and its restart must not leave the cluster short of a node.
      if (nodeMissing()) await restartMissingNodes();
    } finally {
      release?.();
    }
    await store?.close();
    await db?.drop();
    await readDb?.drop();
    await admin?.deleteTopic(topic, { ifExists: true }).catch(() => {});
    await admin?.deleteTopic(progressTopic, { ifExists: true }).catch(() => {});
    await admin?.close();
  });

  it('no acknowledged append is lost or applied twice', { timeout: 1_200_000 }, async () => {
    const clusterEnv = { TIDEMARK_TEST_KAFKA_BROKERS: brokers!.join(',') };
    const children: { role: string; process: FixtureProcess }[] = [];
    // A supervisor, as a deployment has: a relay or projector that stops is started again.
    const supervise = (role: 'relay' | 'projector', env: Record<string, string>) => {
      const box: { current: FixtureProcess; restarts: number; stopping: boolean } = {
        current: undefined as unknown as FixtureProcess,
        restarts: 0,
        stopping: false,
      };
      const launch = () => {
        const child = startFixture(role, { ...clusterEnv, ...env });
        children.push({ role, process: child });
        box.current = child;
        void child.exited.then((code) => {
          if (box.stopping) return;
          box.restarts++;
          process.stderr.write(`cluster test: ${role} exited (${code}); starting it again\n`);
          launch();
        });
      };
      launch();
      boxes.push(box);
      return box;
    };
    const boxes: { stopping: boolean }[] = [];
    // Whatever happens, no fixture process outlives the test.
    const stopAll = () => {
      for (const box of boxes) box.stopping = true;
      for (const { process: child } of children) child.child.kill('SIGKILL');
    };

    try {
      const relay = supervise('relay', {
        DATABASE_URL: db.url,
        TOPIC: topic,
        PROGRESS_TOPIC: progressTopic,
        RELAY_NAME: uniqueName('cluster'),
        PARTITIONS: String(PARTITIONS),
        BATCH_SIZE: '50',
      });
      await relay.current.waitFor((l) => l.msg === 'relay started', 120_000);
      // The first transaction the relay both sends and commits after `t0` (a commit already in
      // flight at the kill does not count): its commit time ends the stall.
      const commitAfter = async (t0: number, timeoutMs = 180_000) => {
        let sent = false;
        const line = await relay.current.waitFor((l) => {
          if (Number(l.time) <= t0) return false;
          if (l.msg === 'relay transaction sent; committing') sent = true;
          return sent && l.msg === 'relay transaction committed';
        }, timeoutMs);
        return Number(line.time);
      };

      const projector = supervise('projector', {
        DATABASE_URL: readDb.url,
        TOPIC: topic,
        GROUP_ID: uniqueName('cluster-group'),
        INSTANCE_ID: 'projector-1',
        LOG_LEVEL: 'info',
      });
      await projector.current.waitFor((l) => l.msg === 'projector started', 120_000);

      // The topic is replicated three times (the broker's default.replication.factor).
      const { replicas } = await partitionLeaders(brokers!, topic);
      assert.equal(replicas.length, PARTITIONS);
      for (const r of replicas) assert.equal(r.length, 3, 'replication factor 3');

      // Writers: paced appends of 1 to 3 events to random streams, until told to stop.
      let appended = 0;
      let acknowledged = 0;
      let writing = true;
      // Woken on every acknowledged append: a wait for a count is a signal, not a poll.
      const ackWaiters = new Set<{ count: number; resolve: () => void }>();
      const whenAcknowledged = (count: number) =>
        acknowledged >= count
          ? Promise.resolve()
          : new Promise<void>((resolve) => ackWaiters.add({ count, resolve }));
      const writers = Array.from({ length: WRITERS }, async () => {
        while (writing) {
          const n = 1 + Math.floor(Math.random() * 3);
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
          acknowledged += n;
          for (const waiter of ackWaiters) {
            if (acknowledged < waiter.count) continue;
            ackWaiters.delete(waiter);
            waiter.resolve();
          }
          // Pacing of the load (RATE appends a second), not a wait for anything.
          await delay((1000 * WRITERS) / RATE);
        }
      });

      const report: string[] = [];
      try {
        for (const [round, kind] of KILLS.entries()) {
          const phaseStart = acknowledged;
          // Kill a third of the way into the phase, while the relay publishes.
          await whenAcknowledged(phaseStart + CHUNK / 3);
          const { leaders } = await partitionLeaders(brokers!, topic);
          const count = new Map<number, number>();
          for (const l of leaders) count.set(l, (count.get(l) ?? 0) + 1);
          const leader = [...count.entries()].sort((a, b) => b[1] - a[1])[0]![0];
          const controller = await activeController(brokers!);
          const victim = kind === 'leader' ? leader : controller;
          const t0 = Date.now();
          await kill9Node(victim);
          const committedAt = await commitAfter(t0);
          const stallMs = committedAt - t0;
          const line =
            `kill ${round + 1} (${kind}): node ${victim} SIGKILLed ` +
            `(led ${count.get(victim) ?? 0} of ${PARTITIONS} partitions; active controller was ${controller}); ` +
            `relay committed again after ${(stallMs / 1000).toFixed(2)} s`;
          const restartMs = await restartMissingNodes();
          report.push(
            `${line}; node restarted and registered in ${(restartMs / 1000).toFixed(1)} s`,
          );
          process.stderr.write(`cluster test: ${report[report.length - 1]}\n`);
          // The rest of the phase's events, after the restart.
          await whenAcknowledged(phaseStart + CHUNK);
        }
      } finally {
        writing = false;
        await Promise.all(writers);
      }

      // Everything acknowledged must arrive: wait for the relay to publish up to the head, and for
      // the read models to hold every event.
      const head = await store.headPosition();
      await relay.current.waitFor(
        (l) => l.msg === 'relay transaction committed' && Number(l.position) >= head,
        180_000,
      );
      const stored = await store.readAll({ maxCount: acknowledged + 1 });
      assert.equal(stored.length, acknowledged, 'the store holds every acknowledged append');
      const sink = await PostgresProjectionSink.connect({ connectionString: readDb.url });
      try {
        // Woken by the projector's commits (a NOTIFY from the offsets table), not by a timer.
        const commits = await offsetCommits(readDb.url);
        try {
          await commits.until(async () => {
            const rows = await trackedRows(sink).catch(() => undefined);
            return (rows?.totals['order'] ?? 0) >= stored.length;
          }, 'the read models holding every acknowledged event');
        } finally {
          await commits.close();
        }
        relay.stopping = true;
        projector.stopping = true;
        await relay.current.kill9();
        await projector.current.kill9();
        assert.deepEqual(
          await trackedRows(sink),
          expectedRows(stored),
          'read models: once, in order',
        );
      } finally {
        relay.stopping = true;
        projector.stopping = true;
        for (const { process: child } of children) await child.kill9();
        await sink.close();
      }

      const reader = new KafkaReader(kafkaClusterConnection());
      try {
        const records = await reader.readAll(topic);
        const events = records.map((r) => decodeEvent(r));
        const ids = events.map((e) => e.eventId);
        assert.equal(new Set(ids).size, ids.length, 'read_committed: no event twice');
        assert.equal(ids.length, stored.length, 'read_committed: every event');
        const last = new Map<string, number>();
        for (const event of events) {
          assert.equal(event.streamVersion, (last.get(event.streamId) ?? 0) + 1, 'stream order');
          last.set(event.streamId, event.streamVersion);
        }
      } finally {
        await reader.close();
      }
      // Errors the processes logged while a broker was gone (connection refused, retried): counted.
      for (const role of ['relay', 'projector']) {
        const errors = children
          .filter((c) => c.role === role)
          .flatMap((c) => c.process.lines.filter((l) => Number(l.level) >= 50));
        if (errors.length === 0) continue;
        const kinds = new Map<string, number>();
        for (const l of errors) {
          const err = l.err as { message?: string } | undefined;
          const key = String(err?.message ?? l.msg).slice(0, 160);
          kinds.set(key, (kinds.get(key) ?? 0) + 1);
        }
        for (const [message, n] of kinds)
          process.stderr.write(`cluster test: ${role} logged ${n} x error: ${message}\n`);
      }
      process.stderr.write(
        `cluster test: ${stored.length} events; relay restarts ${relay.restarts}, projector restarts ${projector.restarts}\n` +
          report.map((r) => `  ${r}\n`).join(''),
      );
    } finally {
      stopAll();
    }
  });
});
