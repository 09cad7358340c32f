import type Database from 'better-sqlite3';
import { InvalidArgumentError, type SqlExecutor } from '../core/index.ts';

interface Compiled {
  statement: Database.Statement;
  /** For each `?` in the compiled SQL, which `$n` parameter (0-based) it takes. */
  order: number[];
}

/**
 * Rewrites `$1, $2, …` placeholders into `?` (better-sqlite3 binds positional `?` only),
 * remembering which parameter each takes, so `$1` may appear several times. Quoted strings,
 * quoted identifiers and comments are left alone.
 */
export function compilePlaceholders(sql: string): { text: string; order: number[] } {
  let text = '';
  const order: number[] = [];
  for (let i = 0; i < sql.length;) {
    const ch = sql[i]!;
    if (ch === "'" || ch === '"' || ch === '`') {
      const end = sql.indexOf(ch, i + 1);
      const stop = end === -1 ? sql.length : end + 1;
      text += sql.slice(i, stop);
      i = stop;
    } else if (ch === '-' && sql[i + 1] === '-') {
      const end = sql.indexOf('\n', i);
      const stop = end === -1 ? sql.length : end;
      text += sql.slice(i, stop);
      i = stop;
    } else if (ch === '$' && /[0-9]/.test(sql[i + 1] ?? '')) {
      let j = i + 1;
      while (j < sql.length && /[0-9]/.test(sql[j]!)) j++;
      order.push(Number(sql.slice(i + 1, j)) - 1);
      text += '?';
      i = j;
    } else {
      text += ch;
      i++;
    }
  }
  return { text, order };
}

function bindable(value: unknown): unknown {
  if (value === undefined) return null;
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (value instanceof Date) return value.toISOString();
  return value;
}

/** A {@link SqlExecutor} over one better-sqlite3 connection, with a bounded statement cache. */
export class SqliteSqlExecutor implements SqlExecutor {
  readonly dialect = 'sqlite' as const;
  readonly #db: Database.Database;
  readonly #cache = new Map<string, Compiled>();
  readonly #cacheSize: number;

  constructor(db: Database.Database, cacheSize = 256) {
    this.#db = db;
    this.#cacheSize = cacheSize;
  }

  #compile(sql: string): Compiled {
    let compiled = this.#cache.get(sql);
    if (compiled) {
      // Refresh its place in the insertion order (least recently used goes first).
      this.#cache.delete(sql);
      this.#cache.set(sql, compiled);
      return compiled;
    }
    const { text, order } = compilePlaceholders(sql);
    compiled = { statement: this.#db.prepare(text), order };
    this.#cache.set(sql, compiled);
    if (this.#cache.size > this.#cacheSize) this.#cache.delete(this.#cache.keys().next().value!);
    return compiled;
  }

  #args(compiled: Compiled, params: readonly unknown[]): unknown[] {
    const args = new Array(compiled.order.length);
    for (let i = 0; i < compiled.order.length; i++) {
      const index = compiled.order[i]!;
      if (index < 0 || index >= params.length) {
        throw new InvalidArgumentError(
          'params',
          `the SQL uses $${index + 1} but ${params.length} values were given`,
        );
      }
      args[i] = bindable(params[index]);
    }
    return args;
  }

  async query<Row = Record<string, unknown>>(
    sql: string,
    params: readonly unknown[] = [],
  ): Promise<Row[]> {
    return this.querySync<Row>(sql, params);
  }

  async execute(sql: string, params: readonly unknown[] = []): Promise<{ rowCount: number }> {
    return this.executeSync(sql, params);
  }

  querySync<Row = Record<string, unknown>>(sql: string, params: readonly unknown[] = []): Row[] {
    const compiled = this.#compile(sql);
    return compiled.statement.all(...this.#args(compiled, params)) as Row[];
  }

  executeSync(sql: string, params: readonly unknown[] = []): { rowCount: number } {
    const compiled = this.#compile(sql);
    if (compiled.order.length === 0 && params.length === 0 && !compiled.statement.reader) {
      return { rowCount: compiled.statement.run().changes };
    }
    if (compiled.statement.reader) {
      return { rowCount: compiled.statement.all(...this.#args(compiled, params)).length };
    }
    return { rowCount: compiled.statement.run(...this.#args(compiled, params)).changes };
  }
}
