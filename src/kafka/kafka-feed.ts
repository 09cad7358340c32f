/**
 * Kafka as a projection feed: a consumer-group member whose partitions feed the versions of an
 * engine, with each version's checkpoint kept in the read-model database.
 *
 * Exactly one effect per event, whatever crashes or rebalances:
 *
 * - Offsets live in the read-model database (`tm_projection_offsets`, one row per version and
 *   partition), written in the same transaction as the changes they cover. On every assignment
 *   each partition starts at the lowest offset its versions stored, never at Kafka's committed
 *   offsets, and each version applies only the records at or past its own.
 * - The offset write is a compare-and-set on the offset the batch started from. The client
 *   learns of a rebalance late (after the new owner may have started), so two members can
 *   briefly work on one partition: whichever commits second finds the offset moved, rolls back,
 *   and re-reads it.
 * - Each stream's applied version is kept too (`tm_projection_streams`, the feed's
 *   `dedupeByStream`): an event at or below it has no second effect. That also answers
 *   consistency tokens in this mode (by stream, not by global position).
 *
 * A record that is not a Tidemark event at all is parked under a stream of its own per
 * partition (see {@link INVALID_RECORD_TYPE}), so nothing is dropped silently.
 *
 * Bounded retention: when a version must start a partition below its log start offset (a new
 * version or group on a topic whose retention dropped its beginning, or a version that fell
 * behind what retention keeps), the missing part is filled from the store of record first
 * (`backfill`, see backfill.ts), in the same read-model transactions and checkpoint rules;
 * without a store the feed stops with {@link KafkaHistoryTruncatedError}, never goes on partial.
 */
import {
  ClosedError,
  InvalidArgumentError,
  type ConsistencyToken,
  type PersonalDataReader,
  type RecordedEvent,
  type SqlExecutor,
} from '../core/index.ts';
import {
  ProgressMovedError,
  ledger,
  partitionKey,
  type Feed,
  type FeedBatch,
  type FeedHost,
  type FeedLag,
  type FeedReader,
  type PartitionStatus,
  type Slot,
  type SlotWork,
} from '../projections/index.ts';
import type { KafkaConnection } from './connection.ts';
import {
  KafkaConsumer,
  type AssignmentChange,
  type ConsumedBatch,
  type PartitionStart,
} from './consumer.ts';
import {
  firstRetainedPosition,
  planFill,
  readFill,
  type Fill,
  type FillPartition,
  type KafkaBackfillOptions,
} from './backfill.ts';
import { KafkaHistoryTruncatedError, KafkaOperationError, KafkaWireFormatError } from './errors.ts';
import { KafkaReader } from './reader.ts';
import type { ConsumedRecord } from './records.ts';
import { partitionFor } from './topics.ts';
import { ForeignSourceError, decodeFrom } from './wire.ts';

/** The type of the placeholder event a record that could not be decoded is parked as. */
export const INVALID_RECORD_TYPE = '$tidemark.invalid-record';
/** The type of the placeholder event a record from a producer not listed in `sources` is parked as. */
export const FOREIGN_RECORD_TYPE = '$tidemark.foreign-record';

