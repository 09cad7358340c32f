import type Database from 'better-sqlite3';
import {
  ClosedError,
  DuplicateEventIdError,
  StreamArchivedError,
  checkExpectedVersion,
  type ArchivalTables,
  noUpcasters,
  type AppendOptions,
  type AppendResult,
  type Event,
  type ExpectedVersion,
  type FullEventStore,
  type IdempotencyClaim,
  type ListStreamsOptions,
  type NewEvent,
  type ReadAllOptions,
  type ReadStreamOptions,
  type RecordedEvent,
  type Snapshot,
  type StreamInfo,
  type Upcasters,
} from '../core/index.ts';
import {
  allReadRange,
  appendExpectation,
  listLimit,
  parseStoredJson,
  prepareEvents,
  streamReadRange,
  toJson,
  validateStreamId,
  type PreparedEvent,
} from '../core/preparation.ts';
import { SqliteArchivalTables } from './archival.ts';
import { SqliteDatabase, type Migration, type SqliteDatabaseOptions } from './database.ts';

/** The event store's schema, one migration per change. Never edit a released migration. */
export const eventStoreMigrations: readonly Migration[] = [
  {
    version: 1,
    description: 'events, streams, snapshots, idempotency',
    sql: `
      -- position is the rowid: SQLite has one writer and rows are never deleted, so positions
      -- grow in commit order with no gaps, and the global log needs no further guard.
      CREATE TABLE tm_events (
        position INTEGER PRIMARY KEY,
        stream_id TEXT NOT NULL,
        stream_version INTEGER NOT NULL,
        event_id TEXT NOT NULL,
        type TEXT NOT NULL,
        schema_version INTEGER NOT NULL,
        data TEXT NOT NULL,
        metadata TEXT NOT NULL,
        recorded_at INTEGER NOT NULL
      );
      CREATE UNIQUE INDEX tm_events_stream ON tm_events (stream_id, stream_version);
      CREATE UNIQUE INDEX tm_events_event_id ON tm_events (event_id);
      CREATE TABLE tm_streams (
        stream_id TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        position INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE TABLE tm_snapshots (
        stream_id TEXT PRIMARY KEY,
        stream_version INTEGER NOT NULL,
        state_version INTEGER NOT NULL,
        state TEXT NOT NULL,
        taken_at INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE TABLE tm_idempotency (
        key TEXT PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        response TEXT,
        claimed_at INTEGER NOT NULL,
        completed_at INTEGER
      ) WITHOUT ROWID;
    `,
  },
  {
    version: 2,
    description: 'the store identity (tm_store)',
    sql: `
      -- One row: the store's identity, a random UUID (version 4) made once, here. A copy of the
      -- file keeps it; the Kafka relay records it and refuses progress made from another store.
      CREATE TABLE tm_store (
        singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
        store_id TEXT NOT NULL,
        created_at INTEGER NOT NULL
      );
      INSERT INTO tm_store (singleton, store_id, created_at) VALUES (1,
        lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' ||
        substr(lower(hex(randomblob(2))), 2) || '-' ||
        substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2) || '-' ||
        lower(hex(randomblob(6))),
        CAST(strftime('%s', 'now') AS INTEGER) * 1000);
    `,
  },
  {
    version: 3,
    description: 'the archive index (tm_archive_segments, tm_archived_streams)',
    sql: `
      -- Segments of the archive (docs/retention.md). 'writing': begun, its file may be partial
      -- and its streams are still hot; 'sealed': its streams live there and not in tm_events.
      CREATE TABLE tm_archive_segments (
        segment_id TEXT PRIMARY KEY,
        state TEXT NOT NULL CHECK (state IN ('writing', 'sealed')),
        min_position INTEGER NOT NULL DEFAULT 0,
        max_position INTEGER NOT NULL DEFAULT 0,
        streams INTEGER NOT NULL DEFAULT 0,
        events INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE TABLE tm_archived_streams (
        stream_id TEXT PRIMARY KEY,
        segment_id TEXT NOT NULL REFERENCES tm_archive_segments (segment_id),
        version INTEGER NOT NULL,
        archived_at INTEGER NOT NULL
      ) WITHOUT ROWID;
      -- An archived stream keeps its tm_streams row (its version answers expected-version checks
      -- and keeps its id taken) but takes no more events: every append updates that row, so this
      -- refuses it inside the append's own transaction.
      CREATE TRIGGER tm_streams_archived BEFORE UPDATE ON tm_streams
      WHEN EXISTS (SELECT 1 FROM tm_archived_streams a WHERE a.stream_id = OLD.stream_id)
      BEGIN
        SELECT RAISE(ABORT, 'tidemark: stream_archived');
      END;
    `,
  },
];

