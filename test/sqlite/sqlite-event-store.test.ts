import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { isTidemarkError } from 'tidemark';
import { SqliteDatabase, SqliteEventStore, eventStoreMigrations } from 'tidemark/sqlite';

const dir = mkdtempSync(join(tmpdir(), 'tidemark-sqlite-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const file = () => join(dir, `db-${++n}.sqlite`);

describe('SqliteEventStore', () => {
  it('keeps events across close and reopen, with WAL and synchronous=FULL by default', async () => {
    const path = file();
    const store = new SqliteEventStore(path);
    assert.equal(store.database.writer.pragma('journal_mode', { simple: true }), 'wal');
    assert.equal(store.database.walSync, 'inline');
    assert.equal(store.database.writer.pragma('synchronous', { simple: true }), 2); // FULL
    // FULL with the WAL synced off the event loop: the connection itself commits at NORMAL.
    const background = new SqliteDatabase(file(), { walSync: 'background' });
    assert.equal(background.walSync, 'background');
    assert.equal(background.writer.pragma('synchronous', { simple: true }), 1);
    await background.close();
    await store.appendToStream('s', [{ type: 'E', data: { a: 1 } }]);
    await store.close();
    const again = new SqliteEventStore(path, { synchronous: 'NORMAL' });
    assert.equal(again.database.writer.pragma('synchronous', { simple: true }), 1);
    const [event] = await again.readStream('s');
    assert.deepEqual(event!.data, { a: 1 });
    assert.equal(again.database.migrations().length, eventStoreMigrations.length);
    await again.close();
  });

  it('commits concurrent appends together (group commit), each with its own outcome', async () => {
    const store = new SqliteEventStore(file());
    let commits = 0;
    store.database.onCommit(() => commits++);
    const results = await Promise.allSettled([
      ...Array.from({ length: 40 }, (_, i) =>
        store.appendToStream(`s-${i}`, [{ type: 'E', data: { i } }]),
      ),
      store.appendToStream('s-0', [{ type: 'E', data: {} }], { expectedVersion: 5 }),
      store.appendToStream('s-bad', [
        { type: 'E', data: {}, eventId: 'dup' },
        { type: 'E', data: {}, eventId: 'dup' },
      ]),
    ]);
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 40);
    assert.equal(commits, 1);
    assert.equal(await store.headPosition(), 40);
    assert.equal(await store.streamVersion('s-bad'), 0);
    const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    assert.ok(isTidemarkError(failures[0]!.reason, 'wrong_expected_version'));
    assert.ok(isTidemarkError(failures[1]!.reason, 'duplicate_event_id'));
    await store.close();
  });

  it('refuses a file migrated by a newer version, and changes nothing', async () => {
    const path = file();
    const store = new SqliteEventStore(path);
    store.database.writer
      .prepare(
        'INSERT INTO tm_migrations (component, version, description, applied_at) VALUES (?, ?, ?, ?)',
      )
      .run('event-store', 99, 'from the future', 0);
    await store.close();
    assert.throws(
      () => new SqliteEventStore(path),
      (e) => isTidemarkError(e, 'storage_error'),
    );
  });

  it('shares one database between stores, and hears appends made by another process', async () => {
    const path = file();
    const store = new SqliteEventStore(path, { pollIntervalMs: 10 });
    const heard = new Promise<number>((resolve) => {
      const stop = store.onAppended((position) => {
        stop();
        resolve(position);
      });
    });
    const script = new URL('./fixtures/append-child.ts', import.meta.url).pathname;
    const child = fork(script, [path], {
      execArgv: ['--conditions=tidemark-source'],
    });
    const exit = new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.equal(await exit, 0);
    assert.equal(await heard, 1);
    assert.equal((await store.readAll())[0]!.streamId, 'other-process');
    await store.close();
  });

  it('refuses bad options at construction', () => {
    for (const options of [{ synchronous: 'SOMETIMES' }, { maxGroupSize: 0 }]) {
      assert.throws(
        () => new SqliteDatabase(':memory:', options as never),
        (e) => isTidemarkError(e, 'invalid_argument'),
      );
    }
  });
});
