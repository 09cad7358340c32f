import Database from 'better-sqlite3';
import { close, closeSync, fdatasync, fdatasyncSync, fsyncSync, open, openSync } from 'node:fs';
import { dirname, resolve as resolvePath } from 'node:path';
import { ClosedError, InvalidArgumentError, StorageError, type Migration } from '../core/index.ts';

export type { Migration };

export type SqliteSynchronous = 'OFF' | 'NORMAL' | 'FULL' | 'EXTRA';

export interface SqliteDatabaseOptions {
  /**
   * How hard SQLite works to make a commit durable (PRAGMA synchronous). `FULL`, the default,
   * syncs the WAL on every commit: an acknowledged append survives a power cut. `NORMAL` may lose
   * the last commits on a power cut (not on a process crash).
   */
  synchronous?: SqliteSynchronous;
  /**
   * Where the WAL sync of a `FULL` commit runs (a file database; `EXTRA` and `:memory:` always
   * sync inline).
   * - `inline` (default): SQLite syncs inside COMMIT, on the event-loop thread.
   * - `background`: the connection commits with `synchronous=NORMAL`, and the WAL file is then
   *   synced (fdatasync) on libuv's thread pool; the writes' promises resolve, and commit
   *   listeners run, only once that sync has completed. The same guarantee, without stopping the
   *   event loop for the disk; commits made while a sync runs wait for the next one, which covers
   *   them all. Worth it where a sync takes long (network block storage: milliseconds); where it
   *   takes a tenth of a millisecond the trip to the thread pool costs more than it frees
   *   (docs/benchmarks.md: 0.8x to 0.92x the appends per second of `inline` here).
   */
  walSync?: 'background' | 'inline';
  /**
   * The WAL sync of `background` (default: `fs.fdatasync`). A seam for fault-injection tests;
   * it must call back only once the data written so far is on disk.
   */
  syncFile?: (fd: number, callback: (error: NodeJS.ErrnoException | null) => void) => void;
  /** How long a writer waits for another process's write lock, in ms. Default 5000. */
  busyTimeoutMs?: number;
  /** At most this many queued writes share one transaction. Default 512. */
  maxGroupSize?: number;
}

type Task = {
  run: () => unknown;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
};

/**
 * A SQLite database file as Tidemark uses it: one write connection (WAL), a read connection for
 * queries, versioned migrations per component, and group commit.
 *
 * Group commit: SQLite has one writer at a time and every commit pays for a sync. Writes queued
 * while the event loop is busy are run together in one transaction, each in its own savepoint,
 * so each keeps its own checks and outcome, and all share one sync.
 *
 * Every write of this process goes through this object, queued (`write`) or as an async
 * transaction (`transaction`), so they never interleave on the shared connection.
 */
export class SqliteDatabase {
  readonly path: string;
  /** Where a durable commit's WAL sync runs (`walSync`; `inline` when it does not apply). */
  readonly walSync: 'background' | 'inline';
  /** The write connection. Use it only inside `write` or `transaction`. */
  readonly writer: Database.Database;
  #reader: Database.Database | undefined;
  readonly #maxGroupSize: number;
  #queue: Task[] = [];
  #scheduled = false;
  /** Held by an async transaction; queued writes wait for it. */
  #locked: Promise<void> | undefined;
  #closed = false;
  readonly #afterCommit = new Set<() => void>();
  readonly #synchronous: SqliteSynchronous;
  /** Transaction control, prepared once (exec() parses its SQL at every call). */
  readonly #tx: Record<
    'begin' | 'commit' | 'rollback' | 'savepoint' | 'release' | 'rollbackTo',
    Database.Statement
  >;
  /** Prepared once: `pragma()` would prepare a statement per call, twice per transaction. */
  readonly #relaxSync: Database.Statement;
  readonly #restoreSync: Database.Statement;
  /** Background WAL sync (see `walSync`): undefined when commits sync inline. */
  readonly #background: WalSyncer | undefined;

