/**
 * The Kafka-fed projection runner: a consumer-group member that applies the events of its
 * partitions to one physical version of a projection.
 *
 * Exactly one effect per event, whatever crashes or rebalances:
 *
 * - Offsets live in the read-model database (`tm_projection_offsets`), written in the same
 *   transaction as the changes they cover. On every assignment the runner starts each partition
 *   from its stored offset, never from Kafka's committed offsets.
 * - The offset write is a compare-and-set on the offset the runner started the batch from. The
 *   library learns of a rebalance late (after the new owner may have started), so two members
 *   can briefly work on one partition: whichever commits second finds the offset moved, rolls
 *   back, and re-reads it.
 * - Each stream's applied version is kept too (`tm_projection_streams`, the applier's
 *   `dedupeByStream`): an event at or below it has no second effect. That also answers
 *   consistency tokens in this mode (`ReadModels` with `tokenMode: 'stream'`).
 *
 * Failing handlers are retried, then parked with later events of their stream behind them
 * (ProjectionApplier). A record that is not a Tidemark event at all is parked as well, under a
 * stream of its own per partition (see {@link INVALID_RECORD_TYPE}), so nothing is dropped
 * silently.
 */
import {
  ClosedError,
  InvalidArgumentError,
  silentLogger,
  type Logger,
  type ProjectionDefinition,
  type ProjectionSink,
  type ProjectionState,
  type RecordedEvent,
  type SqlExecutor,
  type Upcasters,
} from '../core/index.ts';
import {
  ProgressMovedError,
  ProjectionApplier,
  abortableDelay,
  type RetryPolicy,
} from '../projections/applier.ts';
import { ledger, ledgerMigrations, type ParkedEvent } from '../projections/ledger.ts';
import { dropRetired, versionsToRun } from '../projections/versions.ts';
import type { KafkaConnection } from './connection.ts';
import {
  KafkaConsumer,
  offsetKey,
  type AssignmentChange,
  type ConsumedBatch,
  type PartitionStart,
  type TopicPartition,
} from './consumer.ts';
import { KafkaWireFormatError } from './errors.ts';
import { KafkaReader } from './reader.ts';
import type { ConsumedRecord } from './records.ts';
import { partitionFor } from './topics.ts';
import { decodeEvent } from './wire.ts';

/** The type of the placeholder event a record that could not be decoded is parked as. */
export const INVALID_RECORD_TYPE = '$tidemark.invalid-record';

/** Options of {@link KafkaProjectionRunner}. */
export interface KafkaProjectionRunnerOptions {
  readonly projection: ProjectionDefinition;
  readonly sink: ProjectionSink;
  readonly connection: KafkaConnection;
  /** The event topics to read (e.g. `['order-events']`). */
  readonly topics: readonly string[];
  /** The physical version to run (a rebuild's). Default: the one this code builds. */
  readonly version?: number;
  /** The consumer group. Default `<groupPrefix>-projection-<name>-v<physical version>`. */
  readonly groupId?: string;
  /** Prefix of the default group id (one per application and environment). Default `tidemark`. */
  readonly groupPrefix?: string;
  /** Static group membership: a stable id per process (see KafkaConsumerOptions). */
  readonly groupInstanceId?: string;
  /** Upcasters of the application: events reach `apply` in the current schema. */
  readonly upcasters?: Upcasters;
  readonly retry?: Partial<RetryPolicy>;
  /** Longest a poll waits for records. Default 500 ms. */
  readonly maxWaitMs?: number;
  /** Upper bound of one fetch per partition (so of one batch). Default 1 MiB. */
  readonly maxBytesPerPartition?: number;
  /** Default 30000 ms; a member that crashed holds its partitions this long. */
  readonly sessionTimeoutMs?: number;
  readonly heartbeatIntervalMs?: number;
  readonly rebalanceTimeoutMs?: number;
  /** How long a retired version's tables stay before they are dropped. Default 10000 ms. */
  readonly dropGraceMs?: number;
  readonly logger?: Logger;
}

