/**
 * The event store port: what the command side and the projection runners need of a store of
 * record, and nothing more. Adapters (memory, SQLite, PostgreSQL) implement it and must pass the
 * store contract suite in `tidemark/testing`.
 */
import type { ExpectedVersion } from './expected-version.ts';
import type { Event, NewEvent, RecordedEvent } from './messages.ts';
import type { PersonalDataReader } from './personal-data.ts';
import type { Upcasters } from './upcasting.ts';

export interface AppendOptions {
  /** What the stream must look like for the append to go ahead. Default: `ANY`. */
  expectedVersion?: ExpectedVersion;
}

export interface AppendResult<E extends Event = Event> {
  /** The stream's version after the append: pass it as the next `expectedVersion`. */
  nextExpectedVersion: number;
  /** Global position of the last appended event. */
  position: number;
  /** The appended events as recorded (ids, versions, positions, time). */
  events: RecordedEvent<E>[];
}

export interface ReadStreamOptions {
  /** `forwards` (oldest first, the default) or `backwards` (newest first). */
  direction?: 'forwards' | 'backwards';
  /** Lowest version to read (inclusive). Default 1. */
  fromVersion?: number;
  /** Highest version to read (inclusive). Default: the end. */
  toVersion?: number;
  /** At most this many events, counted in the read's direction. */
  maxCount?: number;
}

export interface ReadAllOptions {
  /** Read events whose position is greater than this. Default 0 (from the start). */
  after?: number;
  /** At most this many events. Default 1000. */
  maxCount?: number;
  /**
   * `false`: events exactly as stored, in their stored schema, without the store's upcasters
   * (what a relay publishes, and what projection engines read: they upcast at consumption).
   * Default `true`.
   */
  upcast?: boolean;
}

export interface StreamInfo {
  streamId: string;
  version: number;
  /** Position of the stream's last event. */
  position: number;
  updatedAt: Date;
}

export interface ListStreamsOptions {
  /** Only stream ids starting with this prefix (for example `order-`). */
  prefix?: string;
  /** Stream ids sorting after this one (keyset pagination). */
  after?: string;
  /** At most this many streams. Default 100. */
  limit?: number;
}

export interface EventStore {
  /**
   * Appends events to one stream atomically, after checking `expectedVersion`. All or nothing:
   * a failed check throws `WrongExpectedVersionError` and writes nothing.
   */
  appendToStream<E extends Event>(
    streamId: string,
    events: readonly NewEvent<E>[],
    options?: AppendOptions,
  ): Promise<AppendResult<E>>;

  /** Reads one stream's events (upcast to the current schema). */
  readStream<E extends Event = Event>(
    streamId: string,
    options?: ReadStreamOptions,
  ): Promise<RecordedEvent<E>[]>;

  /**
   * Optional, for stores that keep snapshots too and where a read costs a round trip: the
   * stream's snapshot (whatever its state version, as `readSnapshot` gives it) and, in the same
   * read, the events after it when its state version is `stateVersion`, or all of the stream's
   * events when it is not (or there is none). The command handler uses it when its snapshot
   * store is this store.
   */
  readFromSnapshot?<E extends Event = Event>(
    streamId: string,
    stateVersion: number,
  ): Promise<{ snapshot: Snapshot | undefined; events: RecordedEvent<E>[] }>;

  /**
   * Reads the global log in position order. Gap-safe: it never returns an event while an event
   * with a lower position may still commit, so a reader that resumes after the last position it
   * saw misses nothing.
   */
  readAll<E extends Event = Event>(options?: ReadAllOptions): Promise<RecordedEvent<E>[]>;

  /** The stream's current version; 0 when it does not exist. */
  streamVersion(streamId: string): Promise<number>;

  /** The highest position a reader may safely read up to now (0 for an empty store). */
  headPosition(): Promise<number>;

  /** Lists streams by id. */
  listStreams(options?: ListStreamsOptions): Promise<StreamInfo[]>;

  /**
   * Calls `listener` after appends commit (in this process, or in others where the adapter can
   * tell), with a position at or below the new head. A hint to wake up, never the data itself.
   */
  onAppended(listener: (position: number) => void): () => void;

  close(): Promise<void>;

  /**
   * Optional, for stores with an archive (docs/retention.md): whether the stream was moved to
   * the archive. The command handler asks it before deciding on an existing stream, and refuses
   * a command on an archived one with `StreamArchivedError`.
   */
  isArchived?(streamId: string): Promise<boolean>;

  /** The upcasters this store reads with (projection engines use them for raw reads). */
  readonly upcasters?: Upcasters;

  /**
   * Present on a store that seals personal fields (`protectPersonalData`): projection engines
   * fed from its log, or from Kafka, open the fields with it at consumption.
   */
  readonly personalData?: PersonalDataReader;

  /**
   * Optional: the store's identity, a random UUID written once when the store's schema is
   * created (a memory store: one per instance). A copy of the database (a backup restored, a
   * replica promoted) keeps it; another environment's store has its own. The Kafka relay records
   * it in its progress and refuses to resume on progress made from another store.
   */
  storeId?(): Promise<string>;
}

/** A snapshot: a stream's folded state at a version, tagged with the state's schema version. */
export interface Snapshot {
  streamId: string;
  streamVersion: number;
  /** The schema version of `state`; a loader ignores snapshots of any other version. */
  stateVersion: number;
  state: unknown;
  takenAt: Date;
}

export interface SnapshotStore {
  readSnapshot(streamId: string): Promise<Snapshot | undefined>;
  /** Stores the snapshot unless one of a later stream version (same state version) is there. */
  writeSnapshot(snapshot: Omit<Snapshot, 'takenAt'>): Promise<void>;
}

/** The stored outcome of the first execution under an idempotency key. */
export type IdempotencyClaim =
  | {
      outcome: 'claimed';
      /**
       * The key was claimed before by an execution that never completed nor released it (it
       * crashed, say) and whose lease ran out. That execution may have appended its events before
       * it died: look for them before running the command again.
       */
      takenOver?: true;
    }
  | { outcome: 'pending'; fingerprint: string }
  | { outcome: 'completed'; fingerprint: string; response: unknown };

export interface IdempotencyStore {
  /**
   * Claims `key` for a request with the given fingerprint, atomically. `claimed`: run it, then
   * `completeIdempotencyKey` or `releaseIdempotencyKey`. `pending`: another execution holds it
   * (a claim older than `leaseMs` counts as abandoned and is taken over: `claimed` with
   * `takenOver`). `completed`: the stored response of the first execution.
   */
  claimIdempotencyKey(key: string, fingerprint: string, leaseMs: number): Promise<IdempotencyClaim>;
  completeIdempotencyKey(key: string, response: unknown): Promise<void>;
  releaseIdempotencyKey(key: string): Promise<void>;
}

/** What the stores of this package implement. */
export type FullEventStore = EventStore & SnapshotStore & IdempotencyStore;
