/**
 * The archive against a real store (SQLite or PostgreSQL): old finished streams move to
 * segment files and stay readable, the global log reads the same before and after (positions
 * kept, nothing twice, nothing missing), commands and appends on archived streams are refused,
 * and a crash between writing a segment and sealing it loses and duplicates nothing.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  ArchiveAwareStore,
  CommandHandler,
  DirectoryArchive,
  ProjectionRunner,
  StreamArchivedError,
  archiveStreams,
  storeFeed,
  type ArchivableStore,
  type ArchiveProgress,
  type RecordedEvent,
  type SegmentStore,
} from 'tidemark';
import { expectedRows, trackedRows, trackingProjection } from '../kafka/support.ts';
import type { ProjectionSink } from 'tidemark';

const DAY = 86_400_000;
const OLD = new Date(Date.now() - 200 * DAY);

/** What a test store gives the suite: a hot store whose clock the suite sets. */
export interface ArchiveFixture {
  store: ArchivableStore;
  sink: ProjectionSink;
  clock: { now: Date };
  close(): Promise<void>;
}

const finished = (events: readonly { type: string }[]) => events.at(-1)?.type === 'Closed';

/** Old finished streams, old open ones, recent finished ones, and a recent one holding the head. */
async function seed(fixture: ArchiveFixture, prefix: string) {
  const { store, clock } = fixture;
  const ids = (n: number, kind: string) =>
    Array.from({ length: n }, (_, i) => `${prefix}${kind}${String(i).padStart(3, '0')}`);
  const oldClosed = ids(30, 'old-closed-');
  const oldOpen = ids(6, 'old-open-');
  const recentClosed = ids(5, 'new-closed-');
  clock.now = OLD;
  // Interleaved appends, so that streams share stretches of the log.
  for (let round = 0; round < 3; round++) {
    for (const id of [...oldClosed, ...oldOpen, ...recentClosed]) {
      await store.appendToStream(id, [
        { type: 'Counted', data: { round, id }, metadata: { m: round } },
      ]);
    }
  }
  for (const id of oldClosed) await store.appendToStream(id, [{ type: 'Closed', data: {} }]);
  clock.now = new Date();
  for (const id of recentClosed) await store.appendToStream(id, [{ type: 'Closed', data: {} }]);
  await store.appendToStream(`${prefix}head`, [{ type: 'Counted', data: { last: true } }]);
  return { oldClosed, oldOpen, recentClosed };
}

async function readAllIn(store: { readAll: ArchivableStore['readAll'] }, batch: number) {
  const all: RecordedEvent[] = [];
  for (;;) {
    const next = await store.readAll({
      after: all.at(-1)?.position ?? 0,
      maxCount: batch,
      upcast: false,
    });
    if (next.length === 0) return all;
    all.push(...next);
  }
}

/** Where a test's segments go, and the segment ids it holds. */
export interface SegmentsFixture {
  segments: SegmentStore;
  ids(): Promise<string[]>;
}

