/**
 * The relay: tails the store's global log and publishes it to Kafka, exactly once for
 * read_committed consumers, whatever crashes when.
 *
 * How (docs/kafka.md has the reasoning):
 *
 * 1. One transactional producer per relay, with a stable transactional id. Starting it
 *    (InitProducerId) bumps the producer epoch: an older instance is fenced, and whatever
 *    transaction it left open is aborted before we go on.
 * 2. The relay's progress (the last global position it published) lives in Kafka, in a compacted
 *    progress topic, written as the last record of every transaction. Events and progress
 *    commit together or not at all, so the progress read back at start is exactly what
 *    read_committed consumers have seen.
 * 3. Batches are read from the store after that position (gap-safe `readAll`), published in one
 *    transaction each, and the next batch is read only once the transaction has committed:
 *    memory stays bounded whatever the backlog.
 * 4. After any failure other than a fence the relay starts a new session (new producer, new
 *    epoch, progress read again from Kafka): a transaction whose outcome is unknown (a lost
 *    EndTxn answer) is then settled by the broker, never guessed. A fence stops the relay with
 *    {@link KafkaProducerFencedError}: another instance owns the transactional id.
 */
import {
  ClosedError,
  InvalidArgumentError,
  TidemarkError,
  silentLogger,
  type EventStore,
  type Logger,
  type RecordedEvent,
} from '../core/index.ts';
import { KafkaAdmin } from './admin.ts';
import type { KafkaConnection } from './connection.ts';
import { KafkaOperationError, KafkaProducerFencedError, KafkaWireFormatError } from './errors.ts';
import { KafkaProducer, type ProducerRecord } from './producer.ts';
import { KafkaReader } from './reader.ts';
import type { EventTopics } from './topics.ts';
import { encodeEvent, validateSource } from './wire.ts';

/** Default name of the compacted topic that holds relay progress records. */
export const DEFAULT_PROGRESS_TOPIC = 'tidemark-relay-progress';

/** The partition of the progress topic that progress records are written to and read from. */
const PROGRESS_PARTITION = 0;

/** Options of {@link KafkaRelay}. */
export interface KafkaRelayOptions {
  readonly connection: KafkaConnection;
  /**
   * The store to publish. The relay reads it raw (`readAll({ upcast: false })`), so events are
   * published as stored, with the schema version they were stored with, whatever upcasters the
   * store has; consumers upcast.
   */
  readonly store: EventStore;
  /** Which events go to which topic, and how topics are created. */
  readonly topics: EventTopics;
  /** `ce_source` of every published event, e.g. `tidemark://orders`. */
  readonly source: string;
  /**
   * The relay's name. Default `default`. The transactional id is `tidemark-relay-<name>`
   * unless {@link transactionalId} is given; it also keys the progress record.
   */
  readonly name?: string;
  /** Override the transactional id (keep it stable across restarts and deployments). */
  readonly transactionalId?: string;
  /** The compacted topic holding progress records. Default `tidemark-relay-progress`. */
  readonly progressTopic?: string;
  /** Create missing topics (event topics and the progress topic) at start. Default true. */
  readonly createTopics?: boolean;
  /** Events read from the store and published per transaction. Default 500. */
  readonly batchSize?: number;
  /**
   * Most bytes (values, keys and headers) sent in one produce request. Default 512 KiB, well
   * under the broker's default `message.max.bytes` (1 MiB). A transaction may span several.
   */
  readonly maxSendBytes?: number;
  /** Look for new events this often when no append notification comes. Default 1000 ms. */
  readonly pollIntervalMs?: number;
  /** How long the broker lets one transaction stay open. Default 60000 ms. */
  readonly transactionTimeoutMs?: number;
  /** Backoff after a failure: first delay, doubled up to `maxRetryDelayMs`. Defaults 100 / 5000. */
  readonly retryDelayMs?: number;
  readonly maxRetryDelayMs?: number;
  readonly logger?: Logger;
}

