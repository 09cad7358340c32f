/**
 * The projection runner contract: one suite, run for every feed and read-model sink pair (the
 * store's log or Kafka, into SQLite or PostgreSQL). A feed is done when it passes. Like the
 * store contract, it uses `node:assert` only and takes `describe`/`it` from the caller.
 *
 * The scenarios are written against the engine's public surface only (ProjectionRunner,
 * ProjectionHost, ReadModels, the operations): whatever feeds the events, the same things must
 * hold.
 */
import assert from 'node:assert/strict';
import {
  Upcasters,
  defineProjection,
  type EventStore,
  type ProjectionDefinition,
  type ProjectionSink,
  type RecordedEvent,
} from '../core/index.ts';
import {
  ProjectionHost,
  ProjectionRunner,
  ReadModels,
  ledger,
  registerRebuild,
  retryParked,
  type Feed,
  type ProjectionRunnerOptions,
} from '../projections/index.ts';
import type { TestApi } from './event-store-contract.ts';

/** What one scenario runs on: a store, a sink and a feed over that store's events. */
export interface ProjectionFeedFixture {
  /** Where the scenario appends events. */
  store: EventStore;
  /** The read-model database. */
  sink: ProjectionSink;
  /** A feed over the store's events (a new one per call; calls of one fixture share groups). */
  feed(): Feed;
  /** Resolves once every event appended so far can be read from the feed (Kafka: published). */
  publish(): Promise<void>;
  /** An error the sink counts as transient (the engine retries the batch rather than park). */
  transientError(): Error;
  dispose(): Promise<void>;
}

export interface ProjectionRunnerContractOptions {
  /** Shown in test names, e.g. `kafka-fed × postgres`. */
  name: string;
  /** Makes a fresh fixture (empty store and sink); called once per test. */
  fixture: () => Promise<ProjectionFeedFixture>;
  /** Longest a wait may take. Default 60 000 ms. */
  timeoutMs?: number;
}

/**
 * Counts events per stream, remembering each stream's last version and data; fails on demand
 * to play the poison event. `batch`: with an `applyBatch` as well.
 */
function counting(
  options: {
    name?: string;
    version?: number;
    batch?: boolean;
    poison?: (e: RecordedEvent) => boolean;
  } = {},
) {
  const applied: string[] = [];
  const apply = async (
    event: RecordedEvent,
    sql: Parameters<ProjectionDefinition['apply']>[1]['sql'],
    table: string,
  ) => {
    if (options.poison?.(event)) throw new Error(`poison ${event.streamId}@${event.streamVersion}`);
    await sql.execute(
      `INSERT INTO ${table} (stream_id, n, last, data) VALUES ($1, 1, $2, $3)
       ON CONFLICT (stream_id) DO UPDATE SET n = ${table}.n + 1, last = $2, data = $3`,
      [event.streamId, event.streamVersion, JSON.stringify(event.data)],
    );
    applied.push(event.eventId);
  };
  // One table, named like the projection: `<name>_v<version>`.
  const name = options.name ?? 'counts';
  const definition = defineProjection({
    name,
    version: options.version ?? 1,
    handles: ['Counted'],
    tables: [name],
    init: async ({ sql, table }) => {
      await sql.execute(
        `CREATE TABLE ${table(name)} (stream_id TEXT PRIMARY KEY, n INTEGER NOT NULL, last INTEGER, data TEXT)`,
      );
    },
    apply: (event, { sql, table }) => apply(event, sql, table(name)),
    ...(options.batch
      ? {
          applyBatch: async (events: readonly RecordedEvent[], { sql, table }) => {
            for (const event of events) await apply(event, sql, table(name));
          },
        }
      : {}),
  });
  return { definition, applied };
}

const counted = (n: number, from = 0) =>
  Array.from({ length: n }, (_, i) => ({ type: 'Counted', data: { i: from + i } }));

async function counts(sink: ProjectionSink, table: string): Promise<Record<string, number>> {
  const rows = await sink.query<{ stream_id: string; n: number | string }>(
    `SELECT stream_id, n FROM ${table} ORDER BY stream_id`,
  );
  return Object.fromEntries(rows.map((r) => [r.stream_id, Number(r.n)]));
}