/** Options of {@link kafkaFeed}. */
export interface KafkaFeedOptions {
  readonly connection: KafkaConnection;
  /** The event topics to read (e.g. `['order-events']`). */
  readonly topics: readonly string[];
  /**
   * Prefix of the consumer groups (one per application and environment). Default `tidemark`.
   * The active versions of a host share `<prefix>-projections`; a version being built (or run
   * on its own) has `<prefix>-projection-<name>-v<version>`. Processes in one group should run
   * the same projections: partitions a member owns are applied only by the versions it runs.
   */
  readonly groupPrefix?: string;
  /**
   * One consumer group for every engine of this feed, instead of the groups derived from
   * `groupPrefix`: for a single runner (a tool, a test) that names its group itself.
   */
  readonly groupId?: string;
  /** Static group membership: a stable id per process (see KafkaConsumerOptions). */
  readonly groupInstanceId?: string;
  /**
   * The `ce_source` of the application's relays (e.g. `['tidemark://orders']`). A record with
   * another source (a second environment or another team writing to the topic, a replay tool)
   * is parked as foreign, under a stream of its own per partition: it is never applied and
   * moves no stream's version. Unset: every source is accepted.
   */
  readonly sources?: readonly string[];
  /** Longest a poll waits for records. Default 500 ms. */
  readonly maxWaitMs?: number;
  /** Upper bound of one fetch per partition (so of one batch). Default 1 MiB. */
  readonly maxBytesPerPartition?: number;
  /** Default 30000 ms; a member that crashed holds its partitions this long. */
  readonly sessionTimeoutMs?: number;
  readonly heartbeatIntervalMs?: number;
  readonly rebalanceTimeoutMs?: number;
  /**
   * Opens sealed personal fields at consumption (the protecting store's `personalData`, whose
   * key store must be the producer's). Without it, projections see the sealed envelopes.
   */
  readonly personalData?: PersonalDataReader;
  /**
   * The store of record and the relay's routing, to fill from the store what a topic no longer
   * holds (bounded retention, DeleteRecords) before reading the rest from Kafka. Unset: a version
   * that must start below a partition's log start offset stops its engine with
   * {@link KafkaHistoryTruncatedError}.
   */
  readonly backfill?: KafkaBackfillOptions;
}

/** A feed over the partitions of Kafka topics, through consumer groups. */
export function kafkaFeed(options: KafkaFeedOptions): Feed {
  if (options.topics.length === 0) {
    throw new InvalidArgumentError('topics', 'name at least one topic to read');
  }
  const prefix = options.groupPrefix ?? 'tidemark';
  let lagReader: KafkaReader | undefined;
  return {
    kind: 'kafka',
    dedupeByStream: true,
    ...(options.personalData ? { personalData: options.personalData } : {}),
    groupFor: (rows, shared) => {
      if (options.groupId !== undefined) return options.groupId;
      if (shared || rows.length !== 1) return `${prefix}-projections`;
      const [row] = rows;
      return `${prefix}-projection-${row!.name}-v${row!.version}`;
    },
    open: (host, group) => {
      if (group === undefined)
        throw new InvalidArgumentError('group', 'a Kafka feed needs a group');
      return new KafkaFeedReader(options, host, group);
    },
    async lagOf(sink, row) {
      lagReader ??= new KafkaReader(options.connection, { isolation: 'read_committed' });
      const ends = await endOffsets(lagReader, options.topics);
      return partitionLag(ends, await ledger.offsets(sink, row.name, row.version), new Set(), 0);
    },
    isFatal: (error) =>
      error instanceof KafkaHistoryTruncatedError ||
      (error instanceof KafkaOperationError &&
        error.operation === 'fetch' &&
        error.brokerError !== undefined &&
        FATAL_FETCH_ERRORS.has(error.brokerError)),
    async close() {
      await lagReader?.close().catch(() => {});
      lagReader = undefined;
    },
  };
}

/** Fetch errors after which a projector must not go on by itself (see consumer.ts). */
const FATAL_FETCH_ERRORS = new Set([
  'OFFSET_OUT_OF_RANGE',
  'UNKNOWN_TOPIC_ID',
  'INCONSISTENT_TOPIC_ID',
  'UNKNOWN_TOPIC_OR_PARTITION',
  'TOPIC_AUTHORIZATION_FAILED',
  'CORRUPT_MESSAGE',
  'PARTITIONS_CHANGED',
]);

type Ends = Map<string, { end: bigint; start: bigint }>;