export function archiveSuite(
  name: string,
  open: (label: string) => Promise<ArchiveFixture>,
  segmentsOf?: () => Promise<SegmentsFixture>,
) {
  describe(`archive: ${name}`, () => {
    const dirs: string[] = [];
    after(() => {
      for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    });
    /** A directory archive of its own, unless the file gives another segment store. */
    const makeSegments = async (): Promise<SegmentsFixture> => {
      if (segmentsOf) return segmentsOf();
      const dir = mkdtempSync(join(tmpdir(), 'tidemark-archive-'));
      dirs.push(dir);
      const segments = new DirectoryArchive(dir);
      return {
        segments,
        ids: async () => readdirSync(dir).map((f) => f.replace(/\.tmseg\.gz$/, '')),
      };
    };

    it('moves old finished streams to segments; they stay readable and the log reads the same', async () => {
      const fixture = await open('moves');
      try {
        const { oldClosed, oldOpen, recentClosed } = await seed(fixture, 'order-');
        const { segments, ids } = await makeSegments();
        const store = new ArchiveAwareStore(fixture.store, segments, { cachedSegments: 2 });
        const before = await fixture.store.readAll({ maxCount: 10_000, upcast: false });
        const streamsBefore = new Map<string, RecordedEvent[]>();
        for (const id of [...oldClosed, ...oldOpen])
          streamsBefore.set(id, await store.readStream(id));
        const head = await fixture.store.headPosition();

        const seen: ArchiveProgress[] = [];
        const progress = await archiveStreams({
          tables: store.tables,
          segments,
          olderThanMs: 90 * DAY,
          policy: finished,
          streamsPerSegment: 7,
          onProgress: (p) => seen.push(p),
        });
        assert.equal(progress.streams, oldClosed.length);
        assert.equal(progress.events, oldClosed.length * 4);
        assert.ok(progress.segments >= 5, `${progress.segments} segments`);
        assert.ok(seen.length > progress.segments, 'progress after every segment');
        assert.equal((await ids()).length, progress.segments);

        // Out of the hot tables, readable through the archive-aware store, the same as before.
        for (const id of oldClosed) {
          assert.deepEqual(await fixture.store.readStream(id), []);
          assert.equal(await fixture.store.streamVersion(id), 4);
          assert.equal(await store.isArchived(id), true);
          assert.deepEqual(await store.readStream(id), streamsBefore.get(id));
          assert.deepEqual(
            await store.readStream(id, { direction: 'backwards', maxCount: 2 }),
            streamsBefore.get(id)!.slice(-2).reverse(),
          );
        }
        for (const id of [...oldOpen, ...recentClosed])
          assert.equal(await store.isArchived(id), false);
        assert.deepEqual(await store.readStream(oldOpen[0]!), streamsBefore.get(oldOpen[0]!));

        // The global log: the same events at the same positions, in one read or in small batches.
        assert.deepEqual(await store.readAll({ maxCount: 10_000, upcast: false }), before);
        assert.deepEqual(await readAllIn(store, 4), before);
        assert.deepEqual(await readAllIn(store, 1), before);
        assert.equal(await store.headPosition(), head);
        assert.equal(await fixture.store.headPosition(), head);
        // Only the hot events are left in the hot log.
        assert.equal(
          (await fixture.store.readAll({ maxCount: 10_000 })).length,
          before.length - progress.events,
        );

        // A rebuild from the store's log reads the hot tables and the archive alike.
        const runner = new ProjectionRunner({
          projection: trackingProjection(),
          sink: fixture.sink,
          feed: storeFeed(store, { batchSize: 9 }),
        });
        await runner.start();
        try {
          assert.equal(await runner.whenCaughtUp(30_000), true);
          assert.deepEqual(await trackedRows(fixture.sink), expectedRows(before));
        } finally {
          await runner.stop();
        }

        // Nothing old and finished is left: a second run archives nothing.
        const again = await archiveStreams({
          tables: store.tables,
          segments,
          olderThanMs: 90 * DAY,
          policy: finished,
        });
        assert.equal(again.streams, 0);
      } finally {
        await fixture.close();
      }
    });

    it('refuses commands and appends on archived streams, and writes nothing', async () => {
      const fixture = await open('refuses');
      try {
        const { oldClosed } = await seed(fixture, 'order-');
        const { segments } = await makeSegments();
        const store = new ArchiveAwareStore(fixture.store, segments);
        await archiveStreams({
          tables: store.tables,
          segments,
          olderThanMs: 90 * DAY,
          policy: finished,
        });
        const before = await store.readAll({ maxCount: 10_000 });
        const id = oldClosed[3]!;

        const handler = new CommandHandler({
          store,
          decider: {
            initialState: () => 0,
            evolve: (n: number) => n + 1,
            decide: () => [{ type: 'Counted', data: {} }],
          },
        });
        await assert.rejects(handler.handle(id, { type: 'Count', data: {} }), (error: unknown) => {
          assert.ok(error instanceof StreamArchivedError);
          assert.equal(error.code, 'stream_archived');
          assert.equal(error.streamId, id);
          return true;
        });
        // The store itself refuses, whatever the expectation (an append racing the archiver).
        for (const expectedVersion of [4, undefined]) {
          await assert.rejects(
            fixture.store.appendToStream(id, [{ type: 'Counted', data: {} }], {
              ...(expectedVersion !== undefined ? { expectedVersion } : {}),
            }),
            StreamArchivedError,
          );
        }
        // Its id stays taken: creating it anew is a version conflict.
        await assert.rejects(
          store.appendToStream(id, [{ type: 'Counted', data: {} }], { expectedVersion: 0 }),
          (error: unknown) => (error as { code?: string }).code === 'wrong_expected_version',
        );
        assert.deepEqual(await store.readAll({ maxCount: 10_000 }), before);
        // Other streams go on.
        await handler.handle('order-new-closed-000', { type: 'Count', data: {} });
      } finally {
        await fixture.close();
      }
    });

    it('a crash between writing a segment and sealing it loses nothing and duplicates nothing', async () => {
      const fixture = await open('crash');
      try {
        const { oldClosed } = await seed(fixture, 'order-');
        const { segments, ids } = await makeSegments();
        const store = new ArchiveAwareStore(fixture.store, segments);
        const before = await fixture.store.readAll({ maxCount: 10_000, upcast: false });
        let written = 0;
        await assert.rejects(
          archiveStreams({
            tables: store.tables,
            segments,
            olderThanMs: 90 * DAY,
            policy: finished,
            streamsPerSegment: 8,
            afterSegmentWritten: () => {
              if (++written === 2)
                throw new Error('injected crash after the segment file was written');
            },
          }),
          /injected crash/,
        );
        // One segment sealed, one file written and not sealed: its streams are still hot.
        const states = (await store.tables.segments()).map((s) => s.state).sort();
        assert.deepEqual(states, ['sealed', 'writing']);
        assert.equal((await ids()).length, 2);
        assert.deepEqual(await readAllIn(store, 5), before);

        const resumed = await archiveStreams({
          tables: store.tables,
          segments,
          olderThanMs: 90 * DAY,
          policy: finished,
          streamsPerSegment: 8,
        });
        assert.equal(resumed.recovered, 1);
        const all = await store.tables.segments();
        assert.ok(all.every((s) => s.state === 'sealed'));
        assert.equal(
          all.reduce((n, s) => n + s.streams, 0),
          oldClosed.length,
        );
        // Exactly the sealed segments' files, no leftover.
        assert.deepEqual((await ids()).sort(), all.map((s) => s.segmentId).sort());
        assert.deepEqual(await readAllIn(store, 5), before);
        assert.deepEqual(await store.readAll({ maxCount: 10_000, upcast: false }), before);
      } finally {
        await fixture.close();
      }
    });

    it('stops between segments and resumes where it stopped; a dry run changes nothing', async () => {
      const fixture = await open('resume');
      try {
        const { oldClosed } = await seed(fixture, 'order-');
        const { segments } = await makeSegments();
        const store = new ArchiveAwareStore(fixture.store, segments);
        const before = await fixture.store.readAll({ maxCount: 10_000, upcast: false });

        const dry = await archiveStreams({
          tables: store.tables,
          segments,
          olderThanMs: 90 * DAY,
          policy: finished,
          dryRun: true,
        });
        assert.equal(dry.streams, oldClosed.length);
        assert.deepEqual(await fixture.store.readAll({ maxCount: 10_000, upcast: false }), before);
        assert.deepEqual(await store.tables.segments(), []);

        const stop = new AbortController();
        const first = await archiveStreams({
          tables: store.tables,
          segments,
          olderThanMs: 90 * DAY,
          policy: finished,
          streamsPerSegment: 5,
          signal: stop.signal,
          onProgress: (p) => {
            if (p.segments === 2) stop.abort();
          },
        });
        assert.equal(first.stopped, true);
        assert.ok(first.streams > 0 && first.streams < oldClosed.length);
        const second = await archiveStreams({
          tables: store.tables,
          segments,
          olderThanMs: 90 * DAY,
          policy: finished,
          streamsPerSegment: 5,
        });
        assert.equal(first.streams + second.streams, oldClosed.length);
        assert.equal(first.events + second.events, dry.events);
        assert.deepEqual(await readAllIn(store, 7), before);
      } finally {
        await fixture.close();
      }
    });
  });
}
