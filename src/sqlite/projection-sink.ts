import type { Migration, SqlExecutor } from '../core/index.ts';
import type { ProjectionSink } from '../core/projections.ts';
import { SqliteDatabase, type SqliteDatabaseOptions } from './database.ts';
import { SqliteSqlExecutor } from './sql-executor.ts';

/**
 * Read models in SQLite. Share the {@link SqliteDatabase} with the event store to keep one file
 * and one writer per process: projection transactions and grouped appends then take turns.
 *
 * Note for `apply` handlers: the transaction holds SQLite's write lock until it ends, so await
 * nothing but the given SQL executor inside it.
 */
export interface SqliteProjectionSinkOptions extends SqliteDatabaseOptions {
  /**
   * `relaxed` (the default): read-model transactions commit without syncing the WAL. A process
   * crash loses nothing; a power cut may undo the last read-model commits, together with their
   * checkpoints (they commit as one), so the runner applies those events again. The events
   * themselves keep their own durability. `full`: sync every read-model commit too.
   */
  durability?: 'relaxed' | 'full';
}

export class SqliteProjectionSink implements ProjectionSink {
  readonly dialect = 'sqlite' as const;
  readonly database: SqliteDatabase;
  readonly #ownsDatabase: boolean;
  readonly #writer: SqliteSqlExecutor;
  readonly #relaxed: boolean;
  #reader: SqliteSqlExecutor | undefined;

  constructor(database: string | SqliteDatabase, options: SqliteProjectionSinkOptions = {}) {
    this.#ownsDatabase = typeof database === 'string';
    this.database = typeof database === 'string' ? new SqliteDatabase(database, options) : database;
    this.#writer = new SqliteSqlExecutor(this.database.writer);
    this.#relaxed = (options.durability ?? 'relaxed') === 'relaxed';
  }

  /** An executor on the read connection (last committed state; never waits for the writer). */
  get reader(): SqliteSqlExecutor {
    if (!this.#reader) this.#reader = new SqliteSqlExecutor(this.database.reader);
    return this.#reader;
  }

  transaction<T>(work: (sql: SqlExecutor) => Promise<T>): Promise<T> {
    return this.database.transaction(() => work(this.#writer), { relaxed: this.#relaxed });
  }

  query<Row = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<Row[]> {
    return this.reader.query<Row>(sql, params);
  }

  async migrate(component: string, migrations: readonly Migration[]): Promise<void> {
    await this.database.migrateWhenFree(component, migrations);
  }

  onCommit(listener: () => void): () => void {
    return this.database.onCommit(listener);
  }

  /** SQLITE_BUSY: another process holds the write lock past the busy timeout. */
  isTransientError(error: unknown): boolean {
    const code = (error as { code?: unknown } | null)?.code;
    return code === 'SQLITE_BUSY' || code === 'SQLITE_BUSY_SNAPSHOT' || code === 'SQLITE_LOCKED';
  }

  async close(): Promise<void> {
    if (this.#ownsDatabase) await this.database.close();
  }
}