/** One partition in {@link KafkaProjectionStatus}. */
export interface PartitionStatus {
  readonly topic: string;
  readonly partition: number;
  /** The next offset to apply, as stored in the read-model database (0 when none yet). */
  readonly offset: number;
  /** The end a read_committed reader sees (the last stable offset). */
  readonly end: number;
  readonly lag: number;
  /** Whether this process owns the partition now. */
  readonly owned: boolean;
}

/** What {@link KafkaProjectionRunner.status} reports. */
export interface KafkaProjectionStatus {
  name: string;
  version: number;
  state: ProjectionState | 'stopped';
  /** The highest global position this process has applied (positions interleave across partitions). */
  position: number;
  /** Offsets between what is stored and the end, summed over every partition of the topics. */
  lagEvents: number;
  /** Age of the oldest record fetched but not yet applied (0 when caught up). */
  lagSeconds: number;
  parked: number;
  eventsPerSecond: number;
  partitions: PartitionStatus[];
}

type StreamWaiter = {
  streamId: string;
  version: number;
  resolve: (reached: boolean | undefined) => void;
  timer?: NodeJS.Timeout;
};

const key = offsetKey;

/**
 * Applies the events of a consumer group's partitions to a projection. Same shape as the
 * store-fed ProjectionRunner: `start`, `stop`, `status`, `whenCaughtUp`, `applier` for parked
 * events, plus {@link whenStreamApplied} for consistency waits.
 */
export class KafkaProjectionRunner {
  readonly definition: ProjectionDefinition;
  readonly topics: readonly string[];
  readonly #sink: ProjectionSink;
  readonly #connection: KafkaConnection;
  readonly #options: KafkaProjectionRunnerOptions;
  readonly #logger: Logger;
  readonly #abort = new AbortController();
  #version: number | undefined;
  #applier: ProjectionApplier | undefined;
  #consumer: KafkaConsumer | undefined;
  #reader: KafkaReader | undefined;
  #state: ProjectionState | 'stopped' = 'stopped';
  /** Stored next offset per owned partition (null: no row yet); the compare-and-set's expectation. */
  readonly #stored = new Map<string, bigint | null>();
  #position = 0;
  #rate = 0;
  #oldestPendingAt: number | undefined;
  #loop: Promise<void> | undefined;
  #streamWaiters = new Set<StreamWaiter>();
  #commitListeners = new Set<() => void>();
  /** Told of every change a watcher may wait for (see {@link onChange}). */
  readonly #changeListeners = new Set<() => void>();
  #switchListeners = new Set<(version: number) => void>();
  #lastSwitchCheck = 0;
  #dropTimer: NodeJS.Timeout | undefined;
  #failure: unknown;

  constructor(options: KafkaProjectionRunnerOptions) {
    this.definition = options.projection;
    if (options.topics.length === 0) {
      throw new InvalidArgumentError('topics', 'name at least one topic to read');
    }
    this.topics = [...options.topics];
    this.#sink = options.sink;
    this.#connection = options.connection;
    this.#options = options;
    this.#version = options.version;
    this.#logger = options.logger ?? silentLogger;
  }

  get name(): string {
    return this.definition.name;
  }

  /** The physical version (known once started; before that, the definition's version). */
  get version(): number {
    return this.#version ?? this.definition.version;
  }

  get state(): ProjectionState | 'stopped' {
    return this.#state;
  }

  /** The highest global position applied by this process. */
  get position(): number {
    return this.#position;
  }

  /** The consumer group this runner is a member of (known once started). */
  get groupId(): string {
    return (
      this.#options.groupId ??
      `${this.#options.groupPrefix ?? 'tidemark'}-projection-${this.name}-v${this.version}`
    );
  }

  /** The partitions this process owns now. */
  get assignment(): readonly TopicPartition[] {
    return this.#consumer?.assignment ?? [];
  }

