/**
 * The archive index of a PostgreSQL store (tables of its migration 4): which segments exist and
 * which streams live in them. Moving streams out of the hot tables is one transaction, holding
 * each stream's append lock (the advisory lock `tm_append` takes), so an append either commits
 * before the move (and the move, seeing another version, changes nothing) or is refused after it.
 */
import type pg from 'pg';
import {
  StorageError,
  isTidemarkError,
  type ArchivalTables,
  type ArchiveCandidate,
  type ArchiveSegmentInfo,
  type RawStoredEvent,
} from '../core/index.ts';
import { quoteIdent, withConnection } from './connection.ts';
import { lockKey } from './schema.ts';

const COMPONENT = 'PostgresEventStore';

interface SegmentRow {
  segment_id: string;
  state: 'writing' | 'sealed';
  min_position: string;
  max_position: string;
  streams: number;
  events: number;
}

export class PostgresArchivalTables implements ArchivalTables {
  readonly #pool: pg.Pool;
  readonly #s: string;
  readonly #streamSeed: string;
  readonly #windowMs: number;
  readonly #closed: () => boolean;

  constructor(pool: pg.Pool, schema: string, windowMs: number, closed: () => boolean) {
    this.#pool = pool;
    this.#s = quoteIdent(schema);
    // The same key tm_append locks a stream with (schema.ts).
    this.#streamSeed = lockKey(`tidemark:stream:${schema}`);
    this.#windowMs = windowMs;
    this.#closed = closed;
  }

