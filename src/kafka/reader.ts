/**
 * Reading partitions directly, outside any consumer group: for the relay, which reads back its
 * own progress record at startup, and for tools and tests that check what a topic holds.
 * Records are filtered for read_committed exactly as the group consumer does (records.ts).
 */
import { randomUUID } from 'node:crypto';
import {
  Consumer,
  ConnectionPool,
  FetchIsolationLevels,
  ListOffsetTimestamps,
} from '@platformatic/kafka';
import { ClosedError, InvalidArgumentError } from '../core/errors.ts';
import { clientOptions, type KafkaConnection } from './connection.ts';
import { KafkaOperationError, translateKafkaError } from './errors.ts';
import { fetchRaw } from './fetch.ts';
import {
  decodeByMarkers,
  decodePartition,
  type ConsumedRecord,
  type FetchResponse,
  type FetchResponsePartition,
  type PendingTransactions,
} from './records.ts';

/** The isolation of a read: committed transactions only, or everything written. */
export type Isolation = 'read_committed' | 'read_uncommitted';

/** Options of {@link KafkaReader}. */
export interface KafkaReaderOptions {
  /** Default `read_committed`. */
  readonly isolation?: Isolation;
  /** Longest a fetch waits on the broker when there is nothing to return. Default 100 ms. */
  readonly maxWaitMs?: number;
  /** Upper bound of one fetch per partition. Default 1 MiB. */
  readonly maxBytesPerPartition?: number;
}

/** What one fetch of one partition brought. */
export interface FetchedRange {
  readonly records: ConsumedRecord[];
  /** Where to fetch next (past transaction markers and aborted records too). */
  readonly nextOffset: bigint;
  readonly highWatermark: bigint;
  readonly lastStableOffset: bigint;
}

/**
 * A group-less reader of partitions. It never joins a group and never commits anything.
 * Close it when done.
 */
export class KafkaReader {
  readonly #consumer: Consumer<Buffer, Buffer, Buffer, Buffer>;
  readonly #pool: ConnectionPool;
  readonly #isolation: Isolation;
  readonly #maxWaitMs: number;
  readonly #maxBytes: number;
  #closed = false;

