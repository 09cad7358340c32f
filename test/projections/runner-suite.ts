/**
 * Store-fed scenarios beyond the projection runner contract (tidemark/testing, which covers
 * catch-up, restarts, failed commits, parking, rebuilds taken up by a host, upcasting), run
 * against SQLite (test/projections/runner.test.ts) and PostgreSQL
 * (test/postgres/projection-sink.test.ts). The projection's SQL is the portable subset both accept.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ProjectionRunner,
  defineProjection,
  ledger,
  registerRebuild,
  type EventStore,
  type ProjectionDefinition,
  type ProjectionSink,
  type RecordedEvent,
} from 'tidemark';

export interface RunnerBackend {
  /** Shown in test names. */
  name: string;
  /** A fresh, empty store and sink. */
  setup(): Promise<{ store: EventStore; sink: ProjectionSink; close(): Promise<void> }>;
  /** An error the sink counts as transient (the runner retries the batch rather than park). */
  transientError(): Error;
}

/** Counts events per stream; fails on demand to play the poison event. */
function counting(options: { version?: number; poison?: (e: RecordedEvent) => boolean } = {}) {
  const applied: string[] = [];
  const definition = defineProjection({
    name: 'counts',
    version: options.version ?? 1,
    handles: ['Counted'],
    tables: ['counts'],
    init: async ({ sql, table }) => {
      await sql.execute(
        `CREATE TABLE ${table('counts')} (stream_id TEXT PRIMARY KEY, n INTEGER NOT NULL, last INTEGER)`,
      );
    },
    apply: async (event, { sql, table }) => {
      if (options.poison?.(event))
        throw new Error(`poison ${event.streamId}@${event.streamVersion}`);
      await sql.execute(
        `INSERT INTO ${table('counts')} (stream_id, n, last) VALUES ($1, 1, $2)
         ON CONFLICT (stream_id) DO UPDATE SET n = ${table('counts')}.n + 1, last = $2`,
        [event.streamId, event.streamVersion],
      );
      applied.push(event.eventId);
    },
  });
  return { definition, applied };
}

const counted = (n: number) =>
  Array.from({ length: n }, (_, i) => ({ type: 'Counted', data: { i } }));

async function counts(sink: ProjectionSink, table = 'counts_v1') {
  const rows = await sink.query<{ stream_id: string; n: number; last: number }>(
    `SELECT stream_id, n, last FROM ${table} ORDER BY stream_id`,
  );
  return Object.fromEntries(rows.map((r) => [r.stream_id, r.n]));
}