export interface SqliteEventStoreOptions extends SqliteDatabaseOptions {
  upcasters?: Upcasters;
  /** The clock that stamps `recordedAt`. Default: the system clock. */
  now?: () => Date;
  /**
   * How often, in ms, to look for appends made by other processes while someone listens through
   * `onAppended` (appends of this process are announced at once). Default 100.
   */
  pollIntervalMs?: number;
}

interface EventRow {
  position: number;
  stream_id: string;
  stream_version: number;
  event_id: string;
  type: string;
  schema_version: number;
  data: string;
  metadata: string;
  recorded_at: number;
}

const EVENT_COLUMNS =
  'position, stream_id, stream_version, event_id, type, schema_version, data, metadata, recorded_at';

/**
 * The embedded event store: one SQLite file in WAL mode, appends grouped into shared commits.
 *
 * Open it with a path (it owns the file) or with a {@link SqliteDatabase} shared with the
 * projections' read models (one file, one writer for the whole process).
 */
export class SqliteEventStore implements FullEventStore {
  readonly database: SqliteDatabase;
  readonly #ownsDatabase: boolean;
  readonly #upcasters: Upcasters;
  readonly #now: () => Date;
  readonly #pollIntervalMs: number;
  readonly #listeners = new Set<(position: number) => void>();
  #pollTimer: NodeJS.Timeout | undefined;
  #lastSeenHead = 0;
  #unsubscribeCommit: () => void;
  #lastAppended = 0;
  #closed = false;

