import type pg from 'pg';
import {
  ClosedError,
  silentLogger,
  type Logger,
  type Migration,
  type ProjectionSink,
  type SqlExecutor,
} from '../core/index.ts';
import {
  connectWithRetry,
  createPool,
  isConnectionError,
  isTransientPostgresError,
  resolveConnection,
  unavailable,
  withConnection,
  type PostgresConnectionOptions,
} from './connection.ts';
import { migrateSchema } from './migrations.ts';
import { PostgresSqlExecutor } from './sql-executor.ts';

const COMPONENT = 'PostgresProjectionSink';

export interface PostgresProjectionSinkOptions extends PostgresConnectionOptions {
  logger?: Logger;
}

/**
 * Read models in PostgreSQL. Every connection of the sink has `search_path` set to its schema,
 * so projections name their tables unqualified, as on SQLite.
 *
 * Transactions run on a pooled connection of their own (READ COMMITTED). Several runners, in
 * this process or others, may write at once: the ledger's checkpoint update is conditional, so
 * two runners of one projection version never both apply a batch.
 */
export class PostgresProjectionSink implements ProjectionSink {
  readonly dialect = 'postgres' as const;
  readonly schema: string;
  readonly #pool: pg.Pool;
  readonly #reader: PostgresSqlExecutor;
  readonly #windowMs: number;
  readonly #logger: Logger;
  readonly #afterCommit = new Set<() => void>();
  #closed = false;

  /** Creates the sink; it connects on first use. See {@link PostgresProjectionSink.connect}. */
  constructor(options: PostgresProjectionSinkOptions) {
    const { schema, config, reconnectWindowMs } = resolveConnection(options, { searchPath: true });
    this.schema = schema;
    this.#windowMs = reconnectWindowMs;
    this.#logger = options.logger ?? silentLogger;
    this.#pool = createPool(config, (error) =>
      this.#logger.warn(
        { err: error },
        'an idle PostgreSQL connection failed; it will be replaced',
      ),
    );
    this.#reader = new PostgresSqlExecutor(this.#pool);
  }

  /**
   * Creates the sink and checks that the database answers: `unavailable` when it cannot be
   * reached within `reconnectWindowMs`.
   */
  static async connect(options: PostgresProjectionSinkOptions): Promise<PostgresProjectionSink> {
    const sink = new PostgresProjectionSink(options);
    try {
      await sink.query('SELECT 1');
    } catch (error) {
      await sink.close();
      throw error;
    }
    return sink;
  }

  /**
   * Runs `work` in one transaction on one pooled connection. If the connection breaks, the
   * transaction is lost (the server rolls it back) and the error is transient: the runner tries
   * the batch again. If it breaks during COMMIT the outcome is unknown; the ledger's conditional
   * checkpoint makes the retry safe either way.
   */
  async transaction<T>(work: (sql: SqlExecutor) => Promise<T>): Promise<T> {
    this.#assertOpen();
    const client = await connectWithRetry(
      this.#pool,
      COMPONENT,
      Date.now() + this.#windowMs,
      () => this.#closed,
    );
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const result = await work(new PostgresSqlExecutor(client));
      await client.query('COMMIT');
      for (const listener of this.#afterCommit) listener();
      return result;
    } catch (error) {
      if (isConnectionError(error)) {
        broken = error as Error;
      } else {
        await client.query('ROLLBACK').catch((rollbackError: unknown) => {
          broken = rollbackError as Error;
        });
      }
      throw error;
    } finally {
      // A connection that failed is destroyed rather than handed to the next transaction.
      client.release(broken);
    }
  }

  /** A read outside any transaction, retried over broken connections. */
  async query<Row = Record<string, unknown>>(
    sql: string,
    params?: readonly unknown[],
  ): Promise<Row[]> {
    this.#assertOpen();
    return withConnection(
      this.#pool,
      COMPONENT,
      this.#windowMs,
      () => this.#closed,
      (client) => new PostgresSqlExecutor(client).query<Row>(sql, params),
    );
  }

  /** An executor outside transactions (each statement commits on its own). */
  get reader(): SqlExecutor {
    return this.#reader;
  }

  /**
   * Applies `component`'s migrations once, in the sink's schema, under an advisory lock: safe
   * when several processes start at once.
   */
  async migrate(component: string, migrations: readonly Migration[]): Promise<void> {
    this.#assertOpen();
    await withConnection(
      this.#pool,
      COMPONENT,
      this.#windowMs,
      () => this.#closed,
      (client) => migrateSchema(client, this.schema, component, migrations),
    ).catch((error: unknown) => {
      throw isConnectionError(error) ? unavailable(COMPONENT, error) : error;
    });
  }

  onCommit(listener: () => void): () => void {
    this.#afterCommit.add(listener);
    return () => this.#afterCommit.delete(listener);
  }

  /**
   * Connection failures (the server is down, restarting, or the socket broke) and the server's
   * own reasons to give up on a transaction (serialization failure, deadlock, lock or statement
   * timeout): not the events' fault, so the runner retries instead of parking them.
   */
  isTransientError(error: unknown): boolean {
    return isTransientPostgresError(error);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#pool.end();
  }

  #assertOpen(): void {
    if (this.#closed) throw new ClosedError(COMPONENT);
  }
}
