/**
 * Hybrid replay for topics with bounded retention: what a partition no longer holds is read
 * from the store of record, then the partition is read from Kafka where its retained records
 * begin.
 *
 * Why this is exact. The relay publishes the global log in position order, each event to the
 * partition of its stream, so in one partition positions grow with offsets. Let `B` be the
 * position of the first committed record at or after the partition's log start offset `L`.
 * Every event of the partition's streams with a position below `B` was published below `L`
 * (dropped, or at least not needed), and every one at `B` or later is at `L` or later. So a
 * version that applies, in position order, the store's events of the partition's streams with
 * a position below `B`, and then Kafka's records from `L`, applies every event of those streams
 * once, in stream order. Overlap is harmless: the Kafka feed keeps each stream's applied version
 * (`dedupeByStream`), so an event delivered by both sides has one effect. A partition with no
 * committed record left takes `B` = the store's head + 1, read after its end offset: everything
 * the relay publishes after that lands at `L` or later.
 */
import type { EventStore, RecordedEvent } from '../core/index.ts';
import { partitionKey, type Slot } from '../projections/index.ts';
import { KafkaOperationError, KafkaWireFormatError } from './errors.ts';
import type { KafkaReader } from './reader.ts';
import { partitionFor, type EventTopics } from './topics.ts';
import { decodeEvent } from './wire.ts';

/** Where a Kafka feed fills what its topics no longer hold (see {@link KafkaFeedOptions.backfill}). */
export interface KafkaBackfillOptions {
  /**
   * The store of record the relay publishes (with an archive, the archive-aware store, so that
   * archived streams are filled too). Read raw, in position order.
   */
  readonly store: EventStore;
  /** The relay's routing of streams to topics (the same `EventTopics`). */
  readonly topics: EventTopics;
  /** Events read from the store per batch. Default 500. */
  readonly batchSize?: number;
}

/** One partition to fill, for the versions that must start below its log start offset. */
export interface FillPartition {
  readonly key: string;
  readonly topic: string;
  readonly partition: number;
  /** The partition's log start offset: Kafka is read from here once the fill is done. */
  readonly logStart: bigint;
  /** Store events of the partition's streams with a position below this are filled. */
  readonly boundary: number;
  /** The versions to fill, with their stored offset (the compare-and-set's expectation). */
  readonly versions: Map<Slot, bigint | null>;
}

/** A fill in progress: where the store is read next, and up to where. */
export interface Fill {
  readonly parts: Map<string, FillPartition>;
  readonly partitionCounts: Map<string, number>;
  /** The store is read after this position. */
  after: number;
  /** The highest boundary: reading stops below it. */
  readonly until: number;
}

/**
 * The position of the first committed Tidemark record at or after `from`, or undefined when
 * the partition holds none (read_committed `reader`).
 */
export async function firstRetainedPosition(
  reader: KafkaReader,
  topic: string,
  partition: number,
  from: bigint,
): Promise<number | undefined> {
  const [end] = (await reader.offsets(topic, 'latest', { partitions: [partition] })).values();
  let offset = from;
  let stalled = 0;
  while (end !== undefined && offset < end) {
    const fetched = await reader.fetch(topic, partition, offset);
    for (const record of fetched.records) {
      try {
        return decodeEvent(record).position;
      } catch (error) {
        // Not a relay's record (a foreign producer): the next one tells.
        if (!(error instanceof KafkaWireFormatError)) throw error;
      }
    }
    if (fetched.nextOffset > offset) {
      offset = fetched.nextOffset;
      stalled = 0;
    } else if (++stalled >= 20) {
      throw new KafkaOperationError(
        'backfill',
        `${topic}[${partition}] could not be read past ${offset} (end ${end})`,
        undefined,
        true,
      );
    }
  }
  return undefined;
}

/** Plans the fill of `parts` (boundaries found); undefined when there is nothing to fill. */
export function planFill(
  parts: readonly FillPartition[],
  partitionCounts: Map<string, number>,
): Fill | undefined {
  if (parts.length === 0) return undefined;
  let until = 0;
  for (const part of parts) until = Math.max(until, part.boundary);
  return { parts: new Map(parts.map((p) => [p.key, p])), partitionCounts, after: 0, until };
}

/** The next store events of a fill, each with the partition it belongs to. */
export async function readFill(
  fill: Fill,
  options: KafkaBackfillOptions,
): Promise<{ events: { event: RecordedEvent; part: FillPartition }[]; done: boolean }> {
  const batchSize = options.batchSize ?? 500;
  const read = await options.store.readAll({
    after: fill.after,
    maxCount: batchSize,
    upcast: false,
  });
  const events: { event: RecordedEvent; part: FillPartition }[] = [];
  for (const event of read) {
    if (event.position >= fill.until) break;
    const topic = options.topics.topicFor(event.streamId);
    const count = topic === undefined ? undefined : fill.partitionCounts.get(topic);
    if (count === undefined) continue;
    const part = fill.parts.get(partitionKey(topic!, partitionFor(event.streamId, count)));
    if (part && event.position < part.boundary) events.push({ event, part });
  }
  const last = read.at(-1);
  const done = read.length < batchSize || last === undefined || last.position >= fill.until - 1;
  fill.after = last?.position ?? fill.after;
  return { events, done };
}
