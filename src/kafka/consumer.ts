/**
 * The consumer side of the Kafka port: a consumer-group member that fetches batches from
 * positions its owner controls.
 *
 * Projection runners keep their offsets in the read-model database, in the same transaction as
 * the read-model change. So on every (re)assignment the runner says where each partition
 * starts ({@link KafkaConsumerOptions.onAssigned}), it pulls batches with {@link KafkaConsumer.poll},
 * and it never needs Kafka's committed offsets (though {@link KafkaConsumer.commit} is there for
 * consumers that want them).
 *
 * Group membership (join, sync, heartbeats, rejoin after a rebalance) is @platformatic/kafka's
 * classic-protocol code. Fetching is done here, on a connection pool of its own, so that a
 * long-polling fetch never delays a heartbeat, and so that read_committed filtering is exact
 * (see records.ts).
 */
import {
  Consumer,
  ConnectionPool,
  FetchIsolationLevels,
  ListOffsetTimestamps,
  type ConsumerGroupJoinPayload,
} from '@platformatic/kafka';
import { ClosedError, InvalidArgumentError } from '../core/errors.ts';
import { clientOptions, type KafkaConnection } from './connection.ts';
import { KafkaOperationError, translateKafkaError } from './errors.ts';
import { fetchRaw } from './fetch.ts';
import {
  decodePartition,
  type ConsumedRecord,
  type FetchRequestTopic,
  type FetchResponse,
} from './records.ts';

export type { ConsumedRecord } from './records.ts';

/** A partition of a topic. */
export interface TopicPartition {
  readonly topic: string;
  readonly partition: number;
}

/**
 * Where an assigned partition starts: an offset (the next record to read), `earliest`,
 * `latest` (only records appended from now on), or `committed` (the group's committed offset
 * in Kafka, else the consumer's `fallback`).
 */
export type StartPosition = bigint | 'earliest' | 'latest' | 'committed';

/** What {@link KafkaConsumerOptions.onAssigned} is told after each (re)join of the group. */
export interface AssignmentChange {
  /** The group generation; it grows with every rebalance. */
  readonly generation: number;
  /** Every partition this member now owns. */
  readonly assigned: readonly TopicPartition[];
  /** Partitions owned now but not before this rebalance. */
  readonly added: readonly TopicPartition[];
  /** Partitions owned before this rebalance but not any more. */
  readonly revoked: readonly TopicPartition[];
}

/** A start position for one partition, as returned by {@link KafkaConsumerOptions.onAssigned}. */
export interface PartitionStart extends TopicPartition {
  readonly start: StartPosition;
}