/** Registers the scenarios for one backend. */
export function runnerScenarios(backend: RunnerBackend): void {
  describe(`ProjectionRunner (store-fed, ${backend.name})`, () => {
    it('skips a parked event on request', async () => {
      const { store, sink, close } = await backend.setup();
      const { definition } = counting({
        poison: (e) => e.streamVersion === 1 && e.streamId === 'x',
      });
      const runner = new ProjectionRunner({
        projection: definition,
        store,
        sink,
        retry: { attempts: 1 },
      });
      await runner.start();
      await store.appendToStream('x', counted(2));
      await runner.whenCaughtUp();
      const [first] = await ledger.parked(sink, { name: 'counts' });
      assert.equal(await runner.applier.skipParked(first!.event.eventId), true);
      assert.equal(await runner.applier.retryParked('x'), 1);
      assert.deepEqual(await counts(sink), { x: 1 });
      await runner.stop();
      await close();
    });

    it('builds a new version beside the old one, then switches over and drops the old tables', async () => {
      const { store, sink, close } = await backend.setup();
      await store.appendToStream('a', counted(20));
      const v1 = new ProjectionRunner({ projection: counting().definition, store, sink });
      await v1.start();
      await v1.whenCaughtUp();
      const v2def: ProjectionDefinition = { ...counting({ version: 2 }).definition };
      const v2 = new ProjectionRunner({ projection: v2def, store, sink, dropGraceMs: 1 });
      const switched = new Promise<number>((resolve) => v2.onSwitchOver(resolve));
      await v2.start();
      assert.equal(await ledger.activeVersion(sink, 'counts'), 1);
      assert.equal(await v2.whenCaughtUp(), true);
      assert.equal(await switched, 2);
      assert.equal(await ledger.activeVersion(sink, 'counts'), 2);
      assert.deepEqual(await counts(sink, 'counts_v2'), { a: 20 });
      const rows = await ledger.projections(sink, 'counts');
      assert.deepEqual(
        rows.map((r) => [r.version, r.codeVersion, r.state]),
        [
          [1, 1, 'retired'],
          [2, 2, 'active'],
        ],
      );
      // v1's runner learns of its retirement at its next batch, and stops.
      await store.appendToStream('a', counted(1));
      assert.equal(await v2.whenCaughtUp(), true);
      await v1.finished;
      assert.equal(v1.state, 'retired');
      // Dropped by v2's own timer (grace 1 ms) or now, whichever comes first.
      await v2.dropRetired();
      await assert.rejects(sink.query('SELECT count(*) AS n FROM counts_v1'));
      assert.deepEqual(await counts(sink, 'counts_v2'), { a: 21 });
      assert.deepEqual(
        (await ledger.projections(sink, 'counts')).map((r) => r.version),
        [2],
      );
      await v1.stop();
      await v2.stop();
      await close();
    });

    it('a rebuild another builder switched over first counts as caught up (no wait forever)', async () => {
      const { store, sink, close } = await backend.setup();
      await store.appendToStream('a', counted(10));
      const { definition } = counting();
      const v1 = new ProjectionRunner({ projection: definition, store, sink });
      await v1.start();
      assert.equal(await v1.whenCaughtUp(), true);
      const rebuild = await registerRebuild(sink, definition, 'store');
      // The runner's read past the end is held until the other builder (played by the ledger
      // call below, as the service's host does it beside the CLI) has switched the version over.
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      let reachedEnd!: () => void;
      const atEnd = new Promise<void>((resolve) => (reachedEnd = resolve));
      const gated = new Proxy(store, {
        get(target, key) {
          if (key === 'readAll') {
            return async (options: Parameters<EventStore['readAll']>[0]) => {
              const events = await target.readAll(options);
              if (events.length === 0) {
                reachedEnd();
                await held;
              }
              return events;
            };
          }
          const value: unknown = Reflect.get(target, key, target);
          return typeof value === 'function' ? value.bind(target) : value;
        },
      });
      const builder = new ProjectionRunner({
        projection: definition,
        store: gated,
        sink,
        version: rebuild.version,
      });
      const switched = new Promise<number>((resolve) => builder.onSwitchOver(resolve));
      await builder.start();
      const caughtUp = builder.whenCaughtUp();
      await atEnd;
      await sink.transaction((sql) => ledger.activate(sql, 'counts', rebuild.version));
      release();
      assert.equal(await caughtUp, true);
      assert.equal(await switched, rebuild.version);
      assert.equal(builder.state, 'active');
      assert.deepEqual(await counts(sink, `counts_v${rebuild.version}`), { a: 10 });
      await builder.stop();
      await v1.stop();
      await close();
    });

    it('two runners of one version never apply an event twice', async () => {
      const { store, sink, close } = await backend.setup();
      const one = counting();
      const two = counting();
      const a = new ProjectionRunner({ projection: one.definition, store, sink, batchSize: 5 });
      const b = new ProjectionRunner({ projection: two.definition, store, sink, batchSize: 5 });
      await a.start();
      await b.start();
      for (let i = 0; i < 20; i++) await store.appendToStream(`s-${i % 4}`, counted(5));
      await a.whenCaughtUp();
      await b.whenCaughtUp();
      assert.deepEqual(await counts(sink), { 's-0': 25, 's-1': 25, 's-2': 25, 's-3': 25 });
      const total = await sink.query<{ t: number }>('SELECT sum(n) AS t FROM counts_v1');
      assert.equal(total[0]!.t, 100);
      await a.stop();
      await b.stop();
      await close();
    });
  });
}