  constructor(connection: KafkaConnection, options: KafkaReaderOptions = {}) {
    const base = clientOptions(connection, 'reader');
    this.#isolation = options.isolation ?? 'read_committed';
    this.#maxWaitMs = options.maxWaitMs ?? 100;
    this.#maxBytes = options.maxBytesPerPartition ?? 1024 * 1024;
    // The library's Consumer needs a group id even when no group is joined; this one never is.
    this.#consumer = new Consumer<Buffer, Buffer, Buffer, Buffer>({
      ...base,
      groupId: `tidemark-reader-${randomUUID()}`,
      autocommit: false,
      retries: 5,
      retryDelay: 100,
    });
    this.#consumer.on('error', () => {});
    this.#pool = new ConnectionPool(`${base.clientId}-fetch`, base);
  }

  #check(): void {
    if (this.#closed) throw new ClosedError('kafka reader');
  }

  #level(isolation: Isolation): number {
    return isolation === 'read_committed'
      ? FetchIsolationLevels.READ_COMMITTED
      : FetchIsolationLevels.READ_UNCOMMITTED;
  }

  /** The number of partitions of a topic; undefined when the topic does not exist. */
  async partitionCount(topic: string): Promise<number | undefined> {
    this.#check();
    try {
      const metadata = await this.#consumer.metadata({ topics: [topic], forceUpdate: true });
      return metadata.topics.get(topic)?.partitionsCount;
    } catch (error) {
      const translated = translateKafkaError(error, 'metadata');
      if (
        translated instanceof KafkaOperationError &&
        translated.brokerError === 'UNKNOWN_TOPIC_OR_PARTITION'
      ) {
        return undefined;
      }
      throw translated;
    }
  }

  /**
   * The first (`earliest`) or next-to-be-written (`latest`) offset of each listed partition
   * (default: all). With read_committed isolation, `latest` is the last stable offset: the end
   * of what a read_committed consumer can see now.
   */
  async offsets(
    topic: string,
    which: 'earliest' | 'latest',
    options: { partitions?: readonly number[]; isolation?: Isolation } = {},
  ): Promise<Map<number, bigint>> {
    this.#check();
    let partitions = options.partitions;
    if (partitions === undefined) {
      const count = await this.partitionCount(topic);
      if (count === undefined) {
        throw new KafkaOperationError(
          'listOffsets',
          `topic '${topic}' does not exist`,
          'UNKNOWN_TOPIC_OR_PARTITION',
          false,
        );
      }
      partitions = Array.from({ length: count }, (_, i) => i);
    }
    try {
      const listed = await this.#consumer.listOffsets({
        topics: [topic],
        partitions: { [topic]: [...partitions] },
        timestamp:
          which === 'earliest' ? ListOffsetTimestamps.EARLIEST : ListOffsetTimestamps.LATEST,
        isolationLevel: this.#level(options.isolation ?? this.#isolation),
      });
      const result = new Map<number, bigint>();
      const offsets = listed.get(topic)!;
      for (const partition of partitions) result.set(partition, offsets[partition]!);
      return result;
    } catch (error) {
      throw translateKafkaError(error, 'listOffsets');
    }
  }

  /** One fetch of one partition from `offset`, waiting up to `maxWaitMs` for data. */
  async fetch(topic: string, partition: number, offset: bigint): Promise<FetchedRange> {
    const answer = await this.#fetchPartition(topic, partition, offset, this.#isolation);
    if (!answer)
      return { records: [], nextOffset: offset, highWatermark: -1n, lastStableOffset: -1n };
    const decoded = decodePartition(topic, answer, offset, this.#isolation === 'read_committed');
    return {
      records: decoded.records,
      nextOffset:
        decoded.nextOffset !== undefined && decoded.nextOffset > offset
          ? decoded.nextOffset
          : offset,
      highWatermark: answer.highWatermark,
      lastStableOffset: answer.lastStableOffset,
    };
  }

  /**
   * The committed records of one partition with an offset in `[from, to)`, judged by the
   * transaction markers in the log itself (read_uncommitted, see `decodeByMarkers`), not by the
   * broker's list of aborted transactions. Every transaction that started before `to` must be
   * complete: call it with `to` at or below the last stable offset. Records whose transaction
   * was decided at or past `to` are not returned.
   */
  async readCommittedByMarkers(
    topic: string,
    partition: number,
    from: bigint,
    to: bigint,
  ): Promise<ConsumedRecord[]> {
    const pending: PendingTransactions = new Map();
    const records: ConsumedRecord[] = [];
    let offset = from;
    while (offset < to) {
      const answer = await this.#fetchPartition(topic, partition, offset, 'read_uncommitted');
      if (!answer) continue;
      const decoded = decodeByMarkers(topic, answer, offset, pending);
      for (const record of decoded.records) if (record.offset < to) records.push(record);
      if (decoded.nextOffset === undefined || decoded.nextOffset <= offset) {
        if (answer.highWatermark <= offset) break; // nothing more was written
        continue;
      }
      offset = decoded.nextOffset;
    }
    return records.sort((a, b) => (a.offset < b.offset ? -1 : a.offset > b.offset ? 1 : 0));
  }

  async #fetchPartition(
    topic: string,
    partition: number,
    offset: bigint,
    isolation: Isolation,
  ): Promise<FetchResponsePartition | undefined> {
    this.#check();
    if (offset < 0n) throw new InvalidArgumentError('offset', 'must not be negative');
    let response: FetchResponse;
    try {
      const metadata = await this.#consumer.metadata({ topics: [topic] });
      const described = metadata.topics.get(topic);
      const leader = described?.partitions[partition]?.leader ?? -1;
      if (!described || leader < 0) {
        throw new KafkaOperationError(
          'fetch',
          `${topic}[${partition}] has no leader`,
          'LEADER_NOT_AVAILABLE',
          true,
        );
      }
      const broker = metadata.brokers.get(leader);
      if (!broker) {
        throw new KafkaOperationError(
          'fetch',
          `broker ${leader} is not in the metadata`,
          undefined,
          true,
        );
      }
      // Not Consumer.fetch: its read_committed filter drops committed records (fetch.ts).
      response = await fetchRaw(this.#consumer, this.#pool, broker, {
        topics: [
          {
            topicId: described.id,
            partitions: [
              {
                partition,
                fetchOffset: offset,
                partitionMaxBytes: this.#maxBytes,
                currentLeaderEpoch: -1,
                lastFetchedEpoch: -1,
              },
            ],
          },
        ],
        maxWaitMs: this.#maxWaitMs,
        minBytes: 1,
        maxBytes: this.#maxBytes,
        isolationLevel: this.#level(isolation),
      });
    } catch (error) {
      throw translateKafkaError(error, 'fetch');
    }
    return response.responses[0]?.partitions.find((p) => p.partitionIndex === partition);
  }

  /**
   * Every record of one partition with an offset in `[from, to)`. `to` must be readable now:
   * at most the end offset for this reader's isolation (for read_committed, the last stable
   * offset). A range that cannot be read to its end fails; it is never cut short.
   */
  async readRange(
    topic: string,
    partition: number,
    from: bigint,
    to: bigint,
  ): Promise<ConsumedRecord[]> {
    const records: ConsumedRecord[] = [];
    let offset = from;
    let stalled = 0;
    while (offset < to) {
      const fetched = await this.fetch(topic, partition, offset);
      for (const record of fetched.records) if (record.offset < to) records.push(record);
      if (fetched.nextOffset > offset) {
        offset = fetched.nextOffset;
        stalled = 0;
        continue;
      }
      // Nothing came back (each empty answer waited maxWaitMs on the broker).
      if (++stalled >= 20) {
        throw new KafkaOperationError(
          'readRange',
          `${topic}[${partition}] could not be read past ${offset} (asked up to ${to})`,
          undefined,
          true,
        );
      }
    }
    return records;
  }

  /** Everything a topic holds now (to each partition's end offset), partition by partition. */
  async readAll(topic: string): Promise<ConsumedRecord[]> {
    const starts = await this.offsets(topic, 'earliest');
    const ends = await this.offsets(topic, 'latest');
    const records: ConsumedRecord[] = [];
    for (const [partition, start] of starts) {
      records.push(...(await this.readRange(topic, partition, start, ends.get(partition)!)));
    }
    return records;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.#consumer.close(true);
    } finally {
      await this.#pool.close();
    }
  }
}