/** Options of {@link KafkaConsumer}. */
export interface KafkaConsumerOptions {
  readonly groupId: string;
  readonly topics: readonly string[];
  /**
   * `read_committed` (default): only records of committed transactions, and nothing past the
   * last stable offset. `read_uncommitted`: everything written, aborted records included.
   */
  readonly isolation?: 'read_committed' | 'read_uncommitted';
  /**
   * Called after every rebalance, before the next {@link KafkaConsumer.poll} returns data.
   * Return start positions for any assigned partitions (a runner returns the offsets stored in
   * its database for all of them). Added partitions it leaves out start at `defaultStart`;
   * partitions kept from before keep their current position.
   */
  readonly onAssigned?: (
    change: AssignmentChange,
  ) => Promise<readonly PartitionStart[] | void> | readonly PartitionStart[] | void;
  /**
   * Called with the partitions this member lost. The library rejoins a rebalancing group at
   * once, so this is reported after the fact: another member may already be reading them.
   * Guard writes with the stored offset (compare-and-set), not with this callback.
   */
  readonly onRevoked?: (partitions: readonly TopicPartition[]) => Promise<void> | void;
  /** Start of an added partition that onAssigned did not position. Default `committed`. */
  readonly defaultStart?: StartPosition;
  /** Where `committed` starts when the group has no committed offset. Default `earliest`. */
  readonly fallback?: 'earliest' | 'latest';
  /** Longest a poll waits on the broker for data. Default 500 ms. */
  readonly maxWaitMs?: number;
  /** Upper bound of one fetch response. Default 10 MiB. */
  readonly maxBytes?: number;
  /** Upper bound per partition per fetch. Default 1 MiB. */
  readonly maxBytesPerPartition?: number;
  /** A member that misses heartbeats this long is removed from the group. Default 30000 ms. */
  readonly sessionTimeoutMs?: number;
  /** Default 3000 ms; keep it well under a third of the session timeout. */
  readonly heartbeatIntervalMs?: number;
  /** How long the group waits for members to rejoin during a rebalance. Default 60000 ms. */
  readonly rebalanceTimeoutMs?: number;
  /**
   * Start the next fetch as soon as a poll returns records and more were there already (a
   * backlog: catching up), so that it runs (on the broker and on the wire) while the caller
   * handles those records; the next poll takes its answer. Caught up, polls fetch as usual. The
   * answer is dropped, and fetched again, when a seek or a rebalance came in between. One fetch
   * at most is held ahead (at most `maxBytes` of records). Default false.
   */
  readonly readAhead?: boolean;
  /**
   * Static membership (KIP-345): a stable id per process (a pod name, say). A member that comes
   * back under the same id after a crash takes its old place, and its partitions, at once,
   * without waiting for the session timeout and without a rebalance of the others.
   */
  readonly groupInstanceId?: string;
}

/** The records one poll brought from one partition. */
export interface ConsumedBatch extends TopicPartition {
  readonly records: readonly ConsumedRecord[];
  /**
   * The position after this batch: store it with whatever the records changed, and start from
   * it next time. It can be past the last record's offset + 1 (transaction markers and aborted
   * records take offsets too).
   */
  readonly nextOffset: bigint;
  /** The partition's high watermark when fetched: `highWatermark - nextOffset` is the lag. */
  readonly highWatermark: bigint;
  /** The last stable offset (read_committed reads stop here; open transactions start here). */
  readonly lastStableOffset: bigint;
}

/** An offset to commit to the group in Kafka: the next offset to read. */
export interface OffsetToCommit extends TopicPartition {
  readonly offset: bigint;
}

/** A fetch's outcome: its batches, or what it threw. */
type FetchResult =
  | { readonly ok: true; readonly batches: ConsumedBatch[] }
  | { readonly ok: false; readonly error: unknown };

const key = (topic: string, partition: number) => `${topic}\u0000${partition}`;

/** How long an assigned topic may be missing from the metadata before it counts as deleted. */
const MISSING_TOPIC_GRACE_MS = 10_000;

function sameAssignment(a: readonly TopicPartition[], b: readonly TopicPartition[]): boolean {
  if (a.length !== b.length) return false;
  const keys = new Set(a.map((tp) => key(tp.topic, tp.partition)));
  return b.every((tp) => keys.has(key(tp.topic, tp.partition)));
}

/**
 * A consumer-group member with explicit positions. Call {@link start}, then {@link poll} in a
 * loop; {@link close} leaves the group.
 *
 * Not safe for concurrent polls: one loop per consumer.
 */
export class KafkaConsumer {
  readonly #options: Required<
    Pick<
      KafkaConsumerOptions,
      | 'maxWaitMs'
      | 'maxBytes'
      | 'maxBytesPerPartition'
      | 'sessionTimeoutMs'
      | 'heartbeatIntervalMs'
      | 'rebalanceTimeoutMs'
      | 'defaultStart'
      | 'fallback'
    >
  > &
    KafkaConsumerOptions;
  readonly #consumer: Consumer<Buffer, Buffer, Buffer, Buffer>;
  readonly #fetchPool: ConnectionPool;
  readonly #readCommitted: boolean;
  #assigned: TopicPartition[] = [];
  #generation = -1;
  readonly #positions = new Map<string, bigint>();
  readonly #partitionCounts = new Map<string, number>();
  /** Assigned topics missing from the metadata, since when. */
  readonly #missingSince = new Map<string, number>();
  /** Join events not handled yet; handled in order, before the next fetch. */
  #pendingJoins: ConsumerGroupJoinPayload[] = [];
  #wakeUp: (() => void) | undefined;
  /** Counts seeks: a fetch started before one read positions that are no longer ours. */
  #seeks = 0;
  /** The fetch started ahead (readAhead), with the generation and seek count it started under. */
  #ahead: { generation: number; seeks: number; result: Promise<FetchResult> } | undefined;
  #backgroundError: unknown;
  #started = false;
  #closed = false;