/** The end a read_committed reader sees now, and the earliest offset, of every partition. */
async function endOffsets(reader: KafkaReader, topics: readonly string[]): Promise<Ends> {
  const result: Ends = new Map();
  for (const topic of topics) {
    const ends = await reader.offsets(topic, 'latest');
    const starts = await reader.offsets(topic, 'earliest', { partitions: [...ends.keys()] });
    for (const [partition, end] of ends) {
      result.set(partitionKey(topic, partition), { end, start: starts.get(partition) ?? 0n });
    }
  }
  return result;
}

function partitionLag(
  ends: Ends,
  stored: Map<string, bigint>,
  owned: Set<string>,
  pendingSince: number | undefined,
): FeedLag {
  const partitions: PartitionStatus[] = [];
  let lagEvents = 0;
  for (const [k, { end, start }] of ends) {
    const [topic, partition] = k.split('\u0000') as [string, string];
    const offset = stored.get(k) ?? start;
    const lag = end > offset ? Number(end - offset) : 0;
    lagEvents += lag;
    partitions.push({
      topic,
      partition: Number(partition),
      offset: Number(offset),
      end: Number(end),
      lag,
      owned: owned.has(k),
    });
  }
  const lagSeconds =
    pendingSince === undefined || pendingSince === 0
      ? 0
      : Math.max(0, (Date.now() - pendingSince) / 1000);
  return { lagEvents, lagSeconds, partitions };
}

/** A record no version applies: not a Tidemark event, or not from one of the application's relays. */
interface Unusable {
  readonly record: ConsumedRecord;
  readonly reason: 'invalid' | 'foreign';
  readonly error: KafkaWireFormatError;
}

/** One partition of a poll, decoded once for every version. */
interface PolledPartition {
  readonly key: string;
  readonly topic: string;
  readonly partition: number;
  readonly nextOffset: bigint;
  readonly events: readonly { event: RecordedEvent; offset: bigint }[];
  readonly invalid: readonly Unusable[];
}

class KafkaFeedReader implements FeedReader {
  readonly #options: KafkaFeedOptions;
  readonly #host: FeedHost;
  readonly #group: string;
  readonly #consumer: KafkaConsumer;
  readonly #sources: ReadonlySet<string> | undefined;
  #reader: KafkaReader | undefined;
  #closed = false;
  /**
   * Per version, the stored next offset of each owned partition (`null`: no row yet): the
   * compare-and-set's expectation. Moved only after a commit.
   */
  readonly #stored = new Map<Slot, Map<string, bigint | null>>();
  #pendingSince: number | undefined;
  /** Partitions being filled from the store before they are read from Kafka (backfill.ts). */
  #fill: Fill | undefined;
  /** A partition that must be filled with no store to fill it from: next() throws it. */
  #truncated: KafkaHistoryTruncatedError | undefined;