  async #query<Row extends pg.QueryResultRow>(text: string, values: unknown[]): Promise<Row[]> {
    try {
      return await withConnection(
        this.#pool,
        COMPONENT,
        this.#windowMs,
        this.#closed,
        async (client) => (await client.query<Row>(text, values)).rows,
      );
    } catch (error) {
      if (isTidemarkError(error)) throw error;
      throw new StorageError(`archive index: ${(error as Error).message}`, { cause: error });
    }
  }

  async candidates(options: {
    recordedBefore: Date;
    afterPosition: number;
    limit: number;
    prefix?: string;
  }): Promise<ArchiveCandidate[]> {
    const prefix = options.prefix ?? '';
    // Streams by their first event (stream_version 1 in the hot table: an archived stream has
    // none), so that a segment holds a neighbourhood of the log. The stream holding the log's
    // last position stays, so the hot store's head never goes back (the relay compares it).
    const rows = await this.#query<{ stream_id: string; version: string; position: string }>(
      `SELECT e.stream_id, s.version, e.position
       FROM ${this.#s}.tm_events e JOIN ${this.#s}.tm_streams s ON s.stream_id = e.stream_id
       WHERE e.position > $1 AND e.stream_version = 1 AND s.updated_at < $2
         AND starts_with(e.stream_id, $3)
         AND s.position < (SELECT max(position) FROM ${this.#s}.tm_events)
       ORDER BY e.position LIMIT $4`,
      [options.afterPosition, options.recordedBefore, prefix, options.limit],
    );
    return rows.map((r) => ({
      streamId: r.stream_id,
      version: Number(r.version),
      firstPosition: Number(r.position),
    }));
  }

  async readStored(streamIds: readonly string[]): Promise<RawStoredEvent[]> {
    // data::text: jsonb's own text form, what the store holds (it is read back the same way).
    const rows = await this.#query<{
      position: string;
      stream_id: string;
      stream_version: string;
      event_id: string;
      type: string;
      schema_version: number;
      data: string;
      metadata: string;
      recorded_at: Date;
    }>(
      `SELECT position, stream_id, stream_version, event_id, type, schema_version,
              data::text AS data, metadata::text AS metadata, recorded_at
       FROM ${this.#s}.tm_events WHERE stream_id = ANY($1::text[]) ORDER BY position`,
      [streamIds],
    );
    return rows.map((r) => ({
      position: Number(r.position),
      streamId: r.stream_id,
      streamVersion: Number(r.stream_version),
      eventId: r.event_id,
      type: r.type,
      schemaVersion: r.schema_version,
      data: r.data,
      metadata: r.metadata,
      recordedAt: r.recorded_at.getTime(),
    }));
  }

  async beginSegment(segmentId: string): Promise<void> {
    await this.#query(
      `INSERT INTO ${this.#s}.tm_archive_segments (segment_id, state) VALUES ($1, 'writing')`,
      [segmentId],
    );
  }

  async sealSegment(
    segment: Omit<ArchiveSegmentInfo, 'state'>,
    streams: readonly { streamId: string; version: number }[],
  ): Promise<boolean> {
    const s = this.#s;
    const ids = streams.map((x) => x.streamId);
    const versions = streams.map((x) => x.version);
    // Not retried on a broken connection: its outcome would be unknown. The caller's next run
    // finds the segment sealed or still 'writing', and either is consistent.
    const client = await this.#pool.connect();
    try {
      await client.query('BEGIN');
      // The streams' append locks, in one order (two movers never wait on each other in a cycle).
      await client.query(
        `SELECT pg_advisory_xact_lock(hashtextextended(id, $2)) FROM unnest($1::text[]) AS t (id) ORDER BY id`,
        [ids, this.#streamSeed],
      );
      const current = await client.query<{ n: string }>(
        `SELECT count(*) AS n FROM ${s}.tm_streams st
         JOIN unnest($1::text[], $2::bigint[]) AS w (id, version) ON w.id = st.stream_id
         WHERE st.version = w.version
           AND st.position < (SELECT max(position) FROM ${s}.tm_events)`,
        [ids, versions],
      );
      if (Number(current.rows[0]!.n) !== streams.length) {
        await client.query('ROLLBACK');
        return false;
      }
      await client.query(
        `INSERT INTO ${s}.tm_archived_streams (stream_id, segment_id, version)
         SELECT id, $3, version FROM unnest($1::text[], $2::bigint[]) AS w (id, version)`,
        [ids, versions, segment.segmentId],
      );
      const deleted = await client.query(
        `DELETE FROM ${s}.tm_events WHERE stream_id = ANY($1::text[])`,
        [ids],
      );
      if (deleted.rowCount !== segment.events) {
        throw new StorageError(
          `archive segment ${segment.segmentId}: ${segment.events} events written, ${deleted.rowCount} in the hot tables`,
        );
      }
      await client.query(`DELETE FROM ${s}.tm_snapshots WHERE stream_id = ANY($1::text[])`, [ids]);
      const sealed = await client.query(
        `UPDATE ${s}.tm_archive_segments SET state = 'sealed', min_position = $2,
           max_position = $3, streams = $4, events = $5 WHERE segment_id = $1 AND state = 'writing'`,
        [
          segment.segmentId,
          segment.minPosition,
          segment.maxPosition,
          segment.streams,
          segment.events,
        ],
      );
      if (sealed.rowCount !== 1) {
        throw new StorageError(`archive segment ${segment.segmentId} was not begun`);
      }
      await client.query('COMMIT');
      return true;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw isTidemarkError(error)
        ? error
        : new StorageError(`archive seal: ${(error as Error).message}`, { cause: error });
    } finally {
      client.release();
    }
  }

  async dropSegment(segmentId: string): Promise<void> {
    await this.#query(
      `DELETE FROM ${this.#s}.tm_archive_segments WHERE segment_id = $1 AND state = 'writing'`,
      [segmentId],
    );
  }

  async segments(): Promise<ArchiveSegmentInfo[]> {
    const rows = await this.#query<SegmentRow>(
      `SELECT segment_id, state, min_position, max_position, streams, events
       FROM ${this.#s}.tm_archive_segments ORDER BY min_position, segment_id`,
      [],
    );
    return rows.map((row) => ({
      segmentId: row.segment_id,
      state: row.state,
      minPosition: Number(row.min_position),
      maxPosition: Number(row.max_position),
      streams: Number(row.streams),
      events: Number(row.events),
    }));
  }

  async segmentOf(streamId: string): Promise<string | undefined> {
    const rows = await this.#query<{ segment_id: string }>(
      `SELECT segment_id FROM ${this.#s}.tm_archived_streams WHERE stream_id = $1`,
      [streamId],
    );
    return rows[0]?.segment_id;
  }
}