/** Registers the contract's scenarios for one feed × sink pair. */
export function projectionRunnerContract(
  test: TestApi,
  options: ProjectionRunnerContractOptions,
): void {
  const { describe, it } = test;
  const timeout = options.timeoutMs ?? 60_000;

  /** Runs `body` on a fresh fixture; stops what it started and disposes the fixture. */
  const scenario = (
    name: string,
    body: (f: ProjectionFeedFixture, track: Track) => Promise<void>,
  ) =>
    it(name, async () => {
      const fixture = await options.fixture();
      const started: { stop(): Promise<void> }[] = [];
      try {
        await body(fixture, (thing) => {
          started.push(thing);
          return thing;
        });
      } finally {
        for (const thing of started.reverse()) await thing.stop().catch(() => {});
        await fixture.dispose();
      }
    });
  type Track = <T extends { stop(): Promise<void> }>(thing: T) => T;
  const runner = (f: ProjectionFeedFixture, o: Omit<ProjectionRunnerOptions, 'sink' | 'feed'>) =>
    new ProjectionRunner({ sink: f.sink, feed: f.feed(), ...o });

  describe(`projection runner contract (${options.name})`, () => {
    scenario(
      'catches up, skips unhandled types, follows new events; status shows no lag after',
      async (f, track) => {
        for (let i = 0; i < 9; i++) await f.store.appendToStream(`s-${i % 3}`, counted(4));
        await f.store.appendToStream('other', [{ type: 'Ignored', data: {} }]);
        await f.publish();
        const r = track(runner(f, { projection: counting().definition }));
        await r.start();
        assert.equal(await r.whenCaughtUp(timeout), true);
        assert.deepEqual(await counts(f.sink, 'counts_v1'), { 's-0': 12, 's-1': 12, 's-2': 12 });
        const status = await r.status();
        assert.equal(status.state, 'active');
        assert.equal(status.feed, r.feed.kind);
        assert.equal(status.lagEvents, 0);
        assert.equal(status.parked, 0);
        assert.equal(status.lastError, undefined);
        assert.equal(status.position, 37);
        await f.store.appendToStream('s-1', counted(2));
        await f.publish();
        assert.equal(await r.whenCaughtUp(timeout), true);
        assert.deepEqual(await counts(f.sink, 'counts_v1'), { 's-0': 12, 's-1': 14, 's-2': 12 });
        assert.equal((await r.status()).lagEvents, 0);
      },
    );

    scenario('resumes after a restart with no event applied twice', async (f, track) => {
      await f.store.appendToStream('a', counted(30));
      await f.publish();
      const first = track(runner(f, { projection: counting().definition }));
      await first.start();
      assert.equal(await first.whenCaughtUp(timeout), true);
      await first.stop();
      await f.store.appendToStream('a', counted(5, 30));
      await f.publish();
      const second = counting();
      const again = track(runner(f, { projection: second.definition }));
      await again.start();
      assert.equal(await again.whenCaughtUp(timeout), true);
      assert.equal(second.applied.length, 5);
      assert.deepEqual(await counts(f.sink, 'counts_v1'), { a: 35 });
    });

    scenario(
      'keeps changes and checkpoint together: a failed commit leaves neither, and lastError clears',
      async (f, track) => {
        const { definition } = counting();
        let failures = 0;
        // Fault: two batch transactions throw a transient error after their handlers ran.
        const original = f.sink.transaction.bind(f.sink);
        f.sink.transaction = (work) =>
          original(async (sql) => {
            const result = await work(sql);
            if (failures > 0) {
              failures--;
              throw f.transientError();
            }
            return result;
          });
        const r = track(runner(f, { projection: definition }));
        await r.start();
        assert.equal(await r.whenCaughtUp(timeout), true);
        let sawError = false;
        const erred = new Promise<void>((resolve) => {
          const stop = r.onChange(() => {
            if (r.lastError === undefined) return;
            sawError = true;
            stop();
            resolve();
          });
        });
        failures = 2;
        await f.store.appendToStream('a', counted(10));
        await f.publish();
        await erred;
        assert.equal(sawError, true);
        assert.match(String((await r.status()).lastError), /./);
        assert.equal(await r.whenCaughtUp(timeout), true);
        assert.equal(failures, 0, 'the faults fired');
        assert.deepEqual(await counts(f.sink, 'counts_v1'), { a: 10 });
        const status = await r.status();
        assert.equal(status.lastError, undefined, 'cleared once the engine went on');
        assert.equal(r.lastError, undefined);
      },
    );

    for (const batch of [false, true]) {
      scenario(
        `parks a poison event and its stream's later events, in order; other streams go on; retry and skip (${batch ? 'applyBatch' : 'apply'})`,
        async (f, track) => {
          let poisoned = true;
          const { definition } = counting({
            batch,
            poison: (e) => poisoned && e.streamId === 'bad' && e.streamVersion === 2,
          });
          const r = track(
            runner(f, { projection: definition, retry: { attempts: 2, initialDelayMs: 1 } }),
          );
          await r.start();
          await f.store.appendToStream('bad', counted(1));
          await f.store.appendToStream('good', counted(2));
          await f.store.appendToStream('bad', counted(3)); // versions 2 (poison), 3, 4
          await f.store.appendToStream('good', counted(2));
          await f.publish();
          assert.equal(await r.whenCaughtUp(timeout), true);
          assert.deepEqual(await counts(f.sink, 'counts_v1'), { bad: 1, good: 4 });
          const parked = await r.parked();
          assert.deepEqual(
            parked.map((p) => [p.event.streamId, p.event.streamVersion, p.attempts]),
            [
              ['bad', 2, 2],
              ['bad', 3, 0],
              ['bad', 4, 0],
            ],
          );
          assert.match(parked[0]!.error, /poison bad@2/);
          assert.equal((await r.status()).parked, 3);
          // Still failing: a retry keeps them all parked.
          await assert.rejects(retryParked({ sink: f.sink, feeds: {} }, definition, 'bad'));
          assert.equal((await r.parked()).length, 3);
          // New events of the stream park behind, in order.
          await f.store.appendToStream('bad', counted(1));
          await f.publish();
          assert.equal(await r.whenCaughtUp(timeout), true);
          assert.equal((await r.parked()).length, 4);
          // The fix is deployed: the retry applies them in order and the stream flows again.
          poisoned = false;
          assert.equal(await retryParked({ sink: f.sink, feeds: {} }, definition, 'bad'), 4);
          const [last] = await f.sink.query<{ last: number | string }>(
            `SELECT last FROM counts_v1 WHERE stream_id = 'bad'`,
          );
          assert.equal(Number(last!.last), 5);
          await f.store.appendToStream('bad', counted(1));
          await f.publish();
          assert.equal(await r.whenCaughtUp(timeout), true);
          assert.deepEqual(await counts(f.sink, 'counts_v1'), { bad: 6, good: 4 });
          assert.equal((await r.status()).parked, 0);
        },
      );
    }

    scenario(
      'a host picks up a rebuild started elsewhere while it runs, switches over and retires the old version',
      async (f, track) => {
        await f.store.appendToStream('a', counted(20));
        await f.store.appendToStream('b', counted(5));
        await f.publish();
        const { definition } = counting();
        const other = counting({ name: 'others' });
        const host = track(
          new ProjectionHost({
            projections: [definition, other.definition],
            sink: f.sink,
            feed: f.feed(),
            dropGraceMs: 0,
            reconcileIntervalMs: 60_000,
          }),
        );
        await host.start();
        assert.equal(await host.whenCaughtUp(timeout), true);
        // Both active versions share one engine (one read of the feed, one transaction a batch).
        assert.equal(host.engines.length, 1);
        // A rebuild as the CLI starts it: a new physical version beside v1, on the same feed.
        const rebuild = await registerRebuild(f.sink, definition, host.feed.kind);
        assert.equal(rebuild.state, 'building');
        await host.reconcile();
        const building = host.slots.find(({ slot }) => slot.version === rebuild.version);
        assert.ok(building, 'the running host took the rebuild up');
        assert.equal(await building.engine.whenCaughtUp(building.slot, timeout), true);
        assert.equal(await ledger.activeVersion(f.sink, 'counts'), rebuild.version);
        await host.reconcile();
        assert.deepEqual(
          host.slots.map(({ slot }) => [slot.name, slot.version, slot.state]).sort(),
          [
            ['counts', rebuild.version, 'active'],
            ['others', 1, 'active'],
          ],
        );
        assert.equal(host.engines.length, 1, 'the new version joined the shared engine');
        await f.store.appendToStream('a', counted(1));
        await f.publish();
        assert.equal(await host.whenCaughtUp(timeout), true);
        assert.deepEqual(await counts(f.sink, `counts_v${rebuild.version}`), { a: 21, b: 5 });
        assert.deepEqual(await counts(f.sink, 'others_v1'), { a: 21, b: 5 });
        assert.deepEqual(
          (await ledger.projections(f.sink, 'counts')).map((r) => [r.version, r.state]),
          [[rebuild.version, 'active']],
        );
        await assert.rejects(f.sink.query('SELECT count(*) AS n FROM counts_v1'));
      },
    );

    scenario(
      'upcasts at consumption for apply, applyBatch and parked retries alike',
      async (f, track) => {
        // Stored in schema 1 ({ i }); the application reads schema 2 ({ i, doubled }).
        await f.store.appendToStream('a', counted(3));
        await f.store.appendToStream('b', [{ type: 'Counted', data: { i: 'not a number' } }]);
        await f.publish();
        let deployed = false;
        const upcasters = new Upcasters([
          {
            type: 'Counted',
            fromVersion: 1,
            upcast: (data) => {
              const { i } = data as { i: unknown };
              if (typeof i !== 'number' && !deployed) throw new Error('cannot upcast');
              return { i, doubled: typeof i === 'number' ? i * 2 : 0 };
            },
          },
        ]);
        const plain = counting({ name: 'plain' });
        const batched = counting({ name: 'batched', batch: true });
        const runners = [plain, batched].map(({ definition }) =>
          track(runner(f, { projection: definition, upcasters, retry: { attempts: 1 } })),
        );
        for (const r of runners) await r.start();
        for (const r of runners) assert.equal(await r.whenCaughtUp(timeout), true);
        for (const name of ['plain', 'batched']) {
          const rows = await f.sink.query<{ stream_id: string; data: string }>(
            `SELECT stream_id, data FROM ${name}_v1 ORDER BY stream_id`,
          );
          assert.deepEqual(
            rows.map((r) => [r.stream_id, JSON.parse(r.data) as unknown]),
            [['a', { i: 2, doubled: 4 }]],
            `${name}: events reach the projection in the current schema`,
          );
        }
        // The event no upcaster could handle is parked as stored, and applies once one can.
        for (const r of runners) {
          const parked = await r.parked();
          assert.deepEqual(
            parked.map((p) => [p.event.streamId, p.event.schemaVersion, p.event.data]),
            [['b', 1, { i: 'not a number' }]],
          );
        }
        deployed = true;
        for (const { definition } of [plain, batched]) {
          assert.equal(
            await retryParked({ sink: f.sink, feeds: {}, upcasters }, definition, 'b'),
            1,
          );
        }
        for (const name of ['plain', 'batched']) {
          const [row] = await f.sink.query<{ data: string }>(
            `SELECT data FROM ${name}_v1 WHERE stream_id = 'b'`,
          );
          assert.deepEqual(JSON.parse(row!.data), { i: 'not a number', doubled: 0 });
        }
      },
    );

    scenario('answers consistency tokens for the write they name', async (f, track) => {
      const { definition } = counting();
      const host = track(
        new ProjectionHost({ projections: [definition], sink: f.sink, feed: f.feed() }),
      );
      await host.start();
      const readModels = new ReadModels({ sink: f.sink, projections: [definition], local: host });
      const { position, nextExpectedVersion } = await f.store.appendToStream('t', counted(3));
      await f.publish();
      const token = { position, streamId: 't', streamVersion: nextExpectedVersion };
      assert.equal(await readModels.waitFor(token, ['counts'], timeout), true);
      assert.deepEqual(await counts(f.sink, 'counts_v1'), { t: 3 });
      // A write nobody has made yet cannot be fresh.
      const ahead = { position: position + 100, streamId: 't', streamVersion: 99 };
      assert.equal(await readModels.waitFor(ahead, ['counts'], 200), false);
    });
  });
}
