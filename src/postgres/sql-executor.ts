import type pg from 'pg';
import type { SqlExecutor } from '../core/index.ts';

/**
 * Names of statements worth preparing, shared by every executor of the process. The driver
 * prepares a named statement once per connection and keeps it for the connection's life, so the
 * number of names is capped: past the cap, statements run unnamed (parsed each time).
 */
const statementNames = new Map<string, string>();
const MAX_NAMED_STATEMENTS = 500;

function statementName(sql: string): string | undefined {
  let name = statementNames.get(sql);
  if (name === undefined && statementNames.size < MAX_NAMED_STATEMENTS) {
    name = `tm.sql.${statementNames.size + 1}`;
    statementNames.set(sql, name);
  }
  return name;
}

function bindable(value: unknown): unknown {
  if (value === undefined) return null;
  // ISO text, as the SQLite executor writes it: portable to text columns, exact for timestamptz.
  if (value instanceof Date) return value.toISOString();
  return value;
}

/**
 * A {@link SqlExecutor} over one PostgreSQL connection (or a pool, outside transactions).
 * PostgreSQL speaks `$1, $2, …` natively: the SQL goes to the server as it is written.
 * Statements with parameters are prepared once per connection (the projections' hot path runs
 * the same few statements for every event). BIGINT columns come back as numbers (as BigInt
 * beyond 2^53), like SQLite's integers.
 *
 * A prepared statement keeps the shape of its result: after a table is dropped and created again
 * with other columns, a `SELECT *` prepared before fails on connections that ran it. Name the
 * columns, or give the new table a new name (projection versions do).
 */
export class PostgresSqlExecutor implements SqlExecutor {
  readonly dialect = 'postgres' as const;
  readonly #client: pg.ClientBase | pg.Pool;

  constructor(client: pg.ClientBase | pg.Pool) {
    this.#client = client;
  }

  async query<Row = Record<string, unknown>>(
    sql: string,
    params: readonly unknown[] = [],
  ): Promise<Row[]> {
    return (await this.#run(sql, params)).rows as Row[];
  }

  async execute(sql: string, params: readonly unknown[] = []): Promise<{ rowCount: number }> {
    return { rowCount: (await this.#run(sql, params)).rowCount ?? 0 };
  }

  #run(sql: string, params: readonly unknown[]): Promise<pg.QueryResult> {
    // Without parameters: DDL and one-off statements, possibly several separated by `;`, which
    // only the simple protocol (unnamed, unprepared) accepts.
    if (params.length === 0) return this.#client.query(sql);
    const name = statementName(sql);
    const values = params.map(bindable);
    return this.#client.query(name ? { name, text: sql, values } : { text: sql, values });
  }
}
