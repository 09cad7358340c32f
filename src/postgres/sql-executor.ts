import { escapeLiteral } from 'pg';
import type pg from 'pg';
import type { SqlExecutor } from '../core/index.ts';
import type { ScriptSqlExecutor } from '../projections/deferred-writes.ts';

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
export class PostgresSqlExecutor implements SqlExecutor, ScriptSqlExecutor {
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

  /**
   * The statement with each `$n` replaced by its parameter as a quoted literal (text of unknown
   * type, as the driver sends parameters, so the server resolves it the same way); undefined
   * when a parameter has no literal form here (arrays, objects with `toPostgres`).
   */
  inline(sql: string, params: readonly unknown[]): string | undefined {
    const parts = templateOf(sql);
    if (parts.length === 1) return sql;
    let out = parts[0] as string;
    for (let i = 1; i < parts.length; i += 2) {
      const index = parts[i] as number;
      if (index < 1 || index > params.length) return undefined;
      const literal = literalOf(params[index - 1]);
      if (literal === undefined) return undefined;
      out += literal + (parts[i + 1] as string);
    }
    return out;
  }

  /** Runs the statements in one round trip (the simple protocol: one message, in order). */
  async executeScript(statements: readonly string[]): Promise<void> {
    if (statements.length === 0) return;
    await this.#client.query(statements.join(';\n'));
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

/** Parsed statements: text pieces with the parameter numbers between them. */
const templates = new Map<string, (string | number)[]>();
const MAX_TEMPLATES = 500;

/**
 * Splits `sql` at its `$n` placeholders: [text, n, text, n, …, text]. Placeholders inside
 * quoted strings ('…', E'…', "identifiers", $tag$…$tag$) and comments are text.
 */
export function templateOf(sql: string): (string | number)[] {
  const known = templates.get(sql);
  if (known) return known;
  const parts: (string | number)[] = [];
  let from = 0;
  let i = 0;
  const n = sql.length;
  while (i < n) {
    const c = sql[i]!;
    if (c === "'") {
      // A backslash escapes a quote only in an E'…' string.
      const escapes = i > 0 && (sql[i - 1] === 'E' || sql[i - 1] === 'e');
      i++;
      while (i < n) {
        if (escapes && sql[i] === '\\') i += 2;
        else if (sql[i] === "'" && sql[i + 1] === "'") i += 2;
        else if (sql[i] === "'") break;
        else i++;
      }
      i++;
    } else if (c === '"') {
      i = sql.indexOf('"', i + 1);
      i = i === -1 ? n : i + 1;
    } else if (c === '-' && sql[i + 1] === '-') {
      i = sql.indexOf('\n', i);
      if (i === -1) i = n;
    } else if (c === '/' && sql[i + 1] === '*') {
      i = sql.indexOf('*/', i + 2);
      i = i === -1 ? n : i + 2;
    } else if (c === '$') {
      const digits = /^\$(\d+)/.exec(sql.slice(i, i + 12));
      if (digits) {
        parts.push(sql.slice(from, i), Number(digits[1]));
        i += digits[0].length;
        from = i;
        continue;
      }
      const tag = /^\$([A-Za-z_][A-Za-z_0-9]*)?\$/.exec(sql.slice(i, i + 66));
      if (tag && !/[A-Za-z_0-9]/.test(sql[i - 1] ?? '')) {
        const end = sql.indexOf(tag[0], i + tag[0].length);
        i = end === -1 ? n : end + tag[0].length;
      } else i++;
    } else i++;
  }
  parts.push(sql.slice(from));
  if (templates.size < MAX_TEMPLATES) templates.set(sql, parts);
  return parts;
}

/** A parameter as a quoted literal of unknown type, or undefined when it has none here. */
export function literalOf(value: unknown): string | undefined {
  if (value === null || value === undefined) return 'NULL';
  switch (typeof value) {
    case 'string':
      return escapeLiteral(value);
    case 'number':
    case 'bigint':
    case 'boolean':
      return `'${String(value)}'`;
    case 'object': {
      if (value instanceof Date) return escapeLiteral(value.toISOString());
      if (value instanceof Uint8Array) {
        return escapeLiteral(
          `\\x${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex')}`,
        );
      }
      if (Array.isArray(value)) return undefined;
      if (typeof (value as { toPostgres?: unknown }).toPostgres === 'function') return undefined;
      // As the driver sends an object parameter: its JSON.
      return escapeLiteral(JSON.stringify(value));
    }
    default:
      return undefined;
  }
}