  constructor(path: string, options: SqliteDatabaseOptions = {}) {
    if (typeof path !== 'string' || path === '') {
      throw new InvalidArgumentError('path', 'must be a file path or :memory:');
    }
    const synchronous = options.synchronous ?? 'FULL';
    if (!['OFF', 'NORMAL', 'FULL', 'EXTRA'].includes(synchronous)) {
      throw new InvalidArgumentError('synchronous', `must be OFF, NORMAL, FULL or EXTRA`);
    }
    const busyTimeoutMs = options.busyTimeoutMs ?? 5000;
    this.#maxGroupSize = options.maxGroupSize ?? 512;
    if (!Number.isSafeInteger(this.#maxGroupSize) || this.#maxGroupSize < 1) {
      throw new InvalidArgumentError('maxGroupSize', 'must be a positive integer');
    }
    const walSync = options.walSync ?? 'inline';
    if (walSync !== 'background' && walSync !== 'inline') {
      throw new InvalidArgumentError('walSync', 'must be background or inline');
    }
    this.path = path;
    this.writer = new Database(path, { timeout: busyTimeoutMs });
    if (path !== ':memory:') this.writer.pragma('journal_mode = WAL');
    this.#background =
      walSync === 'background' && synchronous === 'FULL' && path !== ':memory:'
        ? new WalSyncer(`${resolvePath(path)}-wal`, options.syncFile ?? fdatasync)
        : undefined;
    this.walSync = this.#background ? 'background' : 'inline';
    // In the background mode the connection itself commits without syncing; WalSyncer syncs.
    const connectionSync = this.#background ? 'NORMAL' : synchronous;
    this.writer.pragma(`synchronous = ${connectionSync}`);
    this.#synchronous = synchronous;
    this.#tx = {
      begin: this.writer.prepare('BEGIN IMMEDIATE'),
      commit: this.writer.prepare('COMMIT'),
      rollback: this.writer.prepare('ROLLBACK'),
      savepoint: this.writer.prepare('SAVEPOINT tm_write'),
      release: this.writer.prepare('RELEASE tm_write'),
      rollbackTo: this.writer.prepare('ROLLBACK TO tm_write'),
    };
    this.#relaxSync = this.writer.prepare('PRAGMA synchronous = NORMAL');
    this.#restoreSync = this.writer.prepare(`PRAGMA synchronous = ${connectionSync}`);
    this.writer.pragma('foreign_keys = ON');
    this.writer.exec(`CREATE TABLE IF NOT EXISTS tm_migrations (
      component TEXT NOT NULL,
      version INTEGER NOT NULL,
      description TEXT NOT NULL,
      applied_at INTEGER NOT NULL,
      PRIMARY KEY (component, version)
    ) WITHOUT ROWID`);
  }

  /** Opens a database file and applies the given components' migrations. */
  static open(path: string, options?: SqliteDatabaseOptions): SqliteDatabase {
    return new SqliteDatabase(path, options);
  }

  /**
   * A read-only connection for queries. In WAL mode it reads the last committed state and never
   * waits for the writer. (For `:memory:` the write connection is returned: there is no file.)
   */
  get reader(): Database.Database {
    this.#assertOpen();
    if (!this.#reader) {
      this.#reader =
        this.path === ':memory:'
          ? this.writer
          : new Database(this.path, { readonly: true, fileMustExist: true });
    }
    return this.#reader;
  }

