/**
 * Subject keys in the SQLite file, beside the events they protect (docs/personal-data.md).
 *
 * Forgetting overwrites the key with NULL; `secure_delete` (set on the write connection) makes
 * SQLite zero the old bytes in the page instead of leaving them in free space, and `scrub`
 * truncates the WAL so that no old frame keeps them either.
 */
import type Database from 'better-sqlite3';
import {
  ClosedError,
  validateSubject,
  type Migration,
  type SubjectKey,
  type SubjectKeyStore,
} from '../core/index.ts';
import { SqliteDatabase } from './database.ts';

export const subjectKeyMigrations: readonly Migration[] = [
  {
    version: 1,
    description: 'subject keys and the streams holding their personal data',
    sql: `
      -- One row per data subject for ever: key is NULL once forgotten (a tombstone, so that
      -- new personal data for the subject is refused rather than sealed under a new key).
      CREATE TABLE tm_subject_keys (
        subject TEXT PRIMARY KEY,
        key_id TEXT NOT NULL,
        key BLOB,
        created_at INTEGER NOT NULL,
        forgotten_at INTEGER
      );
      CREATE TABLE tm_subject_streams (
        subject TEXT NOT NULL,
        stream_id TEXT NOT NULL,
        PRIMARY KEY (subject, stream_id)
      );
      CREATE INDEX tm_subject_streams_stream ON tm_subject_streams (stream_id);
    `,
  },
];

interface KeyRow {
  subject: string;
  key_id: string;
  key: Buffer | null;
  created_at: number;
  forgotten_at: number | null;
}

const toKey = (row: KeyRow): SubjectKey => ({
  subject: row.subject,
  keyId: row.key_id,
  key: row.key === null ? undefined : new Uint8Array(row.key),
  createdAt: new Date(row.created_at),
  forgottenAt: row.forgotten_at === null ? undefined : new Date(row.forgotten_at),
});

export class SqliteSubjectKeyStore implements SubjectKeyStore {
  readonly database: SqliteDatabase;
  readonly #owns: boolean;
  readonly #stmt: Record<
    'read' | 'insert' | 'readOne' | 'link' | 'subjectsOf' | 'streamsOf' | 'forget',
    Database.Statement
  >;

  /** Opens (or shares) the database and applies the key store's migrations. */
  constructor(database: string | SqliteDatabase) {
    this.#owns = typeof database === 'string';
    this.database = typeof database === 'string' ? new SqliteDatabase(database) : database;
    this.database.migrate('subject-keys', subjectKeyMigrations);
    const db = this.database.writer;
    // Deleted content is overwritten with zeros, not left in free page space.
    db.pragma('secure_delete = ON');
    const reader = this.database.reader;
    const columns = 'subject, key_id, key, created_at, forgotten_at';
    this.#stmt = {
      read: reader.prepare(
        `SELECT ${columns} FROM tm_subject_keys WHERE subject IN (SELECT value FROM json_each(?))`,
      ),
      readOne: db.prepare(`SELECT ${columns} FROM tm_subject_keys WHERE subject = ?`),
      insert: db.prepare(
        `INSERT INTO tm_subject_keys (subject, key_id, key, created_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (subject) DO NOTHING`,
      ),
      link: db.prepare(
        `INSERT INTO tm_subject_streams (subject, stream_id) VALUES (?, ?)
         ON CONFLICT DO NOTHING`,
      ),
      subjectsOf: reader.prepare(
        'SELECT subject FROM tm_subject_streams WHERE stream_id = ? ORDER BY subject',
      ),
      streamsOf: reader.prepare(
        'SELECT stream_id FROM tm_subject_streams WHERE subject = ? ORDER BY stream_id',
      ),
      forget: db.prepare(
        `UPDATE tm_subject_keys SET key = NULL, forgotten_at = ?
         WHERE subject = ? AND key IS NOT NULL`,
      ),
    };
  }

  async readKeys(subjects: readonly string[]): Promise<Map<string, SubjectKey>> {
    this.#open();
    const found = new Map<string, SubjectKey>();
    if (subjects.length === 0) return found;
    for (const row of this.#stmt.read.all(JSON.stringify(subjects)) as KeyRow[]) {
      found.set(row.subject, toKey(row));
    }
    return found;
  }

  async createKey(subject: string, keyId: string, key: Uint8Array): Promise<SubjectKey> {
    this.#open();
    validateSubject(subject);
    return this.database.write(() => {
      this.#stmt.insert.run(subject, keyId, Buffer.from(key), Date.now());
      return toKey(this.#stmt.readOne.get(subject) as KeyRow);
    });
  }

  async linkStream(subject: string, streamId: string): Promise<void> {
    this.#open();
    await this.database.write(() => this.#stmt.link.run(subject, streamId));
  }

  async subjectsOf(streamId: string): Promise<string[]> {
    this.#open();
    return (this.#stmt.subjectsOf.all(streamId) as { subject: string }[]).map((r) => r.subject);
  }

  async streamsOf(subject: string): Promise<string[]> {
    this.#open();
    return (this.#stmt.streamsOf.all(subject) as { stream_id: string }[]).map((r) => r.stream_id);
  }

  async forget(subject: string): Promise<'forgotten' | 'already_forgotten' | 'unknown'> {
    this.#open();
    return this.database.write(() => {
      if (this.#stmt.forget.run(Date.now(), subject).changes === 1) return 'forgotten';
      return this.#stmt.readOne.get(subject) ? 'already_forgotten' : 'unknown';
    });
  }

  async scrub(): Promise<void> {
    this.#open();
    await this.database.checkpointTruncate();
  }

  async close(): Promise<void> {
    if (this.#owns) await this.database.close();
  }

  #open(): void {
    if (this.database.closed) throw new ClosedError('SqliteSubjectKeyStore');
  }
}