  readonly #stmt: {
    streamVersion: Database.Statement<[string], { version: number }>;
    insertEvent: Database.Statement<
      [string, number, string, string, number, string, string, number]
    >;
    upsertStream: Database.Statement<[string, number, number, number]>;
    readForwards: Database.Statement<[string, number, number, number], EventRow>;
    readBackwards: Database.Statement<[string, number, number, number], EventRow>;
    readForwardsAll: Database.Statement<[string, number, number], EventRow>;
    readBackwardsAll: Database.Statement<[string, number, number], EventRow>;
    readAll: Database.Statement<[number, number], EventRow>;
    head: Database.Statement<[], { head: number | null }>;
    listStreams: Database.Statement<[string, string, string, number], StreamRow>;
    readSnapshot: Database.Statement<[string], SnapshotRow>;
    writeSnapshot: Database.Statement<[string, number, number, string, number]>;
    claim: Database.Statement<[string], IdempotencyRow>;
    insertClaim: Database.Statement<[string, string, number]>;
    complete: Database.Statement<[number, string, string]>;
    release: Database.Statement<[string]>;
    dataVersion: Database.Statement<[], { data_version: number }>;
    storeId: Database.Statement<[], { store_id: string }>;
  };

  constructor(database: string | SqliteDatabase, options: SqliteEventStoreOptions = {}) {
    this.#ownsDatabase = typeof database === 'string';
    this.database = typeof database === 'string' ? new SqliteDatabase(database, options) : database;
    this.#upcasters = options.upcasters ?? noUpcasters;
    this.#now = options.now ?? (() => new Date());
    this.#pollIntervalMs = options.pollIntervalMs ?? 100;
    this.database.migrate('event-store', eventStoreMigrations);
    const db = this.database.writer;
    const reader = this.database.reader;
    this.#stmt = {
      streamVersion: db.prepare('SELECT version FROM tm_streams WHERE stream_id = ?'),
      insertEvent: db.prepare(
        `INSERT INTO tm_events (stream_id, stream_version, event_id, type, schema_version, data, metadata, recorded_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      upsertStream: db.prepare(
        `INSERT INTO tm_streams (stream_id, version, position, updated_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, position = excluded.position,
         updated_at = excluded.updated_at`,
      ),
      readForwards: reader.prepare(
        `SELECT ${EVENT_COLUMNS} FROM tm_events
         WHERE stream_id = ? AND stream_version >= ? AND stream_version <= ?
         ORDER BY stream_version ASC LIMIT ?`,
      ),
      readBackwards: reader.prepare(
        `SELECT ${EVENT_COLUMNS} FROM tm_events
         WHERE stream_id = ? AND stream_version >= ? AND stream_version <= ?
         ORDER BY stream_version DESC LIMIT ?`,
      ),
      // Without LIMIT, for reads of the whole range (a load reads the whole tail). SQLite marks
      // a bound LIMIT as a value the planner uses, so binding one makes the statement
      // re-prepare itself at its next run: about 15 µs on every read.
      readForwardsAll: reader.prepare(
        `SELECT ${EVENT_COLUMNS} FROM tm_events
         WHERE stream_id = ? AND stream_version >= ? AND stream_version <= ?
         ORDER BY stream_version ASC`,
      ),
      readBackwardsAll: reader.prepare(
        `SELECT ${EVENT_COLUMNS} FROM tm_events
         WHERE stream_id = ? AND stream_version >= ? AND stream_version <= ?
         ORDER BY stream_version DESC`,
      ),
      readAll: reader.prepare(
        `SELECT ${EVENT_COLUMNS} FROM tm_events WHERE position > ? ORDER BY position ASC LIMIT ?`,
      ),
      head: reader.prepare('SELECT max(position) AS head FROM tm_events'),
      listStreams: reader.prepare(
        `SELECT stream_id, version, position, updated_at FROM tm_streams
         WHERE stream_id >= ? AND stream_id < ? AND stream_id > ? ORDER BY stream_id LIMIT ?`,
      ),
      readSnapshot: reader.prepare(
        'SELECT stream_id, stream_version, state_version, state, taken_at FROM tm_snapshots WHERE stream_id = ?',
      ),
      writeSnapshot: db.prepare(
        `INSERT INTO tm_snapshots (stream_id, stream_version, state_version, state, taken_at)
         VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (stream_id) DO UPDATE SET stream_version = excluded.stream_version,
           state_version = excluded.state_version, state = excluded.state, taken_at = excluded.taken_at
         WHERE excluded.state_version <> tm_snapshots.state_version
            OR excluded.stream_version >= tm_snapshots.stream_version`,
      ),
      claim: db.prepare(
        'SELECT fingerprint, response, claimed_at FROM tm_idempotency WHERE key = ?',
      ),
      insertClaim: db.prepare(
        `INSERT INTO tm_idempotency (key, fingerprint, claimed_at) VALUES (?, ?, ?)
         ON CONFLICT (key) DO UPDATE SET fingerprint = excluded.fingerprint, claimed_at = excluded.claimed_at`,
      ),
      complete: db.prepare(
        'UPDATE tm_idempotency SET completed_at = ?, response = ? WHERE key = ? AND response IS NULL',
      ) as never,
      release: db.prepare('DELETE FROM tm_idempotency WHERE key = ? AND response IS NULL'),
      dataVersion: reader.prepare('PRAGMA data_version') as never,
      storeId: reader.prepare('SELECT store_id FROM tm_store WHERE singleton = 1'),
    };
    this.#unsubscribeCommit = this.database.onCommit(() => {
      if (this.#lastAppended > 0) {
        const position = this.#lastAppended;
        this.#lastAppended = 0;
        this.#notify(position);
      }
    });
  }

  /** The upcasters reads apply (projection engines use them for their raw reads). */
  get upcasters(): Upcasters {
    return this.#upcasters;
  }

  async appendToStream<E extends Event>(
    streamId: string,
    events: readonly NewEvent<E>[],
    options?: AppendOptions,
  ): Promise<AppendResult<E>> {
    this.#assertOpen();
    validateStreamId(streamId);
    const expected = appendExpectation(options);
    const prepared = prepareEvents(events, this.#upcasters, () => crypto.randomUUID());
    const recordedAt = this.#now().getTime();
    const result = await this.database.write(() =>
      this.#append(streamId, expected, prepared, recordedAt),
    );
    return result as AppendResult<E>;
  }

  /** Runs inside the group-commit transaction. */
  #append(
    streamId: string,
    expected: ExpectedVersion,
    prepared: PreparedEvent[],
    recordedAt: number,
  ): AppendResult {
    const stmt = this.#stmt;
    const current = stmt.streamVersion.get(streamId)?.version ?? 0;
    checkExpectedVersion(streamId, expected, current);
    const recorded: RecordedEvent[] = new Array(prepared.length);
    const at = new Date(recordedAt);
    let position = 0;
    for (let i = 0; i < prepared.length; i++) {
      const event = prepared[i]!;
      const version = current + i + 1;
      try {
        position = Number(
          stmt.insertEvent.run(
            streamId,
            version,
            event.eventId,
            event.type,
            event.schemaVersion,
            event.data,
            event.metadata,
            recordedAt,
          ).lastInsertRowid,
        );
      } catch (error) {
        if (
          (error as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE' &&
          /event_id/.test(String(error))
        ) {
          throw new DuplicateEventIdError(event.eventId, { cause: error });
        }
        throw error;
      }
      recorded[i] = this.#upcasters.upcast({
        eventId: event.eventId,
        streamId,
        streamVersion: version,
        position,
        type: event.type,
        schemaVersion: event.schemaVersion,
        data: event.dataObject,
        metadata: event.metadataObject,
        recordedAt: at,
      }) as RecordedEvent;
    }
    const nextExpectedVersion = current + prepared.length;
    try {
      stmt.upsertStream.run(streamId, nextExpectedVersion, position, recordedAt);
    } catch (error) {
      // The trigger of migration 3; the savepoint of this write undoes the inserts above.
      if (/tidemark: stream_archived/.test(String(error))) {
        throw new StreamArchivedError(streamId, { cause: error });
      }
      throw error;
    }
    this.#lastAppended = position;
    return { nextExpectedVersion, position, events: recorded };
  }

  async readStream<E extends Event = Event>(
    streamId: string,
    options?: ReadStreamOptions,
  ): Promise<RecordedEvent<E>[]> {
    this.#assertOpen();
    validateStreamId(streamId);
    const { forwards, fromVersion, toVersion, maxCount } = streamReadRange(options);
    const rows =
      maxCount >= Number.MAX_SAFE_INTEGER
        ? (forwards ? this.#stmt.readForwardsAll : this.#stmt.readBackwardsAll).all(
            streamId,
            fromVersion,
            toVersion,
          )
        : (forwards ? this.#stmt.readForwards : this.#stmt.readBackwards).all(
            streamId,
            fromVersion,
            toVersion,
            maxCount,
          );
    return rows.map((row) => this.#toRecorded(row) as RecordedEvent<E>);
  }

  async readAll<E extends Event = Event>(options?: ReadAllOptions): Promise<RecordedEvent<E>[]> {
    this.#assertOpen();
    const { after, maxCount } = allReadRange(options);
    const upcast = options?.upcast !== false;
    return this.#stmt.readAll
      .all(after, maxCount)
      .map((row) => this.#toRecorded(row, upcast) as RecordedEvent<E>);
  }

  async streamVersion(streamId: string): Promise<number> {
    this.#assertOpen();
    validateStreamId(streamId);
    return this.#stmt.streamVersion.get(streamId)?.version ?? 0;
  }

  async headPosition(): Promise<number> {
    this.#assertOpen();
    return this.#stmt.head.get()?.head ?? 0;
  }

  /** The archive index in this file's tables, for `archiveStreams` and `ArchiveAwareStore`. */
  archival(): ArchivalTables {
    this.#assertOpen();
    return new SqliteArchivalTables(this.database);
  }

  /** The identity written when this file's store schema was created (`tm_store`). */
  async storeId(): Promise<string> {
    this.#assertOpen();
    return this.#stmt.storeId.get()!.store_id;
  }

  async listStreams(options: ListStreamsOptions = {}): Promise<StreamInfo[]> {
    this.#assertOpen();
    const limit = listLimit(options.limit);
    const prefix = options.prefix ?? '';
    // Stream ids with the prefix sort between the prefix and the prefix followed by U+10FFFF.
    const rows = this.#stmt.listStreams.all(
      prefix,
      `${prefix}\u{10FFFF}`,
      options.after ?? '',
      limit,
    );
    return rows.map((row) => ({
      streamId: row.stream_id,
      version: row.version,
      position: row.position,
      updatedAt: new Date(row.updated_at),
    }));
  }

  onAppended(listener: (position: number) => void): () => void {
    this.#listeners.add(listener);
    this.#startPolling();
    return () => {
      this.#listeners.delete(listener);
      if (this.#listeners.size === 0) this.#stopPolling();
    };
  }

  async readSnapshot(streamId: string): Promise<Snapshot | undefined> {
    this.#assertOpen();
    validateStreamId(streamId);
    const row = this.#stmt.readSnapshot.get(streamId);
    if (!row) return undefined;
    return {
      streamId: row.stream_id,
      streamVersion: row.stream_version,
      stateVersion: row.state_version,
      state: parseStoredJson(row.state, `snapshot of ${streamId}`),
      takenAt: new Date(row.taken_at),
    };
  }

  async writeSnapshot(snapshot: Omit<Snapshot, 'takenAt'>): Promise<void> {
    this.#assertOpen();
    validateStreamId(snapshot.streamId);
    const state = toJson(snapshot.state, 'snapshot state');
    const takenAt = this.#now().getTime();
    await this.database.write(() =>
      this.#stmt.writeSnapshot.run(
        snapshot.streamId,
        snapshot.streamVersion,
        snapshot.stateVersion,
        state,
        takenAt,
      ),
    );
  }

  async claimIdempotencyKey(
    key: string,
    fingerprint: string,
    leaseMs: number,
  ): Promise<IdempotencyClaim> {
    this.#assertOpen();
    const now = this.#now().getTime();
    return this.database.write((): IdempotencyClaim => {
      const row = this.#stmt.claim.get(key);
      if (row?.response != null) {
        return {
          outcome: 'completed',
          fingerprint: row.fingerprint,
          response: parseStoredJson(row.response, `idempotency record ${key}`),
        };
      }
      if (row && now - row.claimed_at < leaseMs)
        return { outcome: 'pending', fingerprint: row.fingerprint };
      this.#stmt.insertClaim.run(key, fingerprint, now);
      return row ? { outcome: 'claimed', takenOver: true } : { outcome: 'claimed' };
    });
  }

  async completeIdempotencyKey(key: string, response: unknown): Promise<void> {
    this.#assertOpen();
    const text = toJson(response, 'idempotent response');
    const now = this.#now().getTime();
    await this.database.write(() => this.#stmt.complete.run(now, text, key));
  }

  async releaseIdempotencyKey(key: string): Promise<void> {
    this.#assertOpen();
    await this.database.write(() => this.#stmt.release.run(key));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopPolling();
    this.#listeners.clear();
    this.#unsubscribeCommit();
    if (this.#ownsDatabase) await this.database.close();
  }

  #toRecorded(row: EventRow, upcast = true): RecordedEvent {
    const where = `event at position ${row.position}`;
    const event: RecordedEvent = {
      eventId: row.event_id,
      streamId: row.stream_id,
      streamVersion: row.stream_version,
      position: row.position,
      type: row.type,
      schemaVersion: row.schema_version,
      data: parseStoredJson(row.data, where),
      metadata: parseStoredJson(row.metadata, where) as RecordedEvent['metadata'],
      recordedAt: new Date(row.recorded_at),
    };
    return upcast ? this.#upcasters.upcast(event) : event;
  }

  #notify(position: number): void {
    if (position > this.#lastSeenHead) this.#lastSeenHead = position;
    for (const listener of this.#listeners) listener(position);
  }

  /** Other processes' appends: PRAGMA data_version changes when another connection commits. */
  #startPolling(): void {
    if (this.#pollTimer || this.#listeners.size === 0) return;
    let dataVersion = this.#stmt.dataVersion.get()!.data_version;
    this.#pollTimer = setInterval(() => {
      if (this.#closed) return;
      const now = this.#stmt.dataVersion.get()!.data_version;
      if (now === dataVersion) return;
      dataVersion = now;
      const head = this.#stmt.head.get()?.head ?? 0;
      if (head > this.#lastSeenHead) this.#notify(head);
    }, this.#pollIntervalMs);
    this.#pollTimer.unref();
  }

  #stopPolling(): void {
    if (this.#pollTimer) clearInterval(this.#pollTimer);
    this.#pollTimer = undefined;
  }

  #assertOpen(): void {
    if (this.#closed || this.database.closed) throw new ClosedError('SqliteEventStore');
  }
}

interface StreamRow {
  stream_id: string;
  version: number;
  position: number;
  updated_at: number;
}

interface SnapshotRow {
  stream_id: string;
  stream_version: number;
  state_version: number;
  state: string;
  taken_at: number;
}

interface IdempotencyRow {
  fingerprint: string;
  response: string | null;
  claimed_at: number;
}