  constructor(options: KafkaFeedOptions, host: FeedHost, group: string) {
    this.#options = options;
    this.#host = host;
    this.#group = group;
    this.#sources = options.sources ? new Set(options.sources) : undefined;
    const o = options;
    this.#consumer = new KafkaConsumer(options.connection, {
      groupId: group,
      topics: options.topics,
      defaultStart: 'earliest',
      // The next fetch travels while a batch is applied; a seek (resync, a fill that ends) or a
      // rebalance drops it, so what is applied is always read from the stored offsets.
      readAhead: true,
      onAssigned: (change) => this.#onAssigned(change),
      onRevoked: (partitions) => {
        for (const stored of this.#stored.values()) {
          for (const tp of partitions) stored.delete(partitionKey(tp.topic, tp.partition));
        }
      },
      ...(o.groupInstanceId !== undefined ? { groupInstanceId: o.groupInstanceId } : {}),
      ...(o.maxWaitMs !== undefined ? { maxWaitMs: o.maxWaitMs } : {}),
      ...(o.maxBytesPerPartition !== undefined
        ? { maxBytesPerPartition: o.maxBytesPerPartition }
        : {}),
      ...(o.sessionTimeoutMs !== undefined ? { sessionTimeoutMs: o.sessionTimeoutMs } : {}),
      ...(o.heartbeatIntervalMs !== undefined
        ? { heartbeatIntervalMs: o.heartbeatIntervalMs }
        : {}),
      ...(o.rebalanceTimeoutMs !== undefined ? { rebalanceTimeoutMs: o.rebalanceTimeoutMs } : {}),
    });
  }

  async start(): Promise<void> {
    await this.#consumer.start();
    this.#host.logger.info(
      {
        groupId: this.#group,
        projections: this.#host.slots().map((s) => `${s.name} v${s.version}`),
        assigned: this.#consumer.assignment.map((tp) => `${tp.topic}[${tp.partition}]`),
      },
      'kafka feed started',
    );
  }

  /** Every assigned partition starts at the lowest offset its versions stored. */
  async #onAssigned(change: AssignmentChange): Promise<PartitionStart[]> {
    const keys = change.assigned.map((tp) => partitionKey(tp.topic, tp.partition));
    const starts = await this.#load(keys);
    await this.#planFill(keys, starts);
    // Another process may have parked events of streams in these partitions.
    for (const slot of this.#host.slots()) await slot.applier.loadParked();
    this.#host.logger.info(
      {
        groupId: this.#group,
        generation: change.generation,
        assigned: change.assigned.map((tp) => `${tp.topic}[${tp.partition}]`),
        revoked: change.revoked.map((tp) => `${tp.topic}[${tp.partition}]`),
      },
      'partitions assigned; resuming from the offsets stored with the read models',
    );
    // The consumer's assignment is already the new one: watchers may look now.
    this.#host.changed();
    return [...starts].map(([k, start]) => {
      const [topic, partition] = k.split('\u0000') as [string, string];
      return { topic, partition: Number(partition), start };
    });
  }

  /** Reads every version's stored offsets for `keys`; returns each partition's start. */
  async #load(keys: readonly string[]): Promise<Map<string, bigint | 'earliest'>> {
    const starts = new Map<string, bigint | 'earliest'>();
    this.#stored.clear();
    for (const slot of this.#host.slots()) {
      const offsets = await ledger.offsets(this.#host.sink, slot.name, slot.version);
      const mine = new Map<string, bigint | null>();
      for (const k of keys) {
        const offset = offsets.get(k);
        mine.set(k, offset ?? null);
        const start = starts.get(k);
        if (offset === undefined) starts.set(k, 'earliest');
        else if (start === undefined || (start !== 'earliest' && offset < start)) {
          starts.set(k, offset);
        }
      }
      this.#stored.set(slot, mine);
    }
    return starts;
  }

  async slotsChanged(): Promise<void> {
    await this.resync();
  }

  /** Positions and expectations back to what is stored (after a failed or contested batch). */
  async resync(): Promise<void> {
    const consumer = this.#consumer;
    const keys = consumer.assignment.map((tp) => partitionKey(tp.topic, tp.partition));
    const starts = await this.#load(keys);
    await this.#planFill(keys, starts);
    for (const tp of consumer.assignment) {
      const start = starts.get(partitionKey(tp.topic, tp.partition));
      if (start === undefined) continue;
      if (start !== 'earliest') consumer.seek(tp.topic, tp.partition, start);
      else {
        const [earliest] = (
          await this.#ensureReader().offsets(tp.topic, 'earliest', { partitions: [tp.partition] })
        ).values();
        consumer.seek(tp.topic, tp.partition, earliest!);
      }
    }
    for (const slot of this.#host.slots()) await slot.applier.loadParked();
  }

  /**
   * Finds the partitions of `keys` whose log start offset is past where a version must start
   * (no stored offset, or one below it), moves their start there, and plans their fill from the
   * store; without a store, records the truncation for next() to throw.
   */
  async #planFill(
    keys: readonly string[],
    starts: Map<string, bigint | 'earliest'>,
  ): Promise<void> {
    this.#fill = undefined;
    this.#truncated = undefined;
    const byTopic = new Map<string, number[]>();
    for (const k of keys) {
      const [topic, partition] = k.split('\u0000') as [string, string];
      byTopic.set(topic, [...(byTopic.get(topic) ?? []), Number(partition)]);
    }
    const reader = this.#ensureReader();
    const backfill = this.#options.backfill;
    const parts: FillPartition[] = [];
    const counts = new Map<string, number>();
    for (const [topic, partitions] of byTopic) {
      const logStarts = await reader.offsets(topic, 'earliest', { partitions });
      for (const partition of partitions) {
        const key = partitionKey(topic, partition);
        const logStart = logStarts.get(partition) ?? 0n;
        // Nothing was ever deleted from a partition that still starts at 0.
        if (logStart === 0n) continue;
        const versions = new Map<Slot, bigint | null>();
        for (const [slot, stored] of this.#stored) {
          const offset = stored.get(key);
          if (offset === null || (offset !== undefined && offset < logStart)) {
            versions.set(slot, offset);
          }
        }
        if (versions.size === 0) continue;
        const start = starts.get(key);
        if (start === 'earliest' || (start !== undefined && start < logStart)) {
          starts.set(key, logStart);
        }
        const needed = [...versions.values()][0]!;
        if (!backfill) {
          this.#truncated ??= new KafkaHistoryTruncatedError(topic, partition, logStart, needed);
          this.#host.logger.error(
            {
              topic,
              partition,
              logStartOffset: String(logStart),
              neededOffset: needed === null ? null : String(needed),
              projections: [...versions.keys()].map((s) => `${s.name} v${s.version}`),
            },
            'the topic no longer holds events these projections need, and the feed has no store to fill them from: stopping',
          );
          continue;
        }
        let count = counts.get(topic);
        if (count === undefined) {
          count = (await reader.partitionCount(topic)) ?? 0;
          counts.set(topic, count);
        }
        // Read the end before the head (firstRetainedPosition does): see backfill.ts.
        const first = await firstRetainedPosition(reader, topic, partition, logStart);
        const boundary = first ?? (await backfill.store.headPosition()) + 1;
        parts.push({ key, topic, partition, logStart, boundary, versions });
        this.#host.logger.warn(
          {
            topic,
            partition,
            logStartOffset: String(logStart),
            fillBelowPosition: boundary,
            projections: [...versions.keys()].map((s) => `${s.name} v${s.version}`),
          },
          'the topic no longer holds the beginning of this partition: filling it from the store, then reading Kafka from its log start',
        );
      }
    }
    this.#fill = planFill(parts, counts);
  }

  /** The next batch of a fill: store events, applied and checkpointed like Kafka records. */
  async #fillBatch(fill: Fill): Promise<FeedBatch> {
    const { events: read, done } = await readFill(fill, this.#options.backfill!);
    if (done) this.#fill = undefined;
    const events = read.map((r) => r.event);
    return {
      events,
      forSlot: (slot) => {
        const mine = read.filter((r) => r.part.versions.has(slot)).map((r) => r.event);
        if (mine.length === 0 && !done) return undefined;
        const parts = [...fill.parts.values()].filter((p) => p.versions.has(slot));
        if (parts.length === 0) return undefined;
        return this.#fillWork(slot, mine, done ? parts : []);
      },
    };
  }

  /**
   * A fill batch for one version. The events carry no offsets; the per-stream versions the
   * applier saves are its progress (a fill that stops is read again and deduplicated). The last
   * batch moves each filled partition's offset to its log start, by compare-and-set.
   */
  #fillWork(slot: Slot, events: RecordedEvent[], finishing: FillPartition[]): SlotWork {
    const { name, version } = slot;
    return {
      events,
      // Fill batches of one version run one at a time across members (a rebalance during a
      // long fill may give the partition to another member, which fills it too): the applier
      // reads the stream versions after this, so an event filled by both has one effect.
      claim: async (sql) => {
        if (!(await ledger.claimExclusive(sql, name, version))) {
          throw new ProgressMovedError(name, version);
        }
      },
      save: async (sql, upTo, streamVersions) => {
        if (streamVersions) await ledger.saveStreamVersions(sql, name, version, streamVersions);
        if (upTo !== events.length - 1) return;
        for (const part of finishing) {
          const expected = part.versions.get(slot)!;
          const moved = await ledger.moveOffset(
            sql,
            name,
            version,
            part.topic,
            part.partition,
            expected,
            part.logStart,
          );
          if (!moved) throw new ProgressMovedError(name, version);
        }
      },
      committed: (upTo) => {
        for (let i = 0; i <= upTo; i++) {
          const position = events[i]!.position;
          if (position > slot.position) slot.position = position;
        }
        if (upTo !== events.length - 1) return;
        const stored = this.#stored.get(slot);
        for (const part of finishing) {
          stored?.set(part.key, part.logStart);
          // Records a poll brought meanwhile were not applied to this version: read them again.
          if (
            this.#consumer.assignment.some(
              (tp) => partitionKey(tp.topic, tp.partition) === part.key,
            )
          ) {
            this.#consumer.seek(part.topic, part.partition, part.logStart);
          }
        }
        if (finishing.length > 0) {
          this.#host.logger.info(
            {
              projection: `${name} v${version}`,
              partitions: finishing.map((p) => `${p.topic}[${p.partition}]`),
            },
            'filled from the store what the topic no longer holds; reading Kafka from here on',
          );
        }
      },
    };
  }

  #ensureReader(): KafkaReader {
    // Closed: no new connections (status after stop reads the lag through the feed instead).
    if (this.#closed) throw new ClosedError('kafka feed reader');
    this.#reader ??= new KafkaReader(this.#options.connection, { isolation: 'read_committed' });
    return this.#reader;
  }

  async next(): Promise<FeedBatch | undefined> {
    this.#pendingSince = undefined;
    if (this.#truncated) throw this.#truncated;
    if (this.#fill) return this.#fillBatch(this.#fill);
    const batches = await this.#consumer.poll({ signal: this.#host.signal, includeEmpty: true });
    if (batches.length === 0) return undefined;
    const polled = batches.map((b) => this.#decode(b));
    const events: RecordedEvent[] = [];
    for (const p of polled) for (const { event } of p.events) events.push(event);
    return { events, forSlot: (slot) => this.#work(slot, polled) };
  }

  #decode(batch: ConsumedBatch): PolledPartition {
    const events: { event: RecordedEvent; offset: bigint }[] = [];
    const invalid: Unusable[] = [];
    const sources = this.#sources;
    for (const record of batch.records) {
      try {
        events.push({ event: decodeFrom(record, sources), offset: record.offset });
      } catch (error) {
        if (error instanceof ForeignSourceError) {
          invalid.push({ record, reason: 'foreign', error });
          this.#host.logger.error(
            {
              topic: batch.topic,
              partition: batch.partition,
              offset: String(record.offset),
              source: error.source,
            },
            'record from a producer that is not one of the relays; parked as foreign',
          );
          continue;
        }
        if (!(error instanceof KafkaWireFormatError)) throw error;
        invalid.push({ record, reason: 'invalid', error });
        this.#host.logger.error(
          {
            topic: batch.topic,
            partition: batch.partition,
            offset: String(record.offset),
            err: error,
          },
          'record is not a Tidemark event; parked',
        );
      }
    }
    const first = batch.records[0];
    if (first && this.#pendingSince === undefined) this.#pendingSince = Number(first.timestamp);
    return {
      key: partitionKey(batch.topic, batch.partition),
      topic: batch.topic,
      partition: batch.partition,
      nextOffset: batch.nextOffset,
      events,
      invalid,
    };
  }

  /** What one version does with a poll: the records at or past its offsets, and their moves. */
  #work(slot: Slot, polled: readonly PolledPartition[]): SlotWork | undefined {
    const stored = this.#stored.get(slot);
    if (!stored) return undefined;
    const parts: { p: PolledPartition; expected: bigint | null }[] = [];
    const events: RecordedEvent[] = [];
    /** Per event of `events`: its partition (index into parts) and offset. */
    const origins: { part: number; offset: bigint }[] = [];
    for (const p of polled) {
      if (!stored.has(p.key)) continue; // revoked meanwhile
      // Being filled from the store: Kafka's records wait until the fill is done (it seeks back).
      if (this.#fill?.parts.get(p.key)?.versions.has(slot)) continue;
      const expected = stored.get(p.key)!;
      if (expected !== null && p.nextOffset <= expected) continue; // nothing new for it
      const part = parts.push({ p, expected }) - 1;
      for (const { event, offset } of p.events) {
        if (expected !== null && offset < expected) continue;
        events.push(event);
        origins.push({ part, offset });
      }
    }
    if (parts.length === 0) return undefined;
    const { name, version } = slot;
    let applied = -1;
    /** The partitions' new offsets when `events[upTo]` is saved (the whole poll: every one). */
    const movesFor = (upTo: number) => {
      if (upTo === events.length - 1) return parts.map(({ p }) => ({ part: p, to: p.nextOffset }));
      const origin = origins[upTo]!;
      return [{ part: parts[origin.part]!.p, to: origin.offset + 1n }];
    };
    return {
      events,
      claim: async (sql) => {
        const state = await ledger.state(sql, name, version);
        if (state === undefined || state === 'retired') throw new ProgressMovedError(name, version);
      },
      claimReading: async (sql, streamIds) => {
        const { state, applied } = await ledger.stateAndStreamVersions(
          sql,
          name,
          version,
          streamIds,
        );
        if (state === undefined || state === 'retired') throw new ProgressMovedError(name, version);
        return applied;
      },
      save: async (sql, upTo, streamVersions) => {
        const plain: { topic: string; partition: number; expected: bigint; to: bigint }[] = [];
        // Sorted, so that two members writing the same rows take their locks in the same order.
        const moves = movesFor(upTo).sort((a, b) => (a.part.key < b.part.key ? -1 : 1));
        for (const { part, to } of moves) {
          const expected = stored.get(part.key);
          if (expected === undefined) throw new ProgressMovedError(name, version);
          if (expected !== null && to <= expected) continue;
          if (expected === null || part.invalid.length > 0) {
            await this.#parkInvalid(sql, slot, part, expected, to);
            if (
              !(await ledger.moveOffset(
                sql,
                name,
                version,
                part.topic,
                part.partition,
                expected,
                to,
              ))
            ) {
              throw new ProgressMovedError(name, version);
            }
          } else {
            plain.push({ topic: part.topic, partition: part.partition, expected, to });
          }
        }
        // The stream versions in the same statement as the offsets (on PostgreSQL).
        if (!(await ledger.moveOffsets(sql, name, version, plain, streamVersions))) {
          throw new ProgressMovedError(name, version);
        }
      },
      committed: (upTo) => {
        for (const { part, to } of movesFor(upTo)) {
          const expected = stored.get(part.key);
          if (expected === undefined || (expected !== null && to <= expected)) continue;
          stored.set(part.key, to);
        }
        // Global positions interleave across partitions: the highest applied so far.
        for (; applied < upTo; applied++) {
          const position = events[applied + 1]!.position;
          if (position > slot.position) slot.position = position;
        }
      },
    };
  }

  /** Parks, for one version, the undecodable records of a partition below `to`. */
  async #parkInvalid(
    sql: SqlExecutor,
    slot: Slot,
    part: PolledPartition,
    expected: bigint | null,
    to: bigint,
  ): Promise<void> {
    for (const { record, reason, error } of part.invalid) {
      if (record.offset >= to || (expected !== null && record.offset < expected)) continue;
      await ledger.park(
        sql,
        slot.name,
        slot.version,
        unusableRecordEvent(record, reason, error),
        error.message,
        0,
        reason,
      );
    }
  }

  get assignment(): readonly { topic: string; partition: number }[] {
    return this.#consumer.assignment;
  }

  wake(): void {
    // A poll ends within maxWaitMs; slot changes and stop are seen then.
  }

  target(): Promise<Ends> {
    return endOffsets(this.#ensureReader(), this.#options.topics);
  }

  /** True when the stored offsets of every partition (whoever owns it) have reached `target`. */
  async reached(slot: Slot, target: unknown): Promise<boolean> {
    // A partition still to be filled (or that cannot be) may look caught up by its offsets.
    if (this.#truncated) return false;
    for (const part of this.#fill?.parts.values() ?? []) if (part.versions.has(slot)) return false;
    const stored = await ledger.offsets(this.#host.sink, slot.name, slot.version);
    for (const [k, { end, start }] of target as Ends) {
      if ((stored.get(k) ?? start) < end) return false;
    }
    return true;
  }

  async caughtUp(slot: Slot): Promise<boolean> {
    return this.reached(slot, await this.target());
  }

  async lag(slot: Slot): Promise<FeedLag> {
    const owned = new Set(
      this.#consumer.assignment.map((tp) => partitionKey(tp.topic, tp.partition)),
    );
    const [ends, stored] = await Promise.all([
      this.target(),
      ledger.offsets(this.#host.sink, slot.name, slot.version),
    ]);
    return partitionLag(ends, stored, owned, this.#pendingSince);
  }

  /** False when the stream's partition is known to be another member's (one topic only). */
  canSignal(_slot: Slot, token: ConsistencyToken): boolean {
    const consumer = this.#consumer;
    if (this.#options.topics.length !== 1) return true;
    const topic = this.#options.topics[0]!;
    const count = consumer.partitionCount(topic);
    if (count === undefined) return true;
    const partition = partitionFor(token.streamId, count);
    return consumer.assignment.some((tp) => tp.topic === topic && tp.partition === partition);
  }

  satisfied(_slot: Slot, token: ConsistencyToken, committed: readonly RecordedEvent[]): boolean {
    for (let i = committed.length - 1; i >= 0; i--) {
      const event = committed[i]!;
      if (event.streamId === token.streamId) return event.streamVersion >= token.streamVersion;
    }
    return false;
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#consumer.close().catch(() => {});
    await this.#reader?.close().catch(() => {});
    this.#reader = undefined;
  }
}

/**
 * The placeholder a record no version applies is parked as: its own stream per partition
 * (`$invalid-<topic>-<partition>` or `$foreign-<topic>-<partition>`, so it never holds a real
 * stream), its offset as the version, and what is known of it as data. Listing shows it;
 * skipping drops it; retrying applies nothing (no projection handles the type) and unparks it.
 */
function unusableRecordEvent(
  record: ConsumedRecord,
  reason: 'invalid' | 'foreign',
  error: KafkaWireFormatError,
): RecordedEvent {
  const headers: Record<string, string> = {};
  for (const [name, value] of record.headers) headers[name] = value.toString('base64');
  return {
    type: reason === 'invalid' ? INVALID_RECORD_TYPE : FOREIGN_RECORD_TYPE,
    eventId: `kafka:${record.topic}:${record.partition}:${record.offset}`,
    streamId: `$${reason}-${record.topic}-${record.partition}`,
    streamVersion: Number(record.offset) + 1,
    position: 0,
    schemaVersion: 1,
    data: {
      topic: record.topic,
      partition: record.partition,
      offset: String(record.offset),
      key: record.key?.toString('base64') ?? null,
      value: record.value?.toString('base64') ?? null,
      headers,
      error: error.toJSON(),
    },
    metadata: {},
    recordedAt: new Date(Number(record.timestamp)),
  } as RecordedEvent;
}
