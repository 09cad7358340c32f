/**
 * Subject keys in PostgreSQL, in the store's schema (docs/personal-data.md).
 *
 * Forgetting sets the key to NULL and keeps a tombstone. PostgreSQL keeps the old row version
 * until VACUUM reclaims it, so `scrub` vacuums the table; what VACUUM leaves in page free space
 * and in WAL segments (and archives, and backups) is beyond its reach: docs say so.
 */
import type pg from 'pg';
import {
  ClosedError,
  silentLogger,
  validateSubject,
  type Logger,
  type Migration,
  type SubjectKey,
  type SubjectKeyStore,
} from '../core/index.ts';
import {
  connectWithRetry,
  createPool,
  isConnectionError,
  resolveConnection,
  unavailable,
  withConnection,
  type PostgresConnectionOptions,
} from './connection.ts';
import { migrateSchema } from './migrations.ts';

const COMPONENT = 'PostgresSubjectKeyStore';

export const subjectKeyMigrations: readonly Migration[] = [
  {
    version: 1,
    description: 'subject keys and the streams holding their personal data',
    sql: `
      -- One row per data subject for ever: key is NULL once forgotten (a tombstone, so that
      -- new personal data for the subject is refused rather than sealed under a new key).
      CREATE TABLE tm_subject_keys (
        subject text PRIMARY KEY,
        key_id text NOT NULL,
        key bytea,
        created_at timestamptz NOT NULL DEFAULT now(),
        forgotten_at timestamptz
      );
      CREATE TABLE tm_subject_streams (
        subject text NOT NULL,
        stream_id text NOT NULL,
        PRIMARY KEY (subject, stream_id)
      );
      CREATE INDEX tm_subject_streams_stream ON tm_subject_streams (stream_id);
    `,
  },
];

export interface PostgresSubjectKeyStoreOptions extends PostgresConnectionOptions {
  logger?: Logger;
}

interface KeyRow {
  subject: string;
  key_id: string;
  key: Buffer | null;
  created_at: Date;
  forgotten_at: Date | null;
}

const toKey = (row: KeyRow): SubjectKey => ({
  subject: row.subject,
  keyId: row.key_id,
  key: row.key === null ? undefined : new Uint8Array(row.key),
  createdAt: new Date(row.created_at),
  forgottenAt: row.forgotten_at === null ? undefined : new Date(row.forgotten_at),
});

export class PostgresSubjectKeyStore implements SubjectKeyStore {
  readonly schema: string;
  readonly #pool: pg.Pool;
  readonly #q: string;
  readonly #windowMs: number;
  #closed = false;

  private constructor(pool: pg.Pool, schema: string, quoted: string, windowMs: number) {
    this.#pool = pool;
    this.schema = schema;
    this.#q = quoted;
    this.#windowMs = windowMs;
  }

  /** Connects (a small pool of its own) and applies the key store's migrations. */
  static async connect(options: PostgresSubjectKeyStoreOptions): Promise<PostgresSubjectKeyStore> {
    const { schema, quotedSchema, config, reconnectWindowMs } = resolveConnection({
      poolSize: 2,
      ...options,
    });
    const logger = options.logger ?? silentLogger;
    const pool = createPool(config, (error) =>
      logger.warn({ err: error }, 'an idle PostgreSQL connection failed; it will be replaced'),
    );
    try {
      const client = await connectWithRetry(
        pool,
        COMPONENT,
        Date.now() + reconnectWindowMs,
        () => false,
      );
      try {
        await migrateSchema(client, schema, 'subject-keys', subjectKeyMigrations);
        client.release();
      } catch (error) {
        client.release(isConnectionError(error) ? (error as Error) : undefined);
        throw isConnectionError(error) ? unavailable(COMPONENT, error) : error;
      }
    } catch (error) {
      await pool.end().catch(() => {});
      throw error;
    }
    return new PostgresSubjectKeyStore(pool, schema, quotedSchema, reconnectWindowMs);
  }

  async readKeys(subjects: readonly string[]): Promise<Map<string, SubjectKey>> {
    const found = new Map<string, SubjectKey>();
    if (subjects.length === 0) return found;
    const rows = await this.#query<KeyRow>(
      `SELECT subject, key_id, key, created_at, forgotten_at FROM ${this.#q}.tm_subject_keys
       WHERE subject = ANY($1::text[])`,
      [subjects],
    );
    for (const row of rows) found.set(row.subject, toKey(row));
    return found;
  }

  async createKey(subject: string, keyId: string, key: Uint8Array): Promise<SubjectKey> {
    validateSubject(subject);
    // One statement: insert unless there, then read whichever row won (ours or a racer's).
    const rows = await this.#query<KeyRow>(
      `WITH inserted AS (
         INSERT INTO ${this.#q}.tm_subject_keys (subject, key_id, key) VALUES ($1, $2, $3)
         ON CONFLICT (subject) DO NOTHING
         RETURNING subject, key_id, key, created_at, forgotten_at
       )
       SELECT * FROM inserted
       UNION ALL
       SELECT subject, key_id, key, created_at, forgotten_at FROM ${this.#q}.tm_subject_keys
       WHERE subject = $1 AND NOT EXISTS (SELECT 1 FROM inserted)`,
      [subject, keyId, Buffer.from(key)],
    );
    return toKey(rows[0]!);
  }

  async linkStream(subject: string, streamId: string): Promise<void> {
    await this.#query(
      `INSERT INTO ${this.#q}.tm_subject_streams (subject, stream_id) VALUES ($1, $2)
       ON CONFLICT DO NOTHING`,
      [subject, streamId],
    );
  }

  async subjectsOf(streamId: string): Promise<string[]> {
    const rows = await this.#query<{ subject: string }>(
      `SELECT subject FROM ${this.#q}.tm_subject_streams WHERE stream_id = $1 ORDER BY subject`,
      [streamId],
    );
    return rows.map((r) => r.subject);
  }

  async streamsOf(subject: string): Promise<string[]> {
    const rows = await this.#query<{ stream_id: string }>(
      `SELECT stream_id FROM ${this.#q}.tm_subject_streams WHERE subject = $1 ORDER BY stream_id`,
      [subject],
    );
    return rows.map((r) => r.stream_id);
  }

  async forget(subject: string): Promise<'forgotten' | 'already_forgotten' | 'unknown'> {
    const rows = await this.#query<{ outcome: string }>(
      `WITH forgotten AS (
         UPDATE ${this.#q}.tm_subject_keys SET key = NULL, forgotten_at = now()
         WHERE subject = $1 AND key IS NOT NULL RETURNING 1
       )
       SELECT CASE
         WHEN EXISTS (SELECT 1 FROM forgotten) THEN 'forgotten'
         WHEN EXISTS (SELECT 1 FROM ${this.#q}.tm_subject_keys WHERE subject = $1) THEN 'already_forgotten'
         ELSE 'unknown' END AS outcome`,
      [subject],
    );
    return rows[0]!.outcome as 'forgotten' | 'already_forgotten' | 'unknown';
  }

  async scrub(): Promise<void> {
    // VACUUM cannot run in a transaction block: a plain statement on a pooled connection.
    await this.#query(`VACUUM ${this.#q}.tm_subject_keys`);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#pool.end();
  }

  async #query<Row>(sql: string, params: unknown[] = []): Promise<Row[]> {
    if (this.#closed) throw new ClosedError(COMPONENT);
    return withConnection(
      this.#pool,
      COMPONENT,
      this.#windowMs,
      () => this.#closed,
      async (c) => {
        const result = await c.query(sql, params);
        return result.rows as Row[];
      },
    );
  }
}
