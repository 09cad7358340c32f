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
import { decodePartition, type ConsumedRecord, type FetchResponse } from './records.ts';

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
      response = await this.#consumer.fetch({
        node: leader,
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
        maxWaitTime: this.#maxWaitMs,
        minBytes: 1,
        maxBytes: this.#maxBytes,
        isolationLevel: this.#level(this.#isolation),
        connectionPool: this.#pool,
      });
    } catch (error) {
      throw translateKafkaError(error, 'fetch');
    }
    const answer = response.responses[0]?.partitions.find((p) => p.partitionIndex === partition);
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

  /** Every record of one partition with an offset in `[from, to)`. */
  async readRange(
    topic: string,
    partition: number,
    from: bigint,
    to: bigint,
  ): Promise<ConsumedRecord[]> {
    const records: ConsumedRecord[] = [];
    let offset = from;
    while (offset < to) {
      const fetched = await this.fetch(topic, partition, offset);
      for (const record of fetched.records) if (record.offset < to) records.push(record);
      if (fetched.nextOffset <= offset) {
        // Nothing more below `to` can be read now (for read_committed: an open transaction
        // holds the last stable offset back). The caller asked for a range that is not there.
        const end =
          this.#isolation === 'read_committed' ? fetched.lastStableOffset : fetched.highWatermark;
        if (end >= 0n && end <= offset) break;
        continue;
      }
      offset = fetched.nextOffset;
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