  constructor(connection: KafkaConnection, options: KafkaConsumerOptions) {
    if (!options.groupId) throw new InvalidArgumentError('groupId', 'must not be empty');
    if (options.topics.length === 0)
      throw new InvalidArgumentError('topics', 'at least one topic is needed');
    this.#options = {
      maxWaitMs: 500,
      maxBytes: 10 * 1024 * 1024,
      maxBytesPerPartition: 1024 * 1024,
      sessionTimeoutMs: 30_000,
      heartbeatIntervalMs: 3_000,
      rebalanceTimeoutMs: 60_000,
      defaultStart: 'committed',
      fallback: 'earliest',
      ...options,
    };
    this.#readCommitted = (options.isolation ?? 'read_committed') === 'read_committed';
    const base = clientOptions(connection, 'consumer');
    this.#consumer = new Consumer<Buffer, Buffer, Buffer, Buffer>({
      ...base,
      groupId: options.groupId,
      autocommit: false,
      isolationLevel: this.#readCommitted
        ? FetchIsolationLevels.READ_COMMITTED
        : FetchIsolationLevels.READ_UNCOMMITTED,
      sessionTimeout: this.#options.sessionTimeoutMs,
      heartbeatInterval: this.#options.heartbeatIntervalMs,
      rebalanceTimeout: this.#options.rebalanceTimeoutMs,
      ...(options.groupInstanceId !== undefined
        ? { groupInstanceId: options.groupInstanceId }
        : {}),
      retries: 5,
      retryDelay: 250,
    });
    this.#fetchPool = new ConnectionPool(`${base.clientId}-fetch`, base);
    // Every (re)join announces the new assignment. Handled lazily by the poll loop, so the
    // owner's onAssigned runs on the owner's schedule.
    this.#consumer.on('consumer:group:join', (payload) => {
      this.#pendingJoins.push(payload);
      this.#wakeUp?.();
    });
    // A failed background rejoin is emitted as 'error'; the next poll reports it.
    this.#consumer.on('error', (error: unknown) => {
      this.#backgroundError ??= error;
      this.#wakeUp?.();
    });
  }

  /** The partitions owned now. */
  get assignment(): readonly TopicPartition[] {
    return this.#assigned;
  }

  /** The group generation of the current assignment (-1 before the first join). */
  get generation(): number {
    return this.#generation;
  }

  /** The member id the coordinator gave this consumer, once joined. */
  get memberId(): string | undefined {
    return this.#consumer.memberId ?? undefined;
  }

  /** A topic's partition count, as last seen in metadata (known after the first poll). */
  partitionCount(topic: string): number | undefined {
    return this.#partitionCounts.get(topic);
  }

  /** The next offset to fetch for a partition, if it is assigned and positioned. */
  position(topic: string, partition: number): bigint | undefined {
    return this.#positions.get(key(topic, partition));
  }

  /** Moves an assigned partition's position; the next poll fetches from there. */
  seek(topic: string, partition: number, offset: bigint): void {
    if (!this.#assigned.some((tp) => tp.topic === topic && tp.partition === partition)) {
      throw new InvalidArgumentError(
        'partition',
        `${topic}[${partition}] is not assigned to this consumer`,
      );
    }
    this.#positions.set(key(topic, partition), offset);
    this.#seeks++;
  }

  /**
   * Joins the group and resolves once the first assignment is known and positioned.
   * (A member may legitimately get no partitions when the group has more members than partitions.)
   */
  async start(): Promise<void> {
    this.#check();
    if (this.#started) return;
    this.#started = true;
    this.#consumer.topics.trackAll(...this.#options.topics);
    try {
      await this.#consumer.joinGroup({
        sessionTimeout: this.#options.sessionTimeoutMs,
        rebalanceTimeout: this.#options.rebalanceTimeoutMs,
        heartbeatInterval: this.#options.heartbeatIntervalMs,
      });
    } catch (error) {
      throw translateKafkaError(error, 'joinGroup');
    }
    await this.#applyJoins();
  }

  #check(): void {
    if (this.#closed) throw new ClosedError('kafka consumer');
  }

  async #applyJoins(): Promise<void> {
    while (this.#pendingJoins.length > 0) {
      const join = this.#pendingJoins.shift()!;
      const assigned: TopicPartition[] = [];
      for (const { topic, partitions } of join.assignments ?? []) {
        for (const partition of [...partitions].sort((a, b) => a - b))
          assigned.push({ topic, partition });
      }
      const before = this.#assigned;
      const beforeKeys = new Set(before.map((tp) => key(tp.topic, tp.partition)));
      const nowKeys = new Set(assigned.map((tp) => key(tp.topic, tp.partition)));
      const added = assigned.filter((tp) => !beforeKeys.has(key(tp.topic, tp.partition)));
      const revoked = before.filter((tp) => !nowKeys.has(key(tp.topic, tp.partition)));
      const generation = join.generationId ?? this.#generation + 1;
      if (generation === this.#generation && sameAssignment(before, assigned)) continue;

      for (const tp of revoked) this.#positions.delete(key(tp.topic, tp.partition));
      this.#assigned = assigned;
      this.#generation = generation;
      if (revoked.length > 0 && this.#options.onRevoked) await this.#options.onRevoked(revoked);

      const starts = new Map<string, StartPosition>();
      for (const tp of added) starts.set(key(tp.topic, tp.partition), this.#options.defaultStart);
      const chosen =
        (await this.#options.onAssigned?.({ generation, assigned, added, revoked })) ?? [];
      for (const s of chosen) {
        if (!nowKeys.has(key(s.topic, s.partition))) {
          throw new InvalidArgumentError(
            'onAssigned',
            `${s.topic}[${s.partition}] is not assigned to this consumer`,
          );
        }
        starts.set(key(s.topic, s.partition), s.start);
      }
      await this.#resolveStarts(starts);
      // A rebalance that happened while onAssigned ran is handled by the next loop turn.
    }
  }

  /** Turns symbolic start positions into offsets (ListOffsets, OffsetFetch). */
  async #resolveStarts(starts: Map<string, StartPosition>): Promise<void> {
    const byKind = {
      earliest: [] as TopicPartition[],
      latest: [] as TopicPartition[],
      committed: [] as TopicPartition[],
    };
    for (const tp of this.#assigned) {
      const start = starts.get(key(tp.topic, tp.partition));
      if (start === undefined) continue;
      if (typeof start === 'bigint') {
        if (start < 0n)
          throw new InvalidArgumentError(
            'start',
            `offset ${start} of ${tp.topic}[${tp.partition}] is negative`,
          );
        this.#positions.set(key(tp.topic, tp.partition), start);
      } else byKind[start].push(tp);
    }
    if (byKind.committed.length > 0) {
      const committed = await this.committed(byKind.committed);
      for (const tp of byKind.committed) {
        const offset = committed.get(key(tp.topic, tp.partition));
        if (offset !== undefined && offset >= 0n)
          this.#positions.set(key(tp.topic, tp.partition), offset);
        else byKind[this.#options.fallback].push(tp);
      }
    }
    for (const kind of ['earliest', 'latest'] as const) {
      if (byKind[kind].length === 0) continue;
      const offsets = await this.#listOffsets(
        byKind[kind],
        kind === 'earliest' ? ListOffsetTimestamps.EARLIEST : ListOffsetTimestamps.LATEST,
      );
      for (const tp of byKind[kind])
        this.#positions.set(key(tp.topic, tp.partition), offsets.get(key(tp.topic, tp.partition))!);
    }
  }

  async #listOffsets(
    partitions: TopicPartition[],
    timestamp: bigint,
  ): Promise<Map<string, bigint>> {
    const topics = [...new Set(partitions.map((tp) => tp.topic))];
    const filter: Record<string, number[]> = {};
    for (const tp of partitions) (filter[tp.topic] ??= []).push(tp.partition);
    try {
      const listed = await this.#consumer.listOffsets({
        topics,
        partitions: filter,
        timestamp,
        isolationLevel: this.#readCommitted
          ? FetchIsolationLevels.READ_COMMITTED
          : FetchIsolationLevels.READ_UNCOMMITTED,
      });
      const result = new Map<string, bigint>();
      for (const tp of partitions)
        result.set(key(tp.topic, tp.partition), listed.get(tp.topic)![tp.partition]!);
      return result;
    } catch (error) {
      throw translateKafkaError(error, 'listOffsets');
    }
  }

  /**
   * The end of each partition for this consumer's isolation level: the last stable offset with
   * read_committed, the high watermark otherwise. A consumer whose positions have reached these
   * is caught up. Defaults to the current assignment; keyed by {@link offsetKey}.
   */
  async endOffsets(
    partitions: readonly TopicPartition[] = this.#assigned,
  ): Promise<Map<string, bigint>> {
    this.#check();
    if (partitions.length === 0) return new Map();
    return this.#listOffsets([...partitions], ListOffsetTimestamps.LATEST);
  }

  /**
   * Offsets the group has committed in Kafka, keyed by {@link offsetKey}; -1 where none.
   * Defaults to the current assignment.
   */
  async committed(
    partitions: readonly TopicPartition[] = this.#assigned,
  ): Promise<Map<string, bigint>> {
    const byTopic = new Map<string, number[]>();
    for (const tp of partitions)
      byTopic.set(tp.topic, [...(byTopic.get(tp.topic) ?? []), tp.partition]);
    try {
      const listed = await this.#consumer.listCommittedOffsets({
        topics: [...byTopic].map(([topic, ps]) => ({ topic, partitions: ps })),
      });
      const result = new Map<string, bigint>();
      for (const tp of partitions)
        result.set(key(tp.topic, tp.partition), listed.get(tp.topic)?.[tp.partition] ?? -1n);
      return result;
    } catch (error) {
      throw translateKafkaError(error, 'committedOffsets');
    }
  }

  /** Commits offsets (next offset to read) to the group in Kafka. */
  async commit(offsets: readonly OffsetToCommit[]): Promise<void> {
    this.#check();
    if (offsets.length === 0) return;
    try {
      await this.#consumer.commit({
        offsets: offsets.map(({ topic, partition, offset }) => ({
          topic,
          partition,
          offset,
          leaderEpoch: -1,
        })),
      });
    } catch (error) {
      throw translateKafkaError(error, 'commitOffsets');
    }
  }

  /**
   * One fetch round over every assigned partition: resolves with the partitions that had records
   * (or moved past transaction markers), waiting up to `maxWaitMs` for data. Positions advance
   * past what is returned. After a rebalance, onRevoked and onAssigned run first, and a fetch
   * that straddled the rebalance is dropped (its positions may no longer be ours).
   *
   * With `includeEmpty`, partitions whose position moved without a record to show for it
   * (only transaction markers or aborted records were fetched) come back too, with no records:
   * an owner that stores positions can then store that one as well.
   */
  async poll(
    options: { signal?: AbortSignal; includeEmpty?: boolean } = {},
  ): Promise<ConsumedBatch[]> {
    this.#check();
    if (!this.#started) await this.start();
    this.#throwBackgroundError();
    await this.#applyJoins();
    if (this.#assigned.length === 0) {
      await this.#idle(options.signal);
      this.#throwBackgroundError();
      await this.#applyJoins();
      return [];
    }
    const generation = this.#generation;
    const seeks = this.#seeks;
    let fetched: FetchResult;
    const ahead = this.#ahead;
    this.#ahead = undefined;
    if (ahead !== undefined && ahead.generation === generation && ahead.seeks === seeks) {
      fetched = await ahead.result;
    } else {
      fetched = await this.#fetchSettled();
    }
    if (!fetched.ok) {
      if (this.#closed) return []; // close() pulled the connections from under this fetch
      throw fetched.error;
    }
    const batches = fetched.batches;
    this.#throwBackgroundError();
    if (this.#pendingJoins.length > 0 || generation !== this.#generation || this.#closed) return [];
    // A seek while the fetch was out: it read from positions the owner has since moved.
    if (seeks !== this.#seeks) return [];
    for (const batch of batches)
      this.#positions.set(key(batch.topic, batch.partition), batch.nextOffset);
    if (this.#options.readAhead && batches.some((b) => this.#behind(b))) {
      // Started from the positions just set; see readAhead.
      this.#ahead = { generation, seeks, result: this.#fetchSettled() };
    }
    return options.includeEmpty ? batches : batches.filter((b) => b.records.length > 0);
  }

  /**
   * Whether a partition had more to read than this fetch brought: records past its answer were
   * there already (up to the last stable offset under read_committed, the high watermark
   * otherwise). Only then is a fetch read ahead. A consumer that is caught up does not read
   * ahead: that fetch would come back with the first record or two to arrive while the caller
   * applies this batch, and the rest would wait a whole batch longer.
   */
  #behind(batch: ConsumedBatch): boolean {
    if (batch.records.length === 0) return false;
    const end = this.#readCommitted ? batch.lastStableOffset : batch.highWatermark;
    return end > batch.nextOffset;
  }

  /** One fetch, its failure kept as a value (a fetch held ahead may never be awaited). */
  async #fetchSettled(): Promise<FetchResult> {
    try {
      return { ok: true, batches: await this.#fetchOnce() };
    } catch (error) {
      return { ok: false, error };
    }
  }

  #throwBackgroundError(): void {
    if (this.#backgroundError === undefined) return;
    const error = this.#backgroundError;
    this.#backgroundError = undefined;
    throw translateKafkaError(error, 'consumerGroup');
  }

  /** Waits (with nothing assigned) until a join event, an abort, or maxWaitMs. */
  #idle(signal?: AbortSignal): Promise<void> {
    if (this.#pendingJoins.length > 0 || signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        this.#wakeUp = undefined;
        resolve();
      };
      const timer = setTimeout(done, this.#options.maxWaitMs);
      signal?.addEventListener('abort', done, { once: true });
      this.#wakeUp = done;
    });
  }

  async #fetchOnce(): Promise<(ConsumedBatch & { nextOffset: bigint })[]> {
    let metadata;
    try {
      metadata = await this.#consumer.metadata({ topics: [...this.#options.topics] });
    } catch (error) {
      throw translateKafkaError(error, 'fetch');
    }
    // Group partitions by leader: one Fetch request per broker.
    const byLeader = new Map<
      number,
      { topics: Map<string, FetchRequestTopic>; offsets: Map<string, bigint> }
    >();
    const topicById = new Map<string, string>();
    for (const name of this.#options.topics) {
      const count = metadata.topics.get(name)?.partitionsCount;
      if (count === undefined) continue;
      const before = this.#partitionCounts.get(name);
      if (before !== undefined && before !== count) {
        // Keys map to other partitions now: a stream's new events may be in another partition
        // than its old ones, and the partitions added are assigned to nobody until the group
        // re-forms. Not something to carry on through quietly.
        throw new KafkaOperationError(
          'fetch',
          `topic ${name} had ${before} partitions and has ${count} now: streams moved between partitions; restart the projectors so the group takes the new partitions (a stream read out of order across the change is held until its missing versions arrive), and see docs/kafka.md on changing partition counts`,
          'PARTITIONS_CHANGED',
          false,
        );
      }
      this.#partitionCounts.set(name, count);
    }
    for (const tp of this.#assigned) {
      const position = this.#positions.get(key(tp.topic, tp.partition));
      const topic = metadata.topics.get(tp.topic);
      if (position === undefined) continue;
      if (!topic) {
        // Assigned, yet not in the metadata: a topic just created may take a moment to reach
        // every broker; one still missing after a while was deleted.
        const since = this.#missingSince.get(tp.topic) ?? Date.now();
        this.#missingSince.set(tp.topic, since);
        const gone = Date.now() - since > MISSING_TOPIC_GRACE_MS;
        throw new KafkaOperationError(
          'fetch',
          `topic ${tp.topic} is not in the cluster's metadata${gone ? ` for ${MISSING_TOPIC_GRACE_MS / 1000} s (deleted?); its partitions cannot be read` : ''}`,
          gone ? 'UNKNOWN_TOPIC_OR_PARTITION' : undefined,
          !gone,
        );
      }
      this.#missingSince.delete(tp.topic);
      const count = topic.partitionsCount;
      if (tp.partition >= count) {
        throw new KafkaOperationError(
          'fetch',
          `${tp.topic}[${tp.partition}] is assigned but the topic has ${count} partitions now (recreated?)`,
          'UNKNOWN_TOPIC_OR_PARTITION',
          false,
        );
      }
      const leader = topic.partitions[tp.partition]?.leader ?? -1;
      if (leader < 0) continue;
      topicById.set(topic.id, tp.topic);
      let request = byLeader.get(leader);
      if (!request) byLeader.set(leader, (request = { topics: new Map(), offsets: new Map() }));
      let topicRequest = request.topics.get(topic.id);
      if (!topicRequest)
        request.topics.set(topic.id, (topicRequest = { topicId: topic.id, partitions: [] }));
      topicRequest.partitions.push({
        partition: tp.partition,
        fetchOffset: position,
        partitionMaxBytes: this.#options.maxBytesPerPartition,
        currentLeaderEpoch: -1,
        lastFetchedEpoch: -1,
      });
      request.offsets.set(key(tp.topic, tp.partition), position);
    }
    const responses = await Promise.all(
      [...byLeader].map(async ([node, request]) => {
        let response: FetchResponse;
        try {
          const broker = metadata.brokers.get(node);
          if (!broker) {
            throw new KafkaOperationError(
              'fetch',
              `broker ${node} is not in the metadata`,
              undefined,
              true,
            );
          }
          // Not Consumer.fetch: its read_committed filter drops committed records (fetch.ts).
          response = await fetchRaw(this.#consumer, this.#fetchPool, broker, {
            topics: [...request.topics.values()],
            maxWaitMs: this.#options.maxWaitMs,
            minBytes: 1,
            maxBytes: this.#options.maxBytes,
            isolationLevel: this.#readCommitted
              ? FetchIsolationLevels.READ_COMMITTED
              : FetchIsolationLevels.READ_UNCOMMITTED,
          });
        } catch (error) {
          throw translateKafkaError(error, 'fetch');
        }
        return { response, offsets: request.offsets };
      }),
    );
    const batches: (ConsumedBatch & { nextOffset: bigint })[] = [];
    for (const { response, offsets } of responses) {
      for (const topicResponse of response.responses) {
        const topic = topicById.get(topicResponse.topicId);
        if (topic === undefined) continue;
        for (const partition of topicResponse.partitions) {
          const fetchOffset = offsets.get(key(topic, partition.partitionIndex));
          if (fetchOffset === undefined) continue;
          if (partition.errorCode !== 0) {
            // A leader moving: the next poll (with fresh metadata) reads it again.
            if (TRANSIENT_PARTITION_ERRORS.has(partition.errorCode)) continue;
            partitionError(topic, partition.partitionIndex, partition.errorCode, fetchOffset);
          }
          const decoded = decodePartition(topic, partition, fetchOffset, this.#readCommitted);
          if (decoded.nextOffset === undefined || decoded.nextOffset <= fetchOffset) continue;
          batches.push({
            topic,
            partition: partition.partitionIndex,
            records: decoded.records,
            nextOffset: decoded.nextOffset,
            highWatermark: partition.highWatermark,
            lastStableOffset: partition.lastStableOffset,
          });
        }
      }
    }
    return batches;
  }

  /** Leaves the group (so the others rebalance at once) and closes connections. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#ahead = undefined;
    this.#wakeUp?.();
    try {
      try {
        // leaveGroup, then close: close() alone leaves the group but keeps the membership marked
        // active (@platformatic/kafka 2.12.1), so a rejoin still in flight carried on after it,
        // on a closed client: its heartbeats then failed and rescheduled themselves forever, or
        // its failure armed a 60 s timer; either held the process open after close().
        // leaveGroup marks the membership inactive first, and a rejoin in flight stops at its
        // next step. docs/kafka-client-notes.md.
        await this.#consumer.leaveGroup(true);
      } finally {
        await this.#consumer.close(true);
      }
    } finally {
      await this.#fetchPool.close();
    }
  }
}

/**
 * Partition errors a later fetch cures by itself, once the metadata shows the new leader:
 * UNKNOWN_TOPIC_OR_PARTITION (3, while a new topic spreads), LEADER_NOT_AVAILABLE (5),
 * NOT_LEADER_OR_FOLLOWER (6), REPLICA_NOT_AVAILABLE (9), KAFKA_STORAGE_ERROR (56),
 * FENCED_LEADER_EPOCH (74), UNKNOWN_LEADER_EPOCH (75), OFFSET_NOT_AVAILABLE (78).
 */
