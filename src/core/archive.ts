/**
 * The archive's ports (docs/retention.md): what a store of record offers so that old streams
 * can be moved out of its hot tables, and what holds the moved events. Types only: the stores
 * implement the first, `DirectoryArchive` the second, `archiveStreams` and `ArchiveAwareStore`
 * compose them.
 */

/**
 * An event exactly as the store holds it: `data` and `metadata` are the store's own JSON text,
 * never parsed and written again, so an archive copies them byte for byte (encrypted fields
 * included).
 */
export interface RawStoredEvent {
  readonly position: number;
  readonly streamId: string;
  readonly streamVersion: number;
  readonly eventId: string;
  readonly type: string;
  readonly schemaVersion: number;
  readonly data: string;
  readonly metadata: string;
  /** Milliseconds since the epoch. */
  readonly recordedAt: number;
}

/** A stream the archiver may move: finished writing before the cut-off, not archived yet. */
export interface ArchiveCandidate {
  readonly streamId: string;
  readonly version: number;
  /** Position of the stream's first event: candidates come in this order. */
  readonly firstPosition: number;
}

/** A segment of the archive, as the store's index knows it. */
export interface ArchiveSegmentInfo {
  readonly segmentId: string;
  /** `writing`: begun, not sealed (a crash left it; its streams are still hot). */
  readonly state: 'writing' | 'sealed';
  readonly minPosition: number;
  readonly maxPosition: number;
  readonly streams: number;
  readonly events: number;
}

/** The store's side of archival: its index of segments and archived streams, in its own tables. */
export interface ArchivalTables {
  /**
   * Streams whose last event was recorded before `recordedBefore`, not archived, with a first
   * position above `afterPosition`, in first-position order (so that a segment holds a
   * neighbourhood of the log).
   */
  candidates(options: {
    recordedBefore: Date;
    afterPosition: number;
    limit: number;
    prefix?: string;
  }): Promise<ArchiveCandidate[]>;
  /** Every event of the streams, as stored, in position order. */
  readStored(streamIds: readonly string[]): Promise<RawStoredEvent[]>;
  /** Records that a segment is being written (before its file exists). */
  beginSegment(segmentId: string): Promise<void>;
  /**
   * In one transaction: checks that every stream is still at `version` (else changes nothing and
   * answers false), records the streams as archived in the segment, deletes their events and
   * snapshots from the hot tables, and marks the segment sealed with its figures.
   */
  sealSegment(
    segment: Omit<ArchiveSegmentInfo, 'state'>,
    streams: readonly { streamId: string; version: number }[],
  ): Promise<boolean>;
  /** Forgets a segment that was begun and not sealed. */
  dropSegment(segmentId: string): Promise<void>;
  /** Segments, `writing` ones included, by first position. */
  segments(): Promise<ArchiveSegmentInfo[]>;
  /** The sealed segment holding the stream, or undefined when it is not archived. */
  segmentOf(streamId: string): Promise<string | undefined>;
}

/** Where segments are kept (a directory of files by default). */
export interface SegmentStore {
  /** Writes a segment durably, all or nothing; answers its size in bytes. */
  write(segmentId: string, events: readonly RawStoredEvent[]): Promise<number>;
  /** Reads a whole segment; throws when it is missing or damaged. */
  read(segmentId: string): Promise<RawStoredEvent[]>;
  /** Removes a segment; a missing one is not an error. */
  delete(segmentId: string): Promise<void>;
}

/** Which streams to archive, given all of a stream's events as stored (oldest first). */
export type ArchivePolicy = (events: readonly RawStoredEvent[]) => boolean;