  /**
   * Applies the migrations of `component` that this file has not seen, in one transaction.
   * Throws {@link StorageError} when the file was migrated by a newer version.
   */
  migrate(component: string, migrations: readonly Migration[]): void {
    this.#assertOpen();
    // Nothing to do is the common case (a second store or sink on a shared database): answer
    // it without a transaction, so it works even while another component's transaction is open.
    if (this.#appliedVersion(component, migrations) === maxVersion(migrations)) return;
    if (this.#locked || this.writer.inTransaction) {
      throw new StorageError(
        `${this.path}: cannot migrate ${component} while a transaction is open; open stores and sinks before starting runners`,
      );
    }
    this.writer.exec('BEGIN IMMEDIATE');
    try {
      this.#applyMigrations(component, migrations);
      this.writer.exec('COMMIT');
      // Rare and at start: a synchronous sync is fine here.
      this.#background?.syncNow();
    } catch (error) {
      if (this.writer.inTransaction) this.writer.exec('ROLLBACK');
      throw error;
    }
  }

  /** Like {@link migrate}, but waits its turn behind the transactions in flight. */
  async migrateWhenFree(component: string, migrations: readonly Migration[]): Promise<void> {
    this.#assertOpen();
    if (this.#appliedVersion(component, migrations) === maxVersion(migrations)) return;
    await this.transaction(() => this.#applyMigrations(component, migrations));
  }

  #appliedVersion(component: string, migrations: readonly Migration[]): number {
    const row = this.writer
      .prepare('SELECT max(version) AS version FROM tm_migrations WHERE component = ?')
      .get(component) as { version: number | null };
    const applied = row.version ?? 0;
    const known = maxVersion(migrations);
    if (applied > known) {
      throw new StorageError(
        `${this.path}: ${component} schema is at version ${applied}; this Tidemark knows up to ${known}`,
      );
    }
    return applied;
  }

  /** Runs inside a write transaction. */
  #applyMigrations(component: string, migrations: readonly Migration[]): void {
    const applied = this.#appliedVersion(component, migrations);
    const record = this.writer.prepare(
      'INSERT INTO tm_migrations (component, version, description, applied_at) VALUES (?, ?, ?, ?)',
    );
    for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
      if (migration.version <= applied) continue;
      this.writer.exec(migration.sql);
      record.run(component, migration.version, migration.description, Date.now());
    }
  }

  /** The schema versions applied to this file, per component. */
  migrations(): { component: string; version: number; description: string; appliedAt: Date }[] {
    const rows = this.writer
      .prepare(
        'SELECT component, version, description, applied_at FROM tm_migrations ORDER BY component, version',
      )
      .all() as { component: string; version: number; description: string; applied_at: number }[];
    return rows.map((r) => ({
      component: r.component,
      version: r.version,
      description: r.description,
      appliedAt: new Date(r.applied_at),
    }));
  }

