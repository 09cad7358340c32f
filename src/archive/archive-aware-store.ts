/**
 * A store of record whose old streams may live in an archive: the hot store for everything,
 * plus the archive for streams the hot tables no longer hold. Give it, not the hot store, to
 * everything that reads: the command handler, the HTTP routes, the relay, store-fed projections
 * and the Kafka feed's backfill. See docs/retention.md.
 *
 * - `readStream` of an archived stream reads its segment (the hot tables hold none of its events).
 * - `readAll` merges the hot log with the archived events in position order. Positions are
 *   never reused (SQLite keeps the log's last row hot, PostgreSQL takes them from a sequence),
 *   so archived positions are no gap: they are served from the archive, up to the hot log's
 *   gap-safe head (so the hot store's gap safety holds for them too). The hot rows are read
 *   before the segment index, so a stream archived in between shows twice, never not at all:
 *   duplicates (same position) are dropped.
 * - `headPosition` is the hot store's: the stream holding the log's last position stays hot.
 * - `isArchived` lets the command handler refuse commands on archived streams; an append that
 *   races with the archiving is refused by the hot store itself (`stream_archived`).
 */
import {
  type AppendOptions,
  type AppendResult,
  type ArchivalTables,
  type Event,
  type FullEventStore,
  type IdempotencyClaim,
  type ListStreamsOptions,
  type NewEvent,
  type RawStoredEvent,
  type ReadAllOptions,
  type ReadStreamOptions,
  type RecordedEvent,
  type SegmentStore,
  type Snapshot,
  type StreamInfo,
  type Upcasters,
} from '../core/index.ts';
import { allReadRange, parseStoredJson, streamReadRange } from '../core/preparation.ts';

/** A hot store that keeps an archive index in its tables (the SQLite and PostgreSQL stores). */
export type ArchivableStore = FullEventStore & { archival(): ArchivalTables };

export interface ArchiveAwareStoreOptions {
  /** Decoded segments kept in memory (reads of the global log go through them). Default 8. */
  readonly cachedSegments?: number;
}

export class ArchiveAwareStore implements FullEventStore {
  readonly hot: ArchivableStore;
  readonly tables: ArchivalTables;
  readonly segments: SegmentStore;
  readonly #cacheSize: number;
  readonly #cache = new Map<string, Promise<RawStoredEvent[]>>();

  constructor(
    hot: ArchivableStore,
    segments: SegmentStore,
    options: ArchiveAwareStoreOptions = {},
  ) {
    this.hot = hot;
    this.tables = hot.archival();
    this.segments = segments;
    this.#cacheSize = Math.max(1, options.cachedSegments ?? 8);
  }

  get upcasters(): Upcasters | undefined {
    return this.hot.upcasters;
  }

  appendToStream<E extends Event>(
    streamId: string,
    events: readonly NewEvent<E>[],
    options?: AppendOptions,
  ): Promise<AppendResult<E>> {
    return this.hot.appendToStream(streamId, events, options);
  }

