/**
 * Deferred writes for projections that set `deferWrites` (core/projections.ts): the writes an
 * `apply` makes are held and sent to the database together, many statements in one round trip,
 * instead of one round trip each. On PostgreSQL, where a plain per-event projection is bound by
 * round trips, that is most of its time; SQLite runs in the process and has none to save.
 *
 * Order is kept: every statement goes in the order it was made, and a read (`query`) first sends
 * what is held, so it sees the projection's earlier writes. What is held is sent before the
 * transaction saves its progress (the applier calls `flush`), so it commits with the batch.
 */
import { InvalidArgumentError, type SqlExecutor } from '../core/index.ts';

/** An executor that can take many writes in one round trip (the PostgreSQL one). */
export interface ScriptSqlExecutor extends SqlExecutor {
  /** The statement with its parameters written in as literals; undefined when one cannot be. */
  inline(sql: string, params: readonly unknown[]): string | undefined;
  /** Runs the statements, in order, in one round trip. */
  executeScript(statements: readonly string[]): Promise<void>;
}

export function canDefer(sql: SqlExecutor): sql is ScriptSqlExecutor {
  return (
    typeof (sql as Partial<ScriptSqlExecutor>).executeScript === 'function' &&
    typeof (sql as Partial<ScriptSqlExecutor>).inline === 'function'
  );
}

/** Held statements are sent once this many have gathered, whatever the batch's size. */
const MAX_HELD = 500;

/** The result of a deferred write: its row count is not known when `execute` resolves. */
const deferredResult: { readonly rowCount: number } = Object.freeze({
  get rowCount(): number {
    throw new InvalidArgumentError(
      'rowCount',
      'not known for a deferred write: the projection sets deferWrites, so its writes are sent ' +
        'later, together; leave deferWrites off to read row counts',
    );
  },
});

export class DeferredWrites implements SqlExecutor {
  readonly dialect: SqlExecutor['dialect'];
  readonly #sql: ScriptSqlExecutor;
  #held: string[] = [];

  constructor(sql: ScriptSqlExecutor) {
    this.#sql = sql;
    this.dialect = sql.dialect;
  }

  async query<Row = Record<string, unknown>>(
    sql: string,
    params?: readonly unknown[],
  ): Promise<Row[]> {
    await this.flush();
    return this.#sql.query<Row>(sql, params);
  }

  async execute(sql: string, params: readonly unknown[] = []): Promise<{ rowCount: number }> {
    const statement = this.#sql.inline(sql, params);
    if (statement === undefined) {
      // A parameter without a literal form (an array, say): send what is held, then this one.
      await this.flush();
      return this.#sql.execute(sql, params);
    }
    this.#held.push(statement);
    if (this.#held.length >= MAX_HELD) await this.flush();
    return deferredResult;
  }

  /** Sends what is held (a failing statement rejects, and the transaction is to be rolled back). */
  async flush(): Promise<void> {
    if (this.#held.length === 0) return;
    const statements = this.#held;
    this.#held = [];
    await this.#sql.executeScript(statements);
  }
}
