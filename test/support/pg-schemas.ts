/**
 * Fresh PostgreSQL schemas for tests: one test database per file (from services.ts), one schema
 * per test inside it, so fixtures never see each other's tables and need no cleanup order.
 */
import pg from 'pg';
import { uniqueName, type TestDatabase } from './services.ts';

export interface SchemaSource {
  /** The file's database. */
  readonly db: TestDatabase;
  /** A schema name no other test uses (created by whoever migrates it first). */
  schema(label?: string): string;
  /** Runs SQL on the file's database with a short-lived connection. */
  sql<Row extends pg.QueryResultRow = Record<string, unknown>>(
    text: string,
    values?: unknown[],
  ): Promise<Row[]>;
  /** Drops the database. */
  drop(): Promise<void>;
}

/**
 * Schemas in a file's database. The file creates the database itself with
 * `createTestDatabase` (which is how scripts/test.mjs knows it needs PostgreSQL):
 *
 * ```ts
 * before(async () => { source = schemaSource(await createTestDatabase('label')); });
 * after(() => source.drop());
 * ```
 */
export function schemaSource(db: TestDatabase): SchemaSource {
  return {
    db,
    schema: (prefix = 's') => uniqueName(prefix),
    async sql<Row extends pg.QueryResultRow>(text: string, values: unknown[] = []) {
      const client = new pg.Client({ connectionString: db.url });
      await client.connect();
      try {
        return (await client.query<Row>(text, values)).rows;
      } finally {
        await client.end();
      }
    },
    drop: () => db.drop(),
  };
}