const TRANSIENT_PARTITION_ERRORS = new Set([3, 5, 6, 9, 56, 74, 75, 78]);

/**
 * Other per-partition errors of a Fetch answer (Kafka's error codes). Never ignored: unknown
 * ones end this poll with a retryable error; the ones a retry cannot cure (the
 * position is outside the partition, the topic is gone or was recreated under another id) end
 * it with a non-retryable one that says what to do, and a projection engine stops on those.
 */
function partitionError(topic: string, partition: number, code: number, offset: bigint): never {
  const where = `${topic}[${partition}] at offset ${offset}`;
  const fatal: Record<number, [string, string]> = {
    1: [
      'OFFSET_OUT_OF_RANGE',
      `${where}: the stored offset is outside what the partition holds (the topic was deleted and recreated, or retention dropped records not applied yet); rebuild the projection or reset it`,
    ],
    100: ['UNKNOWN_TOPIC_ID', `${where}: the topic's id is unknown (deleted and recreated?)`],
    103: [
      'INCONSISTENT_TOPIC_ID',
      `${where}: the topic was recreated under another id; its offsets mean nothing now`,
    ],
    29: ['TOPIC_AUTHORIZATION_FAILED', `${where}: not authorized to read the topic`],
    2: ['CORRUPT_MESSAGE', `${where}: the broker reports a corrupt record`],
  };
  const known = fatal[code];
  if (known) throw new KafkaOperationError('fetch', known[1], known[0], false);
  throw new KafkaOperationError(
    'fetch',
    `${where}: the broker answered with error code ${code}; retrying`,
    `code ${code}`,
    true,
  );
}

/** The key {@link KafkaConsumer.committed} uses for a partition. */
export function offsetKey(topic: string, partition: number): string {
  return key(topic, partition);
}