  /**
   * Queues a synchronous write. It runs inside a transaction shared with the other writes queued
   * before the next turn of the event loop, in a savepoint of its own: if it throws, only its
   * changes are undone and only its promise rejects.
   */
  write<T>(run: () => T): Promise<T> {
    if (this.#closed) return Promise.reject(new ClosedError('SqliteDatabase'));
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ run, resolve: resolve as (value: unknown) => void, reject });
      this.#schedule();
    });
  }

  /**
   * Runs `work` in a transaction of its own on the write connection; queued writes wait until it
   * ends. `work` should touch only this database: an await on outside I/O holds the write lock.
   */
  async transaction<T>(
    work: (db: Database.Database) => Promise<T> | T,
    options: { relaxed?: boolean } = {},
  ): Promise<T> {
    this.#assertOpen();
    while (this.#locked) await this.#locked;
    let release!: () => void;
    this.#locked = new Promise<void>((resolve) => (release = resolve));
    // Relaxed: commit without syncing the WAL. In WAL mode that survives a process crash and
    // loses, on a power cut, only commits after the last sync; the next synced commit (an
    // append) syncs these frames too. Fit for derived data whose progress commits with it.
    const relaxed = options.relaxed === true;
    // With the background sync the connection already commits without syncing.
    const relax =
      relaxed &&
      !this.#background &&
      (this.#synchronous === 'FULL' || this.#synchronous === 'EXTRA');
    let result: T;
    try {
      this.#background?.assertHealthy();
      if (relax) this.#relaxSync.run();
      this.#tx.begin.run();
      try {
        result = await work(this.writer);
        this.#tx.commit.run();
      } catch (error) {
        if (this.writer.inTransaction) this.#tx.rollback.run();
        throw error;
      }
    } finally {
      if (relax) this.#restoreSync.run();
      this.#locked = undefined;
      release();
      if (this.#queue.length > 0) this.#schedule();
    }
    // Outside the lock: other writes go on while this one's WAL frames reach the disk.
    if (this.#background && !relaxed) await this.#background.durable();
    this.#committed();
    return result;
  }

  /**
   * Copies the WAL into the database file and truncates the WAL to zero bytes, between two
   * writes of this process. Used after deleting data that must not survive in old WAL frames
   * (a forgotten subject's key). `busy`: a reader of another connection held it back, so the
   * WAL may still hold old frames until the next checkpoint.
   */
  async checkpointTruncate(): Promise<{ busy: boolean }> {
    this.#assertOpen();
    while (this.#locked) await this.#locked;
    let release!: () => void;
    this.#locked = new Promise<void>((resolve) => (release = resolve));
    try {
      const [row] = this.writer.pragma('wal_checkpoint(TRUNCATE)') as { busy: number }[];
      return { busy: (row?.busy ?? 0) !== 0 };
    } finally {
      this.#locked = undefined;
      release();
      if (this.#queue.length > 0) this.#schedule();
    }
  }

  /** Calls `listener` after each commit of this process's writes. */
  onCommit(listener: () => void): () => void {
    this.#afterCommit.add(listener);
    return () => this.#afterCommit.delete(listener);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Waits for queued writes, then closes both connections. */
  async close(): Promise<void> {
    if (this.#closed) return;
    while (this.#queue.length > 0 || this.#locked) {
      if (this.#locked) await this.#locked;
      else await new Promise<void>((resolve) => setImmediate(resolve));
    }
    this.#closed = true;
    await this.#background?.close();
    if (this.#reader && this.#reader !== this.writer) this.#reader.close();
    this.writer.close();
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    // setImmediate, not a microtask: requests read in the same poll phase all get queued first.
    setImmediate(() => this.#flush());
  }

  #flush(): void {
    this.#scheduled = false;
    if (this.#queue.length === 0) return;
    if (this.#locked) return; // the transaction's end schedules us again
    const batch =
      this.#queue.length <= this.#maxGroupSize
        ? this.#queue
        : this.#queue.slice(0, this.#maxGroupSize);
    this.#queue = batch === this.#queue ? [] : this.#queue.slice(batch.length);
    const db = this.writer;
    const outcomes: { ok: boolean; value: unknown }[] = new Array(batch.length);
    try {
      this.#background?.assertHealthy();
      this.#tx.begin.run();
    } catch (error) {
      for (const task of batch) task.reject(error);
      if (this.#queue.length > 0) this.#schedule();
      return;
    }
    const single = batch.length === 1;
    for (let i = 0; i < batch.length; i++) {
      const task = batch[i]!;
      if (!single) this.#tx.savepoint.run();
      try {
        outcomes[i] = { ok: true, value: task.run() };
        if (!single) this.#tx.release.run();
      } catch (error) {
        outcomes[i] = { ok: false, value: error };
        if (!single) {
          this.#tx.rollbackTo.run();
          this.#tx.release.run();
        }
      }
    }
    try {
      if (single && !outcomes[0]!.ok) this.#tx.rollback.run();
      else this.#tx.commit.run();
    } catch (error) {
      if (db.inTransaction) this.#tx.rollback.run();
      for (const task of batch) task.reject(error);
      if (this.#queue.length > 0) this.#schedule();
      return;
    }
    if (this.#queue.length > 0) this.#schedule();
    const settle = () => {
      for (let i = 0; i < batch.length; i++) {
        const outcome = outcomes[i]!;
        if (outcome.ok) batch[i]!.resolve(outcome.value);
        else batch[i]!.reject(outcome.value);
      }
      this.#committed();
    };
    if (!this.#background || (single && !outcomes[0]!.ok)) return settle();
    // Nothing is acknowledged before its WAL frames are on disk; a failed sync fails them all.
    this.#background.afterSync(settle, (error) => {
      for (const task of batch) task.reject(error);
    });
  }

  #committed(): void {
    for (const listener of this.#afterCommit) listener();
  }

  #assertOpen(): void {
    if (this.#closed) throw new ClosedError('SqliteDatabase');
  }
}

/**
 * Syncs the WAL file off the event loop, for commits made with `synchronous=NORMAL`. A commit's
 * callbacks run after a sync that started after the commit: commits made while a sync runs wait
 * for the next one, which covers all of them (syncs never overlap, so one covers many commits
 * under load). The WAL keeps its inode while this process holds the database open (SQLite
 * truncates and rewinds it, but removes it only when the last connection closes), so one
 * descriptor, opened at the first sync, serves for the database's life.
 *
 * A failed sync means the frames may not be on disk, and Linux may have dropped the dirty pages
 * it could not write: the commits it covered are reported failed (their outcome is unknown: they
 * are visible to this process, and may or may not survive a power cut), and every later write is
 * refused with the same error until the database is opened again.
 */
class WalSyncer {
  readonly #file: string;
  readonly #sync: NonNullable<SqliteDatabaseOptions['syncFile']>;
  #fd: number | undefined;
  #waiting: { done: () => void; failed: (error: Error) => void }[] = [];
  #running: Promise<void> | undefined;
  #failure: StorageError | undefined;
  #directorySynced = false;

  constructor(file: string, sync: NonNullable<SqliteDatabaseOptions['syncFile']>) {
    this.#file = file;
    this.#sync = sync;
  }

  assertHealthy(): void {
    if (this.#failure) throw this.#failure;
  }

  /** Calls `done` once everything committed so far is on disk, or `failed`. */
  afterSync(done: () => void, failed: (error: Error) => void): void {
    this.#waiting.push({ done, failed });
    this.#running ??= this.#drain();
  }

  durable(): Promise<void> {
    return new Promise((resolve, reject) => this.afterSync(resolve, reject));
  }

  /** A synchronous sync, for rare writes made outside the queue (migrations). */
  syncNow(): void {
    this.assertHealthy();
    fdatasyncSync(this.#descriptor());
    if (!this.#directorySynced && process.platform !== 'win32') {
      const dirFd = openSync(dirname(this.#file), 'r');
      try {
        fsyncSync(dirFd);
      } finally {
        closeSync(dirFd);
      }
      this.#directorySynced = true;
    }
  }

  async close(): Promise<void> {
    while (this.#running) await this.#running;
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }

  async #drain(): Promise<void> {
    while (this.#waiting.length > 0) {
      const group = this.#waiting;
      this.#waiting = [];
      const error = this.#failure ?? (await this.#syncOnce());
      for (const waiter of group) {
        if (error) waiter.failed(error);
        else waiter.done();
      }
    }
    this.#running = undefined;
  }

  #syncOnce(): Promise<StorageError | undefined> {
    return new Promise((resolve) => {
      let fd: number;
      try {
        fd = this.#descriptor();
      } catch (error) {
        resolve(this.#fail(error));
        return;
      }
      this.#sync(fd, (error) => {
        if (error) return resolve(this.#fail(error));
        if (this.#directorySynced) return resolve(undefined);
        this.#syncDirectory((dirError) => {
          if (dirError) return resolve(this.#fail(dirError));
          this.#directorySynced = true;
          resolve(undefined);
        });
      });
    });
  }

  /**
   * The WAL's directory entry, once per open database: SQLite creates the WAL when the first
   * connection opens the file, and at `synchronous=FULL` it syncs the directory with the WAL's
   * first sync; at NORMAL that would wait for the first checkpoint, and a power cut before it
   * could lose the file's entry with every commit acknowledged in it. Through the same seam.
   * (Windows cannot open a directory, and SQLite does not sync one there either.)
   */
  #syncDirectory(callback: (error: NodeJS.ErrnoException | null) => void): void {
    if (process.platform === 'win32') return callback(null);
    open(dirname(this.#file), 'r', (openError, dirFd) => {
      if (openError) return callback(openError);
      this.#sync(dirFd, (syncError) => close(dirFd, () => callback(syncError)));
    });
  }

  #descriptor(): number {
    this.#fd ??= openSync(this.#file, 'r');
    return this.#fd;
  }

  #fail(cause: unknown): StorageError {
    this.#failure = new StorageError(
      `${this.#file}: syncing the WAL to disk failed; the last writes may not be durable, and ` +
        'the database refuses writes until it is opened again',
      { cause },
    );
    return this.#failure;
  }
}

function maxVersion(migrations: readonly Migration[]): number {
  let max = 0;
  for (const migration of migrations) max = Math.max(max, migration.version);
  return max;
}