/** Where the relay is. */
export type RelayState = 'stopped' | 'starting' | 'running' | 'retrying' | 'fenced';

/** What {@link KafkaRelay.status} reports. */
export interface RelayStatus {
  readonly name: string;
  readonly transactionalId: string;
  readonly state: RelayState;
  /** The last global position published (committed in Kafka). */
  readonly position: number;
  /** The store's head when asked. */
  readonly head: number;
  /** Positions between what is published and the head (the relay's backlog). */
  readonly backlog: number;
  /** Events published since start, and transactions committed. */
  readonly published: number;
  readonly transactions: number;
  readonly eventsPerSecond: number;
  readonly lastPublishedAt: Date | undefined;
  /** The last failure, while the relay retries (or why it stopped). */
  readonly lastError: string | undefined;
}

type Waiter = { position: number; resolve: (reached: boolean) => void; timer?: NodeJS.Timeout };

/** The progress record's value, version 1: `{"v":1,"position":<last published position>}`. */
interface ProgressValue {
  v: 1;
  position: number;
}

function positive(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v < 1)
    throw new InvalidArgumentError(name, 'must be a positive integer');
  return v;
}

/**
 * Publishes the store's events to Kafka exactly once. `start()`, then it runs until `stop()`
 * or until it is fenced by a newer instance (then {@link done} rejects with
 * {@link KafkaProducerFencedError}).
 */
export class KafkaRelay {
  readonly name: string;
  readonly transactionalId: string;
  readonly progressTopic: string;
  readonly #connection: KafkaConnection;
  readonly #store: EventStore;
  readonly #topics: EventTopics;
  readonly #source: string;
  readonly #createTopics: boolean;
  readonly #batchSize: number;
  readonly #maxSendBytes: number;
  readonly #pollIntervalMs: number;
  readonly #transactionTimeoutMs: number;
  readonly #retryDelayMs: number;
  readonly #maxRetryDelayMs: number;
  readonly #logger: Logger;
  readonly #abort = new AbortController();
  readonly #ensured = new Set<string>();
  readonly #waiters = new Set<Waiter>();
  #producer: KafkaProducer | undefined;
  #admin: KafkaAdmin | undefined;
  #state: RelayState = 'stopped';
  #position = 0;
  #published = 0;
  #transactions = 0;
  #rate = 0;
  #lastPublishedAt: Date | undefined;
  #lastError: unknown;
  #wake: (() => void) | undefined;
  /** The next batch, read while the previous transaction commits (bounded: one batch). */
  #readAhead: { after: number; events: Promise<RecordedEvent[]> } | undefined;
  #unsubscribe: (() => void) | undefined;
  #loop: Promise<void> | undefined;
  #done: Promise<void>;
  #settle!: { resolve: () => void; reject: (error: unknown) => void };