  /** The applier, for parked-event operations (after start). */
  get applier(): ProjectionApplier {
    if (!this.#applier) throw new InvalidArgumentError('runner', `start ${this.name} first`);
    return this.#applier;
  }

  /**
   * Parked events of this version (dead letters), by stream and version: the first of a stream
   * failed (its `error` says why, `attempts` how often it was tried); the rest wait behind it.
   * Retry a stream with `applier.retryParked(streamId)`, drop one with `applier.skipParked(eventId)`.
   */
  parked(filter: { streamId?: string; limit?: number } = {}): Promise<ParkedEvent[]> {
    return ledger.parked(this.#sink, { name: this.name, version: this.version, ...filter });
  }

  /** The last error the loop hit, if it is retrying. */
  get lastError(): unknown {
    return this.#failure;
  }

  /**
   * Finds or registers its version (creating the tables), joins the consumer group and starts
   * applying. Resolves once the first assignment is known and positioned.
   */
  async start(): Promise<void> {
    if (this.#loop) return;
    if (this.#abort.signal.aborted) throw new ClosedError(`kafka projection runner ${this.name}`);
    await this.#sink.migrate('projections', ledgerMigrations);
    if (this.#version === undefined) {
      const rows = await versionsToRun(this.#sink, this.definition);
      const row = rows.find((r) => r.state === 'active') ?? rows[rows.length - 1];
      if (!row) {
        throw new InvalidArgumentError(
          'projection.version',
          `${this.name}: a newer code version of this projection is deployed; this one runs nothing`,
        );
      }
      this.#version = row.version;
    }
    const row = await ledger.projection(this.#sink, this.name, this.#version);
    if (!row)
      throw new InvalidArgumentError('version', `${this.name} has no version ${this.#version}`);
    if (row.state === 'retired') {
      throw new InvalidArgumentError('version', `${this.name} v${row.version} is retired`);
    }
    this.#state = row.state;
    const upcasters = this.#options.upcasters;
    // Upcast inside apply, so that an event no upcaster can handle is a handler failure: it is
    // retried and parked as it came (in its stored schema), and a retry after the upcaster is
    // deployed applies it.
    const definition: ProjectionDefinition =
      upcasters && !upcasters.isEmpty
        ? {
            ...this.definition,
            apply: (event, context) => this.definition.apply(upcasters.upcast(event), context),
          }
        : this.definition;
    this.#applier = new ProjectionApplier({
      definition,
      version: row.version,
      sink: this.#sink,
      dedupeByStream: true,
      logger: this.#logger,
      signal: this.#abort.signal,
      ...(this.#options.retry ? { retry: this.#options.retry } : {}),
    });
    await this.#applier.loadParked();
    const o = this.#options;
    this.#consumer = new KafkaConsumer(this.#connection, {
      groupId: this.groupId,
      topics: this.topics,
      defaultStart: 'earliest',
      onAssigned: (change) => this.#onAssigned(change),
      onRevoked: (partitions) => {
        for (const tp of partitions) this.#stored.delete(key(tp.topic, tp.partition));
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
    try {
      await this.#consumer.start();
    } catch (error) {
      await this.#consumer.close().catch(() => {});
      this.#consumer = undefined;
      this.#state = 'stopped';
      throw error;
    }
    this.#logger.info(
      {
        projection: this.name,
        version: this.version,
        groupId: this.groupId,
        assigned: this.#consumer.assignment.map((tp) => `${tp.topic}[${tp.partition}]`),
      },
      'kafka projection runner started',
    );
    this.#loop = this.#run();
  }

  /** Every assigned partition starts at the offset stored in the read-model database. */
  async #onAssigned(change: AssignmentChange): Promise<PartitionStart[]> {
    const stored = await this.#readOffsets();
    this.#stored.clear();
    const starts: PartitionStart[] = [];
    for (const tp of change.assigned) {
      const offset = stored.get(key(tp.topic, tp.partition));
      this.#stored.set(key(tp.topic, tp.partition), offset ?? null);
      starts.push({ ...tp, start: offset ?? 'earliest' });
    }
    // Another process may have parked events of streams in these partitions.
    await this.#applier!.loadParked();
    this.#logger.info(
      {
        projection: this.name,
        generation: change.generation,
        assigned: change.assigned.map((tp) => `${tp.topic}[${tp.partition}]`),
        revoked: change.revoked.map((tp) => `${tp.topic}[${tp.partition}]`),
      },
      'partitions assigned; resuming from the offsets stored with the read models',
    );
    // The consumer's assignment is already the new one: watchers may look now.
    this.#changed();
    return starts;
  }

  async #readOffsets(sql: Pick<SqlExecutor, 'query'> = this.#sink): Promise<Map<string, bigint>> {
    const rows = await sql.query<{ topic: string; kafka_partition: number; next_offset: unknown }>(
      `SELECT topic, kafka_partition, next_offset FROM tm_projection_offsets
       WHERE name = $1 AND version = $2`,
      [this.name, this.version],
    );
    const offsets = new Map<string, bigint>();
    for (const row of rows) {
      offsets.set(key(row.topic, Number(row.kafka_partition)), BigInt(String(row.next_offset)));
    }
    return offsets;
  }

  /** After a failed or contested batch: positions and expectations back to what is stored. */
  async #resync(): Promise<void> {
    const consumer = this.#consumer!;
    const stored = await this.#readOffsets();
    for (const tp of consumer.assignment) {
      const k = key(tp.topic, tp.partition);
      if (!this.#stored.has(k)) continue;
      const offset = stored.get(k);
      this.#stored.set(k, offset ?? null);
      if (offset !== undefined) consumer.seek(tp.topic, tp.partition, offset);
      else {
        const [earliest] = (
          await this.#ensureReader().offsets(tp.topic, 'earliest', { partitions: [tp.partition] })
        ).values();
        consumer.seek(tp.topic, tp.partition, earliest!);
      }
    }
    await this.#applier!.loadParked();
  }

  #ensureReader(): KafkaReader {
    this.#reader ??= new KafkaReader(this.#connection, { isolation: 'read_committed' });
    return this.#reader;
  }

  async #run(): Promise<void> {
    const signal = this.#abort.signal;
    const consumer = this.#consumer!;
    let delay = 100;
    while (!signal.aborted) {
      try {
        const batches = await consumer.poll({ signal, includeEmpty: true });
        if (signal.aborted) break;
        if (batches.length === 0) {
          this.#rate = 0;
          this.#oldestPendingAt = undefined;
          if (this.#state === 'building') await this.#maybeSwitchOver();
          continue;
        }
        await this.#apply(batches);
        delay = 100;
        this.#failure = undefined;
      } catch (error) {
        if (signal.aborted) break;
        if (error instanceof ProgressMovedError) {
          const row = await ledger
            .projection(this.#sink, this.name, this.version)
            .catch(() => undefined);
          if (!row || row.state === 'retired') {
            this.#logger.info(
              { projection: this.name, version: this.version },
              'version retired; runner stops',
            );
            this.#state = 'retired';
            this.#changed();
            break;
          }
          this.#logger.warn(
            { projection: this.name, version: this.version },
            'another member moved a partition on (a rebalance in flight); re-reading offsets',
          );
          await this.#resync().catch(() => {});
          continue;
        }
        this.#failure = error;
        this.#logger.error(
          { projection: this.name, err: error, retryInMs: delay },
          'kafka projection runner error; retrying',
        );
        await abortableDelay(delay, signal);
        delay = Math.min(delay * 2, 5000);
        await this.#resync().catch(() => {});
      }
    }
  }

  /** Applies one poll's batches (every partition) in one read-model transaction. */
  async #apply(batches: readonly ConsumedBatch[]): Promise<void> {
    const started = performance.now();
    const events: RecordedEvent[] = [];
    /** Per event: its partition key and Kafka offset. */
    const origins: { key: string; offset: bigint }[] = [];
    const invalid = new Map<string, { record: ConsumedRecord; error: KafkaWireFormatError }[]>();
    const ends = new Map<string, bigint>();
    for (const batch of batches) {
      const k = key(batch.topic, batch.partition);
      if (!this.#stored.has(k)) continue; // revoked meanwhile
      ends.set(k, batch.nextOffset);
      for (const record of batch.records) {
        try {
          events.push(decodeEvent(record));
          origins.push({ key: k, offset: record.offset });
        } catch (error) {
          if (!(error instanceof KafkaWireFormatError)) throw error;
          const list = invalid.get(k) ?? [];
          list.push({ record, error });
          invalid.set(k, list);
        }
      }
      const first = batch.records[0];
      if (first && this.#oldestPendingAt === undefined)
        this.#oldestPendingAt = Number(first.timestamp);
    }
    if (ends.size === 0) return;
    const applier = this.#applier!;
    const save = async (sql: SqlExecutor, upTo: number | undefined): Promise<void> => {
      await this.#checkNotRetired(sql);
      if (upTo === undefined) {
        // The whole poll: every partition moves to where its batch ended. Sorted, so that two
        // members writing the same rows take their locks in the same order. The plain moves (a
        // stored row, nothing to park) go in one statement; the rest one by one.
        const plain: { key: string; to: bigint; expected: bigint }[] = [];
        for (const k of [...ends.keys()].sort()) {
          const expected = this.#stored.get(k);
          const to = ends.get(k)!;
          if (expected === undefined || expected === null || invalid.has(k)) {
            await this.#saveOffset(sql, k, to, invalid.get(k));
          } else if (to > expected) {
            plain.push({ key: k, to, expected });
          }
        }
        await this.#moveOffsets(sql, plain);
      } else {
        const origin = origins[upTo]!;
        await this.#saveOffset(sql, origin.key, origin.offset + 1n, invalid.get(origin.key));
      }
    };
    if (events.length === 0) {
      await this.#sink.transaction((sql) => save(sql, undefined));
    } else {
      await applier.applyBatch(events, (sql, list, upTo) =>
        save(sql, upTo === list.length - 1 ? undefined : upTo),
      );
    }
    if (invalid.size > 0) {
      for (const [k, list] of invalid) {
        for (const { error } of list) {
          this.#logger.error(
            { projection: this.name, partition: k.replace('\u0000', ':'), err: error },
            'record is not a Tidemark event; parked',
          );
        }
      }
      await applier.loadParked();
    }
    for (const event of events) {
      if (event.position > this.#position) this.#position = event.position;
    }
    const seconds = (performance.now() - started) / 1000;
    this.#rate = seconds > 0 ? events.length / seconds : 0;
    this.#oldestPendingAt = undefined;
    this.#notifyApplied(events);
  }

  async #checkNotRetired(sql: SqlExecutor): Promise<void> {
    const [row] = await sql.query<{ state: string }>(
      'SELECT state FROM tm_projections WHERE name = $1 AND version = $2',
      [this.name, this.version],
    );
    if (!row || row.state === 'retired') throw new ProgressMovedError(this.name, this.version);
  }

  /**
   * Moves a partition's stored offset to `to`, if it is still where this member found it
   * (compare-and-set), parking on the way any undecodable record below `to`.
   */
  async #saveOffset(
    sql: SqlExecutor,
    k: string,
    to: bigint,
    invalid: readonly { record: ConsumedRecord; error: KafkaWireFormatError }[] | undefined,
  ): Promise<void> {
    const expected = this.#stored.get(k);
    if (expected === undefined) throw new ProgressMovedError(this.name, this.version);
    if (expected !== null && to <= expected) return;
    const [topic, partitionText] = k.split('\u0000') as [string, string];
    const partition = Number(partitionText);
    for (const { record, error } of invalid ?? []) {
      if (record.offset >= to || (expected !== null && record.offset < expected)) continue;
      await ledger.park(
        sql,
        this.name,
        this.version,
        invalidRecordEvent(record, error),
        error.message,
        0,
      );
    }
    const { rowCount } =
      expected === null
        ? await sql.execute(
            `INSERT INTO tm_projection_offsets (name, version, topic, kafka_partition, next_offset)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name, version, topic, kafka_partition) DO NOTHING`,
            [this.name, this.version, topic, partition, to],
          )
        : await sql.execute(
            `UPDATE tm_projection_offsets SET next_offset = $5
             WHERE name = $1 AND version = $2 AND topic = $3 AND kafka_partition = $4 AND next_offset = $6`,
            [this.name, this.version, topic, partition, to, expected],
          );
    if (rowCount !== 1) throw new ProgressMovedError(this.name, this.version);
    // Optimistic: if the transaction then fails to commit, the next compare-and-set fails and
    // the runner re-reads what is stored.
    this.#stored.set(k, to);
  }

  /**
   * Compare-and-set of several stored offsets in one statement (the common case of a poll):
   * every row must still hold its expected offset, or none moves (the transaction fails).
   */
  async #moveOffsets(
    sql: SqlExecutor,
    moves: readonly { key: string; to: bigint; expected: bigint }[],
  ): Promise<void> {
    if (moves.length === 0) return;
    if (moves.length === 1) {
      const [move] = moves;
      await this.#saveOffset(sql, move!.key, move!.to, undefined);
      return;
    }
    const values: unknown[] = [this.name, this.version];
    const rows = moves.map(({ key, to, expected }) => {
      const [topic, partition] = key.split('\u0000') as [string, string];
      const n = values.length;
      values.push(topic, Number(partition), to, expected);
      return `(CAST($${n + 1} AS TEXT), CAST($${n + 2} AS INTEGER), CAST($${n + 3} AS BIGINT), CAST($${n + 4} AS BIGINT))`;
    });
    // VALUES columns are column1..column4 in both PostgreSQL and SQLite.
    const { rowCount } = await sql.execute(
      `UPDATE tm_projection_offsets SET next_offset = m.column3
       FROM (VALUES ${rows.join(', ')}) AS m
       WHERE tm_projection_offsets.name = $1 AND tm_projection_offsets.version = $2
         AND tm_projection_offsets.topic = m.column1
         AND tm_projection_offsets.kafka_partition = m.column2
         AND tm_projection_offsets.next_offset = m.column4`,
      values,
    );
    if (rowCount !== moves.length) throw new ProgressMovedError(this.name, this.version);
    for (const { key, to } of moves) this.#stored.set(key, to);
  }

  /** Switches a building version over once the whole group has caught up (checked at most every second). */
  async #maybeSwitchOver(): Promise<void> {
    if (Date.now() - this.#lastSwitchCheck < 1000) return;
    this.#lastSwitchCheck = Date.now();
    if (!(await this.#groupCaughtUp())) return;
    const retired = await this.#sink.transaction(async (sql) => {
      const row = await ledger.projection(sql, this.name, this.version);
      if (row?.state !== 'building') return undefined;
      return ledger.activate(sql, this.name, this.version);
    });
    if (retired === undefined) {
      const row = await ledger.projection(this.#sink, this.name, this.version);
      this.#state = row?.state ?? 'retired';
      this.#changed();
      // Another member (or another builder of this version) switched first: active all the same.
      if (this.#state === 'active') {
        for (const listener of this.#switchListeners) listener(this.version);
      }
      return;
    }
    this.#state = 'active';
    this.#changed();
    this.#logger.info(
      { projection: this.name, version: this.version, retired: retired.map((r) => r.version) },
      'switched over',
    );
    for (const listener of this.#switchListeners) listener(this.version);
    if (retired.length > 0) {
      const grace = this.#options.dropGraceMs ?? 10_000;
      this.#dropTimer = setTimeout(() => {
        dropRetired(this.#sink, this.name, grace)
          .catch((error: unknown) =>
            this.#logger.warn(
              { projection: this.name, err: error },
              'could not drop retired versions',
            ),
          )
          .finally(() => this.#changed());
      }, grace);
      this.#dropTimer.unref();
    }
  }

  /** The end a read_committed reader sees now, for every partition of the topics. */
  async #endOffsets(): Promise<Map<string, { end: bigint; start: bigint }>> {
    const reader = this.#ensureReader();
    const result = new Map<string, { end: bigint; start: bigint }>();
    for (const topic of this.topics) {
      const ends = await reader.offsets(topic, 'latest');
      const starts = await reader.offsets(topic, 'earliest', { partitions: [...ends.keys()] });
      for (const [partition, end] of ends) {
        result.set(key(topic, partition), { end, start: starts.get(partition) ?? 0n });
      }
    }
    return result;
  }

  /** True when the stored offsets of every partition have reached `ends`. */
  async #reached(ends: Map<string, { end: bigint; start: bigint }>): Promise<boolean> {
    const stored = await this.#readOffsets();
    for (const [k, { end, start }] of ends) {
      const offset = stored.get(k) ?? start;
      if (offset < end) return false;
    }
    return true;
  }

  async #groupCaughtUp(): Promise<boolean> {
    return this.#reached(await this.#endOffsets());
  }

  /**
   * Resolves `true` once the group (this process and any other member) has applied everything
   * the topics held when this was called (and a version being built has switched over), or
   * `false` after `timeoutMs` or when the runner stops. Waits are woken by this process's
   * commits, and poll the stored offsets otherwise.
   */
  async whenCaughtUp(timeoutMs?: number): Promise<boolean> {
    const deadline = timeoutMs === undefined ? Infinity : Date.now() + timeoutMs;
    const ends = await this.#endOffsets();
    for (;;) {
      if (await this.#reached(ends)) {
        if (this.#state !== 'building') return this.#state !== 'stopped';
      }
      if (this.#abort.signal.aborted || this.#state === 'retired') return false;
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await this.#nextCommit(Math.min(left, 100));
    }
  }

  /** Waits for the next commit of this runner, at most `ms`. */
  #nextCommit(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#commitListeners.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#commitListeners.add(done);
    });
  }

  /**
   * Resolves `true` once this process has applied `streamId` up to `version`, `false` after
   * `timeoutMs` or on stop, and `undefined` at once when the stream's partition belongs to
   * another member (then only the ledger can tell). Only this process's commits are seen: a
   * consistency wait checks the ledger (`tm_projection_streams`) around it (ReadModels does).
   */
  whenStreamApplied(
    streamId: string,
    version: number,
    timeoutMs: number,
  ): Promise<boolean | undefined> {
    if (this.#abort.signal.aborted) return Promise.resolve(false);
    if (!this.#mayOwn(streamId)) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const waiter: StreamWaiter = { streamId, version, resolve };
      waiter.timer = setTimeout(() => {
        this.#streamWaiters.delete(waiter);
        resolve(false);
      }, timeoutMs);
      waiter.timer.unref();
      this.#streamWaiters.add(waiter);
    });
  }

  /** False when the stream's partition is known to be another member's (one topic only). */
  #mayOwn(streamId: string): boolean {
    const consumer = this.#consumer;
    if (!consumer || this.topics.length !== 1) return true;
    const topic = this.topics[0]!;
    const count = consumer.partitionCount(topic);
    if (count === undefined) return true;
    const partition = partitionFor(streamId, count);
    return consumer.assignment.some((tp) => tp.topic === topic && tp.partition === partition);
  }

  #notifyApplied(events: readonly RecordedEvent[]): void {
    for (const listener of [...this.#commitListeners]) listener();
    this.#changed();
    if (this.#streamWaiters.size === 0) return;
    const latest = new Map<string, number>();
    for (const event of events) latest.set(event.streamId, event.streamVersion);
    for (const waiter of this.#streamWaiters) {
      const applied = latest.get(waiter.streamId);
      if (applied !== undefined && applied >= waiter.version) {
        clearTimeout(waiter.timer);
        this.#streamWaiters.delete(waiter);
        waiter.resolve(true);
      }
    }
  }

  /** Calls `listener` when this runner's version becomes the active one. */
  onSwitchOver(listener: (version: number) => void): () => void {
    this.#switchListeners.add(listener);
    return () => this.#switchListeners.delete(listener);
  }

  async status(): Promise<KafkaProjectionStatus> {
    const owned = new Set(
      (this.#consumer?.assignment ?? []).map((tp) => key(tp.topic, tp.partition)),
    );
    const partitions: PartitionStatus[] = [];
    let lagEvents = 0;
    try {
      const [ends, stored] = await Promise.all([this.#endOffsets(), this.#readOffsets()]);
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
    } catch (error) {
      this.#logger.debug({ projection: this.name, err: error }, 'status: offsets unavailable');
    }
    const parked = await ledger
      .parkedCount(this.#sink, this.name, this.version)
      .catch(() => this.#applier?.parkedCount ?? 0);
    return {
      name: this.name,
      version: this.version,
      state: this.#state,
      position: this.#position,
      lagEvents,
      lagSeconds:
        this.#oldestPendingAt === undefined
          ? 0
          : Math.max(0, (Date.now() - this.#oldestPendingAt) / 1000),
      parked,
      eventsPerSecond: Math.round(this.#rate),
      partitions,
    };
  }

  /** Finishes the batch in flight, leaves the group (the others take over at once), stops. */
  async stop(): Promise<void> {
    this.#abort.abort(new ClosedError(`kafka projection runner ${this.name}`));
    if (this.#dropTimer) clearTimeout(this.#dropTimer);
    await this.#loop;
    this.#loop = undefined;
    await this.#consumer?.close().catch(() => {});
    this.#consumer = undefined;
    await this.#reader?.close().catch(() => {});
    this.#reader = undefined;
    if (this.#state !== 'retired') this.#state = 'stopped';
    for (const waiter of this.#streamWaiters) {
      clearTimeout(waiter.timer);
      waiter.resolve(false);
    }
    this.#streamWaiters.clear();
    for (const listener of [...this.#commitListeners]) listener();
    this.#changed();
  }

  /**
   * Calls `listener` after each change someone may wait for: a new assignment, a commit, a
   * change of state (switched over, retired, stopped), a drop of retired versions by this
   * runner's timer. The listener looks at what it waits for itself (`assignment`, `state`, …).
   */
  onChange(listener: () => void): () => void {
    this.#changeListeners.add(listener);
    return () => this.#changeListeners.delete(listener);
  }

  #changed(): void {
    for (const listener of [...this.#changeListeners]) listener();
  }
}

/**
 * The placeholder a record that is not a Tidemark event is parked as: its own stream per
 * partition (`$invalid-<topic>-<partition>`), its offset as the version, and what is known of
 * it as data. Listing shows it; skipping drops it; retrying applies nothing (no projection
 * handles the type) and unparks it.
 */
function invalidRecordEvent(record: ConsumedRecord, error: KafkaWireFormatError): RecordedEvent {
  const headers: Record<string, string> = {};
  for (const [name, value] of record.headers) headers[name] = value.toString('base64');
  return {
    type: INVALID_RECORD_TYPE,
    eventId: `kafka:${record.topic}:${record.partition}:${record.offset}`,
    streamId: `$invalid-${record.topic}-${record.partition}`,
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