  async readStream<E extends Event = Event>(
    streamId: string,
    options?: ReadStreamOptions,
  ): Promise<RecordedEvent<E>[]> {
    const hot = await this.hot.readStream<E>(streamId, options);
    if (hot.length > 0) return hot;
    const segmentId = await this.tables.segmentOf(streamId);
    if (segmentId === undefined) return hot;
    const { forwards, fromVersion, toVersion, maxCount } = streamReadRange(options);
    const events = (await this.#segment(segmentId)).filter(
      (e) =>
        e.streamId === streamId && e.streamVersion >= fromVersion && e.streamVersion <= toVersion,
    );
    if (!forwards) events.reverse();
    return events.slice(0, maxCount).map((e) => this.#recorded(e, true) as RecordedEvent<E>);
  }

  async readFromSnapshot<E extends Event = Event>(
    streamId: string,
    stateVersion: number,
  ): Promise<{ snapshot: Snapshot | undefined; events: RecordedEvent<E>[] }> {
    const hot = this.hot.readFromSnapshot
      ? await this.hot.readFromSnapshot<E>(streamId, stateVersion)
      : undefined;
    if (hot && (hot.snapshot || hot.events.length > 0)) return hot;
    // Archived streams have no snapshot left: all their events, from wherever they are.
    const snapshot = hot ? undefined : await this.hot.readSnapshot(streamId);
    const from = snapshot?.stateVersion === stateVersion ? snapshot.streamVersion + 1 : 1;
    return { snapshot, events: await this.readStream<E>(streamId, { fromVersion: from }) };
  }

  async readAll<E extends Event = Event>(options?: ReadAllOptions): Promise<RecordedEvent<E>[]> {
    const { after, maxCount } = allReadRange(options);
    const upcast = options?.upcast !== false;
    const hot = await this.hot.readAll<E>({ after, maxCount, upcast: false });
    // Archived events are returned up to the hot log's gap-safe head only: above it an append
    // may still commit a lower position. That never holds them for long: the stream holding the
    // hot log's last position is never archived, so the head passes every archived position as
    // soon as that row is settled. With a full batch, what lies past its end is a later batch's.
    const upper = hot.length === maxCount ? hot.at(-1)!.position : await this.hot.headPosition();
    const segments = (await this.tables.segments()).filter(
      (s) => s.state === 'sealed' && s.maxPosition > after && s.minPosition <= upper,
    );
    let merged: RecordedEvent<E>[] = hot;
    if (segments.length > 0) {
      const archived: RawStoredEvent[] = [];
      for (const s of segments) {
        for (const e of await this.#segment(s.segmentId)) {
          if (e.position > after && e.position <= upper) archived.push(e);
        }
      }
      archived.sort((a, b) => a.position - b.position);
      merged = [];
      let i = 0;
      let j = 0;
      while (merged.length < maxCount && (i < hot.length || j < archived.length)) {
        const h = hot[i];
        const a = archived[j];
        if (a === undefined || (h !== undefined && h.position <= a.position)) {
          if (a !== undefined && h!.position === a.position) j++; // archived meanwhile
          merged.push(h!);
          i++;
        } else {
          merged.push(this.#recorded(a, false) as RecordedEvent<E>);
          j++;
        }
      }
    }
    const upcasters = this.hot.upcasters;
    return upcast && upcasters
      ? merged.map((e) => upcasters.upcast(e) as RecordedEvent<E>)
      : merged;
  }

  streamVersion(streamId: string): Promise<number> {
    // The hot store keeps an archived stream's row (and version).
    return this.hot.streamVersion(streamId);
  }

  /**
   * The hot store's head: the stream holding the log's last position is never archived, so it
   * is at or past every archived position, and it is what `readAll` reads up to.
   */
  headPosition(): Promise<number> {
    return this.hot.headPosition();
  }

  listStreams(options?: ListStreamsOptions): Promise<StreamInfo[]> {
    return this.hot.listStreams(options);
  }

  onAppended(listener: (position: number) => void): () => void {
    return this.hot.onAppended(listener);
  }

  async isArchived(streamId: string): Promise<boolean> {
    return (await this.tables.segmentOf(streamId)) !== undefined;
  }

  async storeId(): Promise<string> {
    if (!this.hot.storeId) throw new Error('the hot store has no storeId()');
    return this.hot.storeId();
  }

  readSnapshot(streamId: string): Promise<Snapshot | undefined> {
    return this.hot.readSnapshot(streamId);
  }

  writeSnapshot(snapshot: Omit<Snapshot, 'takenAt'>): Promise<void> {
    return this.hot.writeSnapshot(snapshot);
  }

  claimIdempotencyKey(
    key: string,
    fingerprint: string,
    leaseMs: number,
  ): Promise<IdempotencyClaim> {
    return this.hot.claimIdempotencyKey(key, fingerprint, leaseMs);
  }

  completeIdempotencyKey(key: string, response: unknown): Promise<void> {
    return this.hot.completeIdempotencyKey(key, response);
  }

  releaseIdempotencyKey(key: string): Promise<void> {
    return this.hot.releaseIdempotencyKey(key);
  }

  close(): Promise<void> {
    this.#cache.clear();
    return this.hot.close();
  }

  /** A segment's events, through a small LRU of decoded segments. */
  #segment(segmentId: string): Promise<RawStoredEvent[]> {
    let events = this.#cache.get(segmentId);
    if (events) {
      this.#cache.delete(segmentId);
    } else {
      events = this.segments.read(segmentId);
      events.catch(() => this.#cache.delete(segmentId));
    }
    this.#cache.set(segmentId, events);
    while (this.#cache.size > this.#cacheSize) {
      this.#cache.delete(this.#cache.keys().next().value!);
    }
    return events;
  }

  #recorded(e: RawStoredEvent, upcast: boolean): RecordedEvent {
    const where = `archived event at position ${e.position}`;
    const event: RecordedEvent = {
      eventId: e.eventId,
      streamId: e.streamId,
      streamVersion: e.streamVersion,
      position: e.position,
      type: e.type,
      schemaVersion: e.schemaVersion,
      data: parseStoredJson(e.data, where),
      metadata: parseStoredJson(e.metadata, where) as RecordedEvent['metadata'],
      recordedAt: new Date(e.recordedAt),
    };
    const upcasters = this.hot.upcasters;
    return upcast && upcasters ? upcasters.upcast(event) : event;
  }
}