  constructor(options: KafkaRelayOptions) {
    validateSource(options.source, 'source');
    this.name = options.name ?? 'default';
    if (!/^[A-Za-z0-9._-]{1,200}$/.test(this.name)) {
      throw new InvalidArgumentError('name', 'must be 1 to 200 of A-Z a-z 0-9 . _ -');
    }
    this.transactionalId = options.transactionalId ?? `tidemark-relay-${this.name}`;
    if (this.transactionalId.trim() === '') {
      throw new InvalidArgumentError('transactionalId', 'must not be empty');
    }
    this.progressTopic = options.progressTopic ?? DEFAULT_PROGRESS_TOPIC;
    this.#connection = options.connection;
    this.#store = options.store;
    this.#topics = options.topics;
    this.#source = options.source;
    this.#createTopics = options.createTopics ?? true;
    this.#batchSize = positive('batchSize', options.batchSize, 500);
    this.#maxSendBytes = positive('maxSendBytes', options.maxSendBytes, 512 * 1024);
    this.#pollIntervalMs = positive('pollIntervalMs', options.pollIntervalMs, 1000);
    this.#transactionTimeoutMs = positive(
      'transactionTimeoutMs',
      options.transactionTimeoutMs,
      60_000,
    );
    this.#retryDelayMs = positive('retryDelayMs', options.retryDelayMs, 100);
    this.#maxRetryDelayMs = positive('maxRetryDelayMs', options.maxRetryDelayMs, 5000);
    this.#logger = options.logger ?? silentLogger;
    this.#done = new Promise<void>((resolve, reject) => (this.#settle = { resolve, reject }));
    // Nobody may be listening; a fence is also reported through status() and the logger.
    this.#done.catch(() => {});
  }

  get state(): RelayState {
    return this.#state;
  }

  /** The last global position published and committed. */
  get position(): number {
    return this.#position;
  }

  /**
   * Settles when the relay has stopped: resolves after {@link stop}, rejects with
   * {@link KafkaProducerFencedError} when a newer instance fenced this one.
   */
  get done(): Promise<void> {
    return this.#done;
  }

  /**
   * Creates missing topics, takes over the transactional id (fencing any older instance and
   * aborting what it left open), reads where publishing stopped, and starts publishing.
   * Rejects when that first step fails (then nothing has been published).
   */
  async start(): Promise<void> {
    if (this.#loop) return;
    if (this.#abort.signal.aborted) throw new ClosedError(`kafka relay ${this.name}`);
    this.#state = 'starting';
    try {
      if (this.#createTopics) {
        this.#admin = new KafkaAdmin(this.#connection);
        await this.#ensureProgressTopic(this.#admin);
        await this.#topics.ensure(this.#admin);
        for (const topic of this.#topics.listed) this.#ensured.add(topic);
      }
      // Retryable failures (the coordinator still aborting a crashed predecessor's transaction,
      // a broker restarting) are retried for a while; anything else fails the start.
      const deadline = Date.now() + this.#transactionTimeoutMs;
      let delay = this.#retryDelayMs;
      for (;;) {
        try {
          await this.#openSession();
          break;
        } catch (error) {
          await this.#closeSession();
          const retryable = error instanceof TidemarkError && error.retryable;
          if (!retryable || Date.now() + delay > deadline || this.#abort.signal.aborted)
            throw error;
          this.#logger.warn(
            { relay: this.name, err: error, retryInMs: delay },
            'relay could not start yet; retrying',
          );
          await sleep(delay, this.#abort.signal);
          delay = Math.min(delay * 2, this.#maxRetryDelayMs);
        }
      }
    } catch (error) {
      this.#state = 'stopped';
      await this.#closeSession();
      await this.#admin?.close().catch(() => {});
      this.#admin = undefined;
      throw error;
    }
    this.#unsubscribe = this.#store.onAppended(() => this.#wake?.());
    this.#loop = this.#run();
  }

  async #ensureProgressTopic(admin: KafkaAdmin): Promise<void> {
    const settings = this.#topics.settings;
    const minIsr = settings.configs?.['min.insync.replicas'];
    await admin.createTopic(
      {
        name: this.progressTopic,
        partitions: 1,
        ...(settings.replicationFactor !== undefined
          ? { replicationFactor: settings.replicationFactor }
          : {}),
        configs: {
          'cleanup.policy': 'compact',
          'retention.ms': '-1',
          // Small segments, so that compaction gets to drop superseded progress records.
          'segment.bytes': String(16 * 1024 * 1024),
          ...(minIsr !== undefined ? { 'min.insync.replicas': minIsr } : {}),
        },
      },
      { ifNotExists: true },
    );
  }

  /** A new producer (new epoch: older ones fenced), then the position committed in Kafka. */
  async #openSession(): Promise<void> {
    const producer = new KafkaProducer(this.#connection, {
      transactionalId: this.transactionalId,
      transactionTimeoutMs: this.#transactionTimeoutMs,
    });
    this.#producer = producer;
    await producer.initTransactions();
    const position = await this.#readProgress();
    if (position !== this.#position || this.#transactions === 0) {
      this.#logger.info(
        { relay: this.name, transactionalId: this.transactionalId, position },
        'relay resumes after the last position committed in Kafka',
      );
    }
    this.#position = position;
    this.#state = 'running';
    this.#settleWaiters();
  }

  async #closeSession(): Promise<void> {
    const producer = this.#producer;
    this.#producer = undefined;
    await producer?.close().catch(() => {});
  }

  /**
   * The position in the last committed progress record of this relay.
   *
   * Read after initTransactions, so our own earlier transactions are settled. Other relays may
   * share the progress partition and have a transaction open, which holds the last stable
   * offset back; so first wait until it passes the high watermark seen now (every transaction
   * of ours started below it), then read backwards from it in growing windows: the newest
   * record with our key is the answer, and compaction keeps it.
   */
  async #readProgress(): Promise<number> {
    return readRelayProgress(this.#connection, {
      transactionalId: this.transactionalId,
      progressTopic: this.progressTopic,
      timeoutMs: this.#transactionTimeoutMs + 10_000,
      signal: this.#abort.signal,
    });
  }

  async #run(): Promise<void> {
    const signal = this.#abort.signal;
    let delay = this.#retryDelayMs;
    while (!signal.aborted) {
      try {
        if (!this.#producer) await this.#openSession();
        const ahead = this.#readAhead;
        this.#readAhead = undefined;
        const events =
          ahead && ahead.after === this.#position ? await ahead.events : await this.#read();
        if (events.length === 0) {
          this.#rate = 0;
          await this.#idle();
          continue;
        }
        await this.#publish(events);
        delay = this.#retryDelayMs;
        this.#lastError = undefined;
      } catch (error) {
        if (error instanceof KafkaProducerFencedError) {
          this.#state = 'fenced';
          this.#lastError = error;
          this.#logger.error(
            { relay: this.name, transactionalId: this.transactionalId, err: error },
            'relay fenced: another instance with the same transactional id took over; stopping',
          );
          await this.#closeSession();
          this.#finish(error);
          return;
        }
        this.#readAhead = undefined;
        if (signal.aborted) break;
        this.#state = 'retrying';
        this.#lastError = error;
        this.#logger.warn(
          { relay: this.name, err: error, retryInMs: delay },
          'relay failed; starting a new session after a pause',
        );
        await this.#closeSession();
        await sleep(delay, signal);
        delay = Math.min(delay * 2, this.#maxRetryDelayMs);
      }
    }
    await this.#closeSession();
    this.#finish();
  }

  #finish(error?: unknown): void {
    this.#unsubscribe?.();
    for (const waiter of this.#waiters) {
      if (waiter.timer) clearTimeout(waiter.timer);
      waiter.resolve(this.#position >= waiter.position);
    }
    this.#waiters.clear();
    void this.#admin?.close().catch(() => {});
    this.#admin = undefined;
    if (error === undefined) {
      this.#state = 'stopped';
      this.#settle.resolve();
    } else {
      this.#settle.reject(error);
    }
  }

  /** One transaction: the batch's events, then the progress record; committed together. */
  async #publish(events: readonly RecordedEvent[]): Promise<void> {
    const started = performance.now();
    const records: ProducerRecord[] = [];
    for (const event of events) {
      const topic = this.#topics.topicFor(event.streamId);
      if (topic === undefined) continue;
      if (this.#createTopics && !this.#ensured.has(topic)) {
        await this.#topics.ensure(this.#admin!, [topic]);
        this.#ensured.add(topic);
      }
      records.push(encodeEvent(event, { topic, source: this.#source }));
    }
    const last = events[events.length - 1]!.position;
    const progress: ProducerRecord = {
      topic: this.progressTopic,
      partition: PROGRESS_PARTITION,
      key: this.transactionalId,
      value: JSON.stringify({ v: 1, position: last } satisfies ProgressValue),
    };
    const producer = this.#producer!;
    await producer.transact(async (tx) => {
      // Split by size so no produce request outgrows the broker's limits; the progress record
      // rides in the last request.
      let chunk: ProducerRecord[] = [];
      let bytes = 0;
      for (const record of records) {
        const size = recordSize(record);
        if (chunk.length > 0 && bytes + size > this.#maxSendBytes) {
          await tx.send(chunk);
          chunk = [];
          bytes = 0;
        }
        chunk.push(record);
        bytes += size;
      }
      chunk.push(progress);
      await tx.send(chunk);
      // Read the next batch while the commit runs. Used only if the commit succeeds (the
      // loop checks it starts where this transaction ends); a failure discards it.
      if (events.length === this.#batchSize)
        this.#readAhead = { after: last, events: this.#read(last) };
      this.#logger.debug(
        { relay: this.name, position: last, events: records.length },
        'relay transaction sent; committing',
      );
    });
    this.#position = last;
    this.#published += records.length;
    this.#transactions++;
    this.#lastPublishedAt = new Date();
    const seconds = (performance.now() - started) / 1000;
    this.#rate = seconds > 0 ? records.length / seconds : 0;
    this.#logger.debug(
      { relay: this.name, position: last, events: records.length },
      'relay transaction committed',
    );
    this.#settleWaiters();
  }

  #read(after = this.#position): Promise<RecordedEvent[]> {
    const read = this.#store.readAll({ after, maxCount: this.#batchSize, upcast: false });
    read.catch(() => {}); // a read-ahead may be dropped unawaited; its error resurfaces if used
    return read;
  }

  /** Waits for an append notification, the poll interval, or stop. */
  #idle(): Promise<void> {
    const signal = this.#abort.signal;
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, this.#pollIntervalMs);
      signal.addEventListener('abort', done, { once: true });
      this.#wake = done;
    });
  }

  #settleWaiters(): void {
    for (const waiter of this.#waiters) {
      if (this.#position >= waiter.position) {
        if (waiter.timer) clearTimeout(waiter.timer);
        this.#waiters.delete(waiter);
        waiter.resolve(true);
      }
    }
  }

  /**
   * Resolves `true` once every event up to `position` is published and committed, `false`
   * after `timeoutMs` (no timeout when omitted) or when the relay stops.
   */
  whenPublished(position: number, timeoutMs?: number): Promise<boolean> {
    if (this.#position >= position) return Promise.resolve(true);
    if (this.#abort.signal.aborted || this.#state === 'fenced') return Promise.resolve(false);
    return new Promise((resolve) => {
      const waiter: Waiter = { position, resolve };
      if (timeoutMs !== undefined) {
        waiter.timer = setTimeout(() => {
          this.#waiters.delete(waiter);
          resolve(this.#position >= position);
        }, timeoutMs);
      }
      this.#waiters.add(waiter);
      this.#wake?.();
    });
  }

  /** Resolves `true` once everything the store held when called is published. */
  async whenCaughtUp(timeoutMs?: number): Promise<boolean> {
    return this.whenPublished(await this.#store.headPosition(), timeoutMs);
  }

  async status(): Promise<RelayStatus> {
    const head = await this.#store.headPosition().catch(() => this.#position);
    const error = this.#lastError;
    return {
      name: this.name,
      transactionalId: this.transactionalId,
      state: this.#state,
      position: this.#position,
      head,
      backlog: Math.max(0, head - this.#position),
      published: this.#published,
      transactions: this.#transactions,
      eventsPerSecond: Math.round(this.#rate),
      lastPublishedAt: this.#lastPublishedAt,
      lastError:
        error === undefined ? undefined : error instanceof Error ? error.message : String(error),
    };
  }

  /** Finishes the transaction in flight, then stops and closes the producer. */
  async stop(): Promise<void> {
    this.#abort.abort(new ClosedError(`kafka relay ${this.name}`));
    this.#wake?.();
    if (this.#loop) await this.#loop;
    else this.#finish();
    this.#loop = undefined;
    if (this.#state !== 'fenced') this.#state = 'stopped';
  }
}

function recordSize(record: ProducerRecord): number {
  let size = 70; // record framing, timestamp and offset deltas, varints: generous
  if (record.key !== undefined) size += Buffer.byteLength(record.key);
  if (record.value !== null) size += Buffer.byteLength(record.value);
  for (const name in record.headers) size += name.length + Buffer.byteLength(record.headers[name]!);
  return size;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * The position in the last committed progress record of a relay (0 when it has published
 * nothing): what it has published, exactly. For `tidemark relay status` and monitoring; the
 * relay itself reads it at every (re)start.
 *
 * Other relays may share the progress partition and have a transaction open, which holds the
 * last stable offset back; so first wait until it passes the high watermark seen now (every
 * transaction of ours started below it), then read backwards from it in growing windows: the
 * newest record with our key is the answer, and compaction keeps it.
 */
export async function readRelayProgress(
  connection: KafkaConnection,
  options: {
    transactionalId: string;
    progressTopic?: string;
    /** How long to wait for open transactions on the progress partition. Default 70 s. */
    timeoutMs?: number;
    signal?: AbortSignal;
  },
): Promise<number> {
  const topic = options.progressTopic ?? DEFAULT_PROGRESS_TOPIC;
  const reader = new KafkaReader(connection, { isolation: 'read_committed' });
  try {
    const partitions = [PROGRESS_PARTITION];
    const high = (
      await reader.offsets(topic, 'latest', { partitions, isolation: 'read_uncommitted' })
    ).get(PROGRESS_PARTITION)!;
    const deadline = Date.now() + (options.timeoutMs ?? 70_000);
    let stable = -1n;
    for (;;) {
      stable = (await reader.offsets(topic, 'latest', { partitions })).get(PROGRESS_PARTITION)!;
      if (stable >= high) break;
      if (Date.now() > deadline || options.signal?.aborted) {
        throw new KafkaOperationError(
          'readProgress',
          `the last stable offset of ${topic}[${PROGRESS_PARTITION}] did not reach ${high}`,
          undefined,
          true,
        );
      }
      await sleep(50, options.signal);
    }
    const earliest = (await reader.offsets(topic, 'earliest', { partitions })).get(
      PROGRESS_PARTITION,
    )!;
    // Grow the window backwards until it holds a record of ours; the newest one wins.
    let to = stable;
    let window = 64n;
    while (to > earliest) {
      const from = to - window > earliest ? to - window : earliest;
      const records = await reader.readRange(topic, PROGRESS_PARTITION, from, to);
      for (let i = records.length - 1; i >= 0; i--) {
        const record = records[i]!;
        if (record.key?.toString('utf8') !== options.transactionalId) continue;
        return parseProgress(topic, record.value, record.offset);
      }
      to = from;
      window *= 4n;
    }
    return 0;
  } finally {
    await reader.close();
  }
}

function parseProgress(topic: string, value: Buffer | null, offset: bigint): number {
  const location = { topic, partition: PROGRESS_PARTITION, offset };
  let parsed: Partial<ProgressValue> | undefined;
  try {
    parsed = value === null ? undefined : (JSON.parse(value.toString('utf8')) as ProgressValue);
  } catch (error) {
    throw new KafkaWireFormatError('value', 'progress record is not JSON', location, {
      cause: error,
    });
  }
  const position = parsed?.position;
  if (parsed?.v !== 1 || typeof position !== 'number' || !Number.isSafeInteger(position)) {
    throw new KafkaWireFormatError(
      'value',
      'progress record is not {"v":1,"position":<integer>}',
      location,
    );
  }
  return position;
}
