/**
 * The background WAL sync (SqliteDatabase `walSync: 'background'`): commits run
 * with synchronous=NORMAL and the WAL is synced off the event loop, and nothing is acknowledged
 * (no promise resolves, no commit listener runs) before a sync that started after its commit has
 * completed. kill -9 cannot tell this from an inline sync (the page cache survives a process
 * crash), so the ordering is proven here through the sync seam: each sync is held until the test
 * lets it finish, or made to fail.
 */
import assert from 'node:assert/strict';
import { fdatasync, fstatSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { isTidemarkError } from 'tidemark';
import { SqliteDatabase, SqliteEventStore } from 'tidemark/sqlite';

const dir = mkdtempSync(join(tmpdir(), 'tidemark-durability-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const file = () => join(dir, `db-${++n}.sqlite`);

/** A sync seam whose calls wait until the test finishes them (really syncing, or failing). */
function heldSyncs() {
  const calls: { fd: number; finish: () => void; fail: (error: Error) => void }[] = [];
  const open = new Set<number>();
  let called = Promise.withResolvers<void>();
  return {
    calls,
    /** Finishes every sync still held (a test's cleanup). */
    finishRest() {
      for (const i of open) calls[i]!.finish();
    },
    /** Resolves when the sync number `count` (1-based) has been asked for. */
    async asked(count: number) {
      while (calls.length < count) {
        await called.promise;
        called = Promise.withResolvers<void>();
      }
    },
    syncFile(fd: number, callback: (error: NodeJS.ErrnoException | null) => void) {
      const i = calls.length;
      open.add(i);
      calls.push({
        fd,
        finish: () => open.delete(i) && fdatasync(fd, callback),
        fail: (error) => open.delete(i) && callback(error as NodeJS.ErrnoException),
      });
      called.resolve();
    },
  };
}

/**
 * A database synced in the background through held syncs (optionally with an event store on
 * it), and its cleanup: every sync still held is finished, then everything closed.
 */
function backgroundDatabase() {
  const syncs = heldSyncs();
  const database = new SqliteDatabase(file(), { walSync: 'background', syncFile: syncs.syncFile });
  return {
    syncs,
    database,
    async close(store?: SqliteEventStore) {
      syncs.finishRest();
      await store?.close();
      await database.close();
    },
  };
}

/** Tracks whether a promise has settled, without waiting for it. */
function track<T>(promise: Promise<T>) {
  const state = { settled: false, promise };
  promise.then(
    () => (state.settled = true),
    () => (state.settled = true),
  );
  return state;
}

/** One full turn of the event loop: whatever was ready has run. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('SqliteDatabase: WAL synced in the background', () => {
  it('acknowledges an append, and tells commit listeners, only after its sync completed', async () => {
    const { syncs, database, close } = backgroundDatabase();
    const store = new SqliteEventStore(database);
    let notified = 0;
    database.onCommit(() => notified++);
    try {
      const append = track(store.appendToStream('s-1', [{ type: 'E', data: { a: 1 } }]));
      await syncs.asked(1);
      await turn();
      // Committed (another connection sees it), but not yet acknowledged.
      const row = database.reader.prepare('SELECT count(*) AS n FROM tm_events').get() as {
        n: number;
      };
      assert.equal(row.n, 1);
      assert.equal(append.settled, false, 'no acknowledgement before the sync');
      assert.equal(notified, 0, 'no commit listener before the sync');
      syncs.calls[0]!.finish();
      const result = await append.promise;
      assert.equal(result.nextExpectedVersion, 1);
      assert.equal(notified, 1);
    } finally {
      await close(store);
    }
  });

  it('makes commits that land during a sync wait for the next one, which covers them all', async () => {
    const { syncs, database, close } = backgroundDatabase();
    const store = new SqliteEventStore(database);
    try {
      const first = track(store.appendToStream('s-1', [{ type: 'E', data: {} }]));
      await syncs.asked(1);
      const second = track(store.appendToStream('s-2', [{ type: 'E', data: {} }]));
      const third = track(store.appendToStream('s-3', [{ type: 'E', data: {} }]));
      await turn();
      await turn();
      assert.equal(syncs.calls.length, 1, 'syncs never overlap');
      assert.equal(second.settled || third.settled, false);
      syncs.calls[0]!.finish();
      await first.promise;
      await syncs.asked(2);
      await turn();
      assert.equal(second.settled || third.settled, false, 'the first sync began before them');
      syncs.calls[1]!.finish();
      await Promise.all([second.promise, third.promise]);
      assert.equal(syncs.calls.length, 2, 'one sync for both');
    } finally {
      await close(store);
    }
  });

  it('fails the writes a failed sync covered, and refuses every later write, loudly', async () => {
    const { syncs, database, close } = backgroundDatabase();
    const store = new SqliteEventStore(database);
    try {
      const append = store.appendToStream('s-1', [{ type: 'E', data: {} }]);
      await syncs.asked(1);
      const eio = Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
      syncs.calls[0]!.fail(eio);
      await assert.rejects(append, (error: unknown) => {
        assert.ok(isTidemarkError(error));
        assert.equal(error.code, 'storage_error');
        assert.match(error.message, /syncing the WAL to disk failed/);
        assert.equal((error as Error).cause, eio);
        return true;
      });
      await assert.rejects(store.appendToStream('s-2', [{ type: 'E', data: {} }]), {
        code: 'storage_error',
      });
      await assert.rejects(
        database.transaction(() => undefined),
        { code: 'storage_error' },
        'transactions are refused too',
      );
      assert.equal(syncs.calls.length, 1, 'nothing more was written');
    } finally {
      await close(store);
    }
  });

  it("syncs the WAL's directory once, after the first WAL sync and before acknowledging", async () => {
    // A database with no migrations (they sync at once, directory included): the first sync
    // of the directory then goes through the seam, after the WAL's first one.
    const { syncs, database, close } = backgroundDatabase();
    const isDirectory = (i: number) => fstatSync(syncs.calls[i]!.fd).isDirectory();
    try {
      database.writer.exec('CREATE TABLE t (x INTEGER)');
      const first = track(database.write(() => database.writer.exec('INSERT INTO t VALUES (1)')));
      await syncs.asked(1);
      assert.equal(isDirectory(0), false, 'the WAL first');
      syncs.calls[0]!.finish();
      await syncs.asked(2);
      await turn();
      assert.equal(isDirectory(1), true, 'then its directory');
      assert.equal(first.settled, false, 'no acknowledgement before the directory is synced');
      syncs.calls[1]!.finish();
      await first.promise;
      const second = database.write(() => database.writer.exec('INSERT INTO t VALUES (2)'));
      await syncs.asked(3);
      assert.equal(isDirectory(2), false);
      syncs.calls[2]!.finish();
      await second;
      await turn();
      assert.equal(syncs.calls.length, 3, 'the directory once per open database');
    } finally {
      await close();
    }
  });

  it("fails the write, and later ones, when the directory's sync fails", async () => {
    const { syncs, database, close } = backgroundDatabase();
    try {
      database.writer.exec('CREATE TABLE t (x INTEGER)');
      const write = database.write(() => database.writer.exec('INSERT INTO t VALUES (1)'));
      await syncs.asked(1);
      syncs.calls[0]!.finish();
      await syncs.asked(2);
      syncs.calls[1]!.fail(Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' }));
      await assert.rejects(write, { code: 'storage_error' });
      await assert.rejects(
        database.write(() => database.writer.exec('INSERT INTO t VALUES (2)')),
        { code: 'storage_error' },
      );
      assert.equal(syncs.calls.length, 2, 'nothing more was synced');
    } finally {
      await close();
    }
  });

  it('does not make relaxed transactions (read models) wait for a sync', async () => {
    const { syncs, database, close } = backgroundDatabase();
    try {
      await database.transaction((db) => db.exec('CREATE TABLE t (x INTEGER)'), {
        relaxed: true,
      });
      await database.transaction((db) => db.prepare('INSERT INTO t VALUES (1)').run(), {
        relaxed: true,
      });
      assert.equal(syncs.calls.length, 0);
      const durable = track(
        database.transaction((db) => db.prepare('INSERT INTO t VALUES (2)').run()),
      );
      await syncs.asked(1);
      await turn();
      assert.equal(durable.settled, false, 'a durable transaction waits for its sync');
      syncs.calls[0]!.finish();
      // No migration synced this database yet: its directory's first sync comes next.
      await syncs.asked(2);
      syncs.calls[1]!.finish();
      await durable.promise;
    } finally {
      await close();
    }
  });
});
