/**
 * Versioned schema migrations on PostgreSQL, safe when several processes start at once.
 *
 * Each run is one transaction that first takes a transaction-level advisory lock named after
 * the schema: a second process starting at the same moment waits on the lock, then finds the
 * migrations applied and does nothing. DDL is transactional in PostgreSQL, so a failed
 * migration leaves no half-made schema behind.
 */
import type pg from 'pg';
import { StorageError, type Migration } from '../core/index.ts';
import { quoteIdent } from './connection.ts';

/** The advisory lock key of a schema's migrations (64-bit, from the schema's name). */
export const MIGRATION_LOCK_SQL = `SELECT pg_advisory_xact_lock(hashtextextended('tidemark:migrate:' || $1, 0))`;

export interface AppliedMigration {
  component: string;
  version: number;
  description: string;
  appliedAt: Date;
}

/**
 * Applies the migrations of `component` that the schema has not seen, in one transaction, on
 * `client` (which must not be in a transaction). Creates the schema when it is missing. Throws
 * {@link StorageError} when the schema was migrated by a newer version of Tidemark.
 *
 * Migration SQL runs with `search_path` set to the schema, so it names tables unqualified.
 */
export async function migrateSchema(
  client: pg.ClientBase,
  schema: string,
  component: string,
  migrations: readonly Migration[],
): Promise<void> {
  const q = quoteIdent(schema);
  const known = migrations.reduce((max, m) => Math.max(max, m.version), 0);
  await client.query('BEGIN');
  try {
    await client.query(MIGRATION_LOCK_SQL, [schema]);
    // Checked rather than CREATE SCHEMA IF NOT EXISTS: that needs the CREATE privilege on the
    // database even when the schema is there, which a least-privileged role may not have.
    const exists = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
    if (exists.rowCount === 0) await client.query(`CREATE SCHEMA ${q}`);
    await client.query(`CREATE TABLE IF NOT EXISTS ${q}.tm_migrations (
      component text NOT NULL,
      version integer NOT NULL,
      description text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (component, version)
    )`);
    const { rows } = await client.query<{ version: number | null }>(
      `SELECT max(version) AS version FROM ${q}.tm_migrations WHERE component = $1`,
      [component],
    );
    const applied = rows[0]?.version ?? 0;
    if (applied > known) {
      throw new StorageError(
        `schema ${schema}: ${component} is at version ${applied}; this Tidemark knows up to ${known}`,
      );
    }
    const pending = [...migrations]
      .sort((a, b) => a.version - b.version)
      .filter((m) => m.version > applied);
    if (pending.length > 0) {
      await client.query(`SET LOCAL search_path TO ${q}`);
      for (const migration of pending) {
        await client.query(migration.sql);
        await client.query(
          `INSERT INTO ${q}.tm_migrations (component, version, description) VALUES ($1, $2, $3)`,
          [component, migration.version, migration.description],
        );
      }
    }
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  }
}

/**
 * Checks, without changing anything, that `component` is at exactly the version this code
 * knows (for roles that may not run DDL: migrate with another role first).
 */
export async function checkSchemaVersion(
  client: pg.ClientBase,
  schema: string,
  component: string,
  migrations: readonly Migration[],
): Promise<void> {
  const known = migrations.reduce((max, m) => Math.max(max, m.version), 0);
  const table = await client.query(`SELECT to_regclass($1) AS t`, [
    `${quoteIdent(schema)}.tm_migrations`,
  ]);
  let applied = 0;
  if (table.rows[0]?.t) {
    const { rows } = await client.query<{ version: number | null }>(
      `SELECT max(version) AS version FROM ${quoteIdent(schema)}.tm_migrations WHERE component = $1`,
      [component],
    );
    applied = rows[0]?.version ?? 0;
  }
  if (applied !== known) {
    throw new StorageError(
      `schema ${schema}: ${component} is at version ${applied}, this Tidemark needs ${known}; ` +
        'run the migrations (open the store once with migrate: true)',
    );
  }
}

/** The migrations applied to a schema, per component. */
export async function appliedMigrations(
  client: pg.ClientBase,
  schema: string,
): Promise<AppliedMigration[]> {
  const { rows } = await client.query<{
    component: string;
    version: number;
    description: string;
    applied_at: Date;
  }>(
    `SELECT component, version, description, applied_at FROM ${quoteIdent(schema)}.tm_migrations
     ORDER BY component, version`,
  );
  return rows.map((r) => ({
    component: r.component,
    version: r.version,
    description: r.description,
    appliedAt: r.applied_at,
  }));
}
