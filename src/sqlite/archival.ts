/**
 * The archive index of a SQLite store (tables of its migration 3): which segments exist and
 * which streams live in them. Moving a stream out of the hot tables is one transaction here.
 */
import type Database from 'better-sqlite3';
import type {
  ArchivalTables,
  ArchiveCandidate,
  ArchiveSegmentInfo,
  RawStoredEvent,
} from '../core/index.ts';
import type { SqliteDatabase } from './database.ts';

interface StoredRow {
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

interface SegmentRow {
  segment_id: string;
  state: 'writing' | 'sealed';
  min_position: number;
  max_position: number;
  streams: number;
  events: number;
}

export class SqliteArchivalTables implements ArchivalTables {
  readonly #database: SqliteDatabase;
  readonly #reader: Database.Database;

  constructor(database: SqliteDatabase) {
    this.#database = database;
    this.#reader = database.reader;
  }

  async candidates(options: {
    recordedBefore: Date;
    afterPosition: number;
    limit: number;
    prefix?: string;
  }): Promise<ArchiveCandidate[]> {
    const prefix = options.prefix ?? '';
    // Streams by their first event (stream_version 1 in the hot table: an archived stream has
    // none). The stream holding the log's last position is never a candidate: SQLite hands out
    // max(rowid) + 1, so deleting the last rows would hand their positions out again.
    const rows = this.#reader
      .prepare(
        `SELECT e.stream_id, s.version, e.position
         FROM tm_events e JOIN tm_streams s ON s.stream_id = e.stream_id
         WHERE e.position > ? AND e.stream_version = 1 AND s.updated_at < ?
           AND e.stream_id >= ? AND e.stream_id < ?
           AND s.position < (SELECT max(position) FROM tm_events)
         ORDER BY e.position LIMIT ?`,
      )
      .all(
        options.afterPosition,
        options.recordedBefore.getTime(),
        prefix,
        `${prefix}\u{10FFFF}`,
        options.limit,
      ) as { stream_id: string; version: number; position: number }[];
    return rows.map((r) => ({
      streamId: r.stream_id,
      version: r.version,
      firstPosition: r.position,
    }));
  }

  async readStored(streamIds: readonly string[]): Promise<RawStoredEvent[]> {
    const rows = this.#reader
      .prepare(
        `SELECT position, stream_id, stream_version, event_id, type, schema_version, data, metadata,
                recorded_at
         FROM tm_events WHERE stream_id IN (SELECT value FROM json_each(?)) ORDER BY position`,
      )
      .all(JSON.stringify(streamIds)) as StoredRow[];
    return rows.map((r) => ({
      position: r.position,
      streamId: r.stream_id,
      streamVersion: r.stream_version,
      eventId: r.event_id,
      type: r.type,
      schemaVersion: r.schema_version,
      data: r.data,
      metadata: r.metadata,
      recordedAt: r.recorded_at,
    }));
  }

  async beginSegment(segmentId: string): Promise<void> {
    await this.#database.write(() =>
      this.#database.writer
        .prepare(
          `INSERT INTO tm_archive_segments (segment_id, state, created_at) VALUES (?, 'writing', ?)`,
        )
        .run(segmentId, Date.now()),
    );
  }

  async sealSegment(
    segment: Omit<ArchiveSegmentInfo, 'state'>,
    streams: readonly { streamId: string; version: number }[],
  ): Promise<boolean> {
    const db = this.#database.writer;
    return this.#database.write(() => {
      // One writer: nothing appends between these checks and the deletes.
      const version = db.prepare('SELECT version, position FROM tm_streams WHERE stream_id = ?');
      const head =
        (db.prepare('SELECT max(position) AS head FROM tm_events').get() as { head: number | null })
          .head ?? 0;
      for (const { streamId, version: expected } of streams) {
        const row = version.get(streamId) as { version: number; position: number } | undefined;
        if (!row || row.version !== expected || row.position >= head) return false;
      }
      const now = Date.now();
      const archive = db.prepare(
        'INSERT INTO tm_archived_streams (stream_id, segment_id, version, archived_at) VALUES (?, ?, ?, ?)',
      );
      const events = db.prepare('DELETE FROM tm_events WHERE stream_id = ?');
      const snapshots = db.prepare('DELETE FROM tm_snapshots WHERE stream_id = ?');
      let deleted = 0;
      for (const { streamId, version: v } of streams) {
        archive.run(streamId, segment.segmentId, v, now);
        deleted += events.run(streamId).changes;
        snapshots.run(streamId);
      }
      // The segment must hold exactly what left the hot tables.
      if (deleted !== segment.events) {
        throw new Error(
          `archive segment ${segment.segmentId}: ${segment.events} events written, ${deleted} in the hot tables`,
        );
      }
      const sealed = db
        .prepare(
          `UPDATE tm_archive_segments SET state = 'sealed', min_position = ?, max_position = ?,
             streams = ?, events = ? WHERE segment_id = ? AND state = 'writing'`,
        )
        .run(
          segment.minPosition,
          segment.maxPosition,
          segment.streams,
          segment.events,
          segment.segmentId,
        );
      if (sealed.changes !== 1) throw new Error(`archive segment ${segment.segmentId} not begun`);
      return true;
    });
  }

  async dropSegment(segmentId: string): Promise<void> {
    await this.#database.write(() =>
      this.#database.writer
        .prepare(`DELETE FROM tm_archive_segments WHERE segment_id = ? AND state = 'writing'`)
        .run(segmentId),
    );
  }

  async segments(): Promise<ArchiveSegmentInfo[]> {
    const rows = this.#reader
      .prepare(
        `SELECT segment_id, state, min_position, max_position, streams, events
         FROM tm_archive_segments ORDER BY min_position, segment_id`,
      )
      .all() as SegmentRow[];
    return rows.map(segmentInfo);
  }

  async segmentOf(streamId: string): Promise<string | undefined> {
    const row = this.#reader
      .prepare('SELECT segment_id FROM tm_archived_streams WHERE stream_id = ?')
      .get(streamId) as { segment_id: string } | undefined;
    return row?.segment_id;
  }
}

function segmentInfo(row: SegmentRow): ArchiveSegmentInfo {
  return {
    segmentId: row.segment_id,
    state: row.state,
    minPosition: Number(row.min_position),
    maxPosition: Number(row.max_position),
    streams: Number(row.streams),
    events: Number(row.events),
  };
}
