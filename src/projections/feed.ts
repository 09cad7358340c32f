/**
 * Feeds: where a projection engine's events come from, and how a physical version's checkpoint
 * is kept. The engine (engine.ts) owns everything else (versions, applying, retries and
 * parking, switch-over, waiters, status), once, for every feed.
 *
 * Two feeds ship: the store's global log (store-feed.ts: the checkpoint is a log position) and
 * the partitions of a Kafka consumer group (tidemark/kafka: the checkpoint is the partitions'
 * offsets plus each stream's applied version). Either way the checkpoint is written in the
 * read-model transaction that holds the changes it covers.
 */
import type {
  ConsistencyToken,
  Logger,
  ProjectionDefinition,
  ProjectionSink,
  ProjectionState,
  RecordedEvent,
  PersonalDataReader,
  Upcasters,
} from '../core/index.ts';
import type { ProjectionApplier, SlotWork } from './applier.ts';
import type { FeedKind, ProjectionRow } from './ledger.ts';

export type { FeedKind } from './ledger.ts';
export type { SlotWork } from './applier.ts';

/** One physical version of one projection, as an engine runs it. */
export interface Slot {
  readonly definition: ProjectionDefinition;
  readonly name: string;
  /** The physical version. */
  readonly version: number;
  readonly applier: ProjectionApplier;
  state: ProjectionState | 'stopped';
  /** The highest global log position this process has applied (for status and tokens). */
  position: number;
}

/** One Kafka partition of a Kafka-fed version, in status. */
export interface PartitionStatus {
  readonly topic: string;
  readonly partition: number;
  /** The next offset to apply, as stored in the read-model database (the start when none yet). */
  readonly offset: number;
  /** The end a read_committed reader sees (the last stable offset). */
  readonly end: number;
  readonly lag: number;
  /** Whether this process owns the partition now. */
  readonly owned: boolean;
}

/** What a feed can tell of a version's lag. */
export interface FeedLag {
  /** Events (store) or records (Kafka) not applied yet. */
  lagEvents: number;
  /** Age of the oldest one not applied yet (0 when caught up). */
  lagSeconds: number;
  /** Store-fed: the store's head when read. */
  head?: number;
  /** Kafka-fed: per partition. */
  partitions?: PartitionStatus[];
}

/** A batch from a feed: all its events, and what each version must do with them. */
export interface FeedBatch {
  /** Every event of the batch, in feed order. */
  readonly events: readonly RecordedEvent[];
  /** What `slot` must apply and save; undefined when the batch holds nothing for it. */
  forSlot(slot: Slot): SlotWork | undefined;
}

/** What a feed reader is given by its engine. */
export interface FeedHost {
  readonly sink: ProjectionSink;
  readonly logger: Logger;
  /** Aborted when the engine stops. */
  readonly signal: AbortSignal;
  /** The versions the engine runs now. */
  slots(): readonly Slot[];
  /** Tells the engine that something watchers may wait for changed (an assignment, say). */
  changed(): void;
}

/** A feed opened for one engine: reads batches and keeps the checkpoints of its versions. */
export interface FeedReader {
  /** Loads the checkpoints of the engine's versions and starts reading (a Kafka feed joins its group). */
  start(): Promise<void>;
  /**
   * The next batch, or undefined after an idle turn (nothing new within the feed's wait).
   * Rejects on a read error; the engine retries with backoff and calls {@link resync}.
   */
  next(): Promise<FeedBatch | undefined>;
  /** Kafka: the partitions this member owns now. */
  readonly assignment?: readonly { topic: string; partition: number }[];
  /** Ends a wait in {@link next} early (new slots, a waiter, stop). */
  wake(): void;
  /** Versions were added or removed: load the new ones' checkpoints, reposition. */
  slotsChanged(): Promise<void>;
  /** Re-reads the stored checkpoints after a contested or failed batch, and repositions. */
  resync(): Promise<void>;
  /** Where "caught up" is now: a target {@link reached} compares against. */
  target(): Promise<unknown>;
  /** True when `slot` has applied everything up to `target` (every member of a group counted). */
  reached(slot: Slot, target: unknown): Promise<boolean>;
  /** True when `slot` has applied everything the feed holds now (for a switch-over). */
  caughtUp(slot: Slot): Promise<boolean>;
  lag(slot: Slot): Promise<FeedLag>;
  /**
   * Whether this process's commits can tell that `slot` applied the write of `token`: `false`
   * when another process applies it (a partition another member owns).
   */
  canSignal(slot: Slot, token: ConsistencyToken): boolean;
  /** Whether `slot` has applied the token's write, given what it just committed. */
  satisfied(slot: Slot, token: ConsistencyToken, committed: readonly RecordedEvent[]): boolean;
  close(): Promise<void>;
}

/** A source of events for projection engines. */
export interface Feed {
  readonly kind: FeedKind;
  /**
   * Whether a version fed by it keeps each stream's applied version (a feed that may deliver an
   * event twice, or out of global order, needs it).
   */
  readonly dedupeByStream: boolean;
  /** The upcasters engines use when given none (a store's own). */
  readonly upcasters?: Upcasters;
  /** Opens sealed personal fields at consumption (a protecting store's own). */
  readonly personalData?: PersonalDataReader;
  /**
   * The consumer group (or other shared identity) of an engine running `rows`; engines that
   * share it share the work. `shared`: the engine of a host's active versions. Absent for
   * feeds without groups.
   */
  groupFor?(rows: readonly Pick<ProjectionRow, 'name' | 'version'>[], shared?: boolean): string;
  /** Opens a reader for an engine. `group` names the engine's share of the work (see groupFor). */
  open(host: FeedHost, group: string | undefined): FeedReader;
  /** The lag of versions of this feed seen from any process (operations, the CLI). */
  lagOf(sink: ProjectionSink, row: ProjectionRow): Promise<FeedLag>;
  /**
   * True for a read error no retry cures (the position is outside what the source holds, the
   * source is gone): the engine then stops, with the error as `lastError`, instead of retrying.
   */
  isFatal?(error: unknown): boolean;
  /** Releases what the feed holds across engines (connections for lag reads). */
  close?(): Promise<void>;
}
