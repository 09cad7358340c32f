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
 * 5. The progress record also says which store it was made from (the store's id), each topic's
 *    partition count, and the streams parked because an event was too big to publish. At every
 *    session the relay checks them and, when it cannot tell that resuming is right (another
 *    store's progress, progress past the store's head, a topic whose partition count changed),
 *    it refuses: it publishes nothing, its state is `refused`, and the log says what to do.
 *    Only an operator's {@link rebaseRelay} moves it on.
 */
import { setTimeout as timeout } from 'node:timers/promises';
import {
  ClosedError,
  InvalidArgumentError,
  StorageError,
  TidemarkError,
  silentLogger,
  type EventStore,
  type Logger,
  type RecordedEvent,
} from '../core/index.ts';
import { KafkaAdmin } from './admin.ts';
import type { KafkaConnection } from './connection.ts';
import { KafkaOperationError, KafkaProducerFencedError, KafkaWireFormatError } from './errors.ts';
import { KafkaProducer, type KafkaTransaction, type ProducerRecord } from './producer.ts';
import { KafkaReader } from './reader.ts';
import type { EventTopics } from './topics.ts';
import { encodeEvent, validateSource } from './wire.ts';

/** Default name of the compacted topic that holds relay progress records. */
export const DEFAULT_PROGRESS_TOPIC = 'tidemark-relay-progress';

/** The partition of the progress topic that progress records are written to and read from. */
const PROGRESS_PARTITION = 0;

/**
 * Default most bytes of one encoded event (key, value and headers): the broker's default
 * `message.max.bytes` (1048588) less 4 KiB for the record batch's framing. An event over the
 * limit is parked, not sent: the broker would refuse the whole transaction.
 */
export const DEFAULT_MAX_EVENT_BYTES = 1_048_588 - 4096;

/** Room kept under a topic's `max.message.bytes` for the record batch's framing. */
const BATCH_HEADROOM = 4096;

/** How often a topic's partition count and limits are looked at again while publishing. */
const TOPIC_RECHECK_MS = 30_000;

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
  /**
   * Most bytes of one encoded event. Default {@link DEFAULT_MAX_EVENT_BYTES}; the topic's own
   * `max.message.bytes` (less 4 KiB) caps it too. A bigger event parks its stream.
   */
  readonly maxEventBytes?: number;
  /** Look for new events this often when no append notification comes. Default 1000 ms. */
  readonly pollIntervalMs?: number;
  /** How long the broker lets one transaction stay open. Default 60000 ms. */
  readonly transactionTimeoutMs?: number;
  /** Backoff after a failure: first delay, doubled up to `maxRetryDelayMs`. Defaults 100 / 5000. */
  readonly retryDelayMs?: number;
  readonly maxRetryDelayMs?: number;
  readonly logger?: Logger;
}

/**
 * Where the relay is. `refused`: it found progress it cannot resume from (see
 * {@link RelayRefusal}) and publishes nothing until an operator acts and it is restarted.
 */
export type RelayState = 'stopped' | 'starting' | 'running' | 'retrying' | 'fenced' | 'refused';

/**
 * Why a relay refused to publish.
 * - `store_mismatch`: its progress was made from another store (another environment using the
 *   same relay name on the same Kafka, or the relay pointed at a new database).
 * - `position_past_head`: it has published positions the store does not hold (a restore from
 *   backup, a failover that lost commits): Kafka has events the store has not.
 * - `partitions_changed`: a topic's partition count is not the one it recorded: streams moved
 *   partitions, and consumers may see a stream's events out of order.
 */
export type RelayRefusalReason = 'store_mismatch' | 'position_past_head' | 'partitions_changed';

export interface RelayRefusal {
  readonly reason: RelayRefusalReason;
  /** What was found, and what to do. */
  readonly message: string;
  /** The topic, for `partitions_changed`. */
  readonly topic?: string;
}

/** An event the relay did not publish because its encoded record is over the limit. */
export interface RelayParkedEvent {
  readonly streamId: string;
  readonly streamVersion: number;
  readonly position: number;
  readonly eventId: string;
  readonly type: string;
  readonly topic: string;
  /** The encoded record's size, and the limit it is over. */
  readonly bytes: number;
  readonly limit: number;
  /** ISO time. */
  readonly parkedAt: string;
}

/** A relay's progress record, as read from the progress topic. */
export interface RelayProgress {
  /** The last global position published (0: nothing yet). */
  readonly position: number;
  /** The store the progress was made from; undefined in records of older Tidemark versions. */
  readonly storeId: string | undefined;
  /** The relay's `ce_source` (what a retry of parked events publishes with). */
  readonly source: string | undefined;
  /** Each topic's partition count, as first seen. */
  readonly partitions: Readonly<Record<string, number>>;
  /** Streams parked: one entry each, the first event not published; later ones are held. */
  readonly parked: readonly RelayParkedEvent[];
}

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
  /** The last failure, while the relay retries (or why it stopped or refused). */
  readonly lastError: string | undefined;
  /** The store's id, and the one its progress was made from (differ: refused). */
  readonly storeId: string | undefined;
  readonly progressStoreId: string | undefined;
  /** Positions published beyond the store's head (more than 0: refused; backlog shows 0). */
  readonly pastHead: number;
  /** Why the relay refuses, while its state is `refused`. */
  readonly refusal: RelayRefusal | undefined;
  /** Streams parked (an event too big to publish), with the event that parked each. */
  readonly parked: readonly RelayParkedEvent[];
  /** The partition count recorded per topic. */
  readonly partitions: Readonly<Record<string, number>>;
}

type Waiter = { position: number; resolve: (reached: boolean) => void; timer?: NodeJS.Timeout };

/**
 * The progress record's value. Version 1: `{"v":1,"position":<last published position>}`.
 * Version 2 adds `storeId`, `source`, `partitions` (topic → count) and `parked` (a list of
 * {@link RelayParkedEvent}).
 */
interface ProgressValue {
  v: 1 | 2;
  position: number;
  storeId?: string;
  source?: string;
  partitions?: Record<string, number>;
  parked?: RelayParkedEvent[];
}

/** A refusal, thrown inside the relay's loop to stop it. */
class Refused extends Error {
  readonly refusal: RelayRefusal;
  constructor(refusal: RelayRefusal) {
    super(refusal.message);
    this.refusal = refusal;
  }
}

interface TopicInfo {
  readonly partitions: number;
  /** The most bytes of one event this topic takes (the relay's limit and the topic's). */
  readonly limit: number;
  readonly checkedAt: number;
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
  readonly #maxEventBytes: number;
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
  #storeId: string | undefined;
  /** What the progress record holds, besides the position (kept in step with each commit). */
  #progressStoreId: string | undefined;
  #partitions = new Map<string, number>();
  #parked = new Map<string, RelayParkedEvent>();
  /** Something the progress record must say has changed: write it even without events. */
  #progressDirty = false;
  #topicInfo = new Map<string, TopicInfo>();
  #refusal: RelayRefusal | undefined;
  #head = 0;
  /** The position of the progress record read last (what Kafka holds, even when refused). */
  #progressPosition = 0;
  #finished = false;
  #wake: (() => void) | undefined;
  /**
   * An append was announced since the last read began. Set by every notification, cleared as a
   * read starts: an append that commits while a read runs (and is missing from its snapshot)
   * still gets the relay going again at once instead of after the poll interval.
   */
  #announced = false;
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
    this.#maxEventBytes = positive('maxEventBytes', options.maxEventBytes, DEFAULT_MAX_EVENT_BYTES);
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
    let opened = false;
    try {
      this.#admin = new KafkaAdmin(this.#connection);
      if (this.#createTopics) {
        await this.#ensureProgressTopic(this.#admin);
        await this.#topics.ensure(this.#admin, this.#topics.listed, { logger: this.#logger });
        for (const topic of this.#topics.listed) this.#ensured.add(topic);
      }
      // Retryable failures (the coordinator still aborting a crashed predecessor's transaction,
      // a broker restarting) are retried for a while; anything else fails the start.
      const deadline = Date.now() + this.#transactionTimeoutMs;
      let delay = this.#retryDelayMs;
      for (;;) {
        try {
          opened = await this.#openSession();
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
    // Refused: nothing is published; status, metrics and the log say why until stop().
    if (!opened) return;
    this.#unsubscribe = this.#store.onAppended(() => {
      this.#announced = true;
      this.#wake?.();
    });
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

  /**
   * A new producer (new epoch: older ones fenced), then the progress committed in Kafka,
   * checked against the store. Resolves false when the relay refuses to resume (then the
   * session is closed and the state is `refused`).
   */
  async #openSession(): Promise<boolean> {
    // A fresh admin client too: after a broker failure, the old one's connections may be to a
    // broker that is gone, and the session's topic checks must not wait on them.
    await this.#admin?.close().catch(() => {});
    this.#admin = new KafkaAdmin(this.#connection);
    const producer = new KafkaProducer(this.#connection, {
      transactionalId: this.transactionalId,
      transactionTimeoutMs: this.#transactionTimeoutMs,
    });
    this.#producer = producer;
    await producer.initTransactions();
    const progress = await this.#readProgress();
    try {
      await this.#check(progress);
      this.#topicInfo.clear();
      for (const topic of this.#topics.listed) await this.#topicReady(topic);
    } catch (error) {
      if (!(error instanceof Refused)) throw error;
      await this.#refuse(error.refusal);
      return false;
    }
    if (progress.position !== this.#position || this.#transactions === 0) {
      this.#logger.info(
        {
          relay: this.name,
          transactionalId: this.transactionalId,
          position: progress.position,
          storeId: this.#storeId,
          parked: this.#parked.size,
        },
        'relay resumes after the last position committed in Kafka',
      );
    }
    this.#position = progress.position;
    this.#state = 'running';
    this.#settleWaiters();
    return true;
  }

  /**
   * Is the progress this store's? Throws {@link Refused} when it cannot tell: progress made
   * from another store, or past the store's head. Progress of an older Tidemark (no store id)
   * is adopted once, when it is not past the head: the id is recorded by the next transaction.
   */
  async #check(progress: RelayProgress): Promise<void> {
    this.#storeId = this.#store.storeId ? await this.#store.storeId() : undefined;
    const head = await this.#store.headPosition();
    this.#head = head;
    this.#progressPosition = progress.position;
    this.#progressDirty = false;
    this.#progressStoreId = progress.storeId;
    this.#partitions = new Map(Object.entries(progress.partitions));
    this.#parked = new Map(progress.parked.map((p) => [p.streamId, p]));
    const rebase = `tidemark relay rebase --name ${this.name}`;
    if (progress.storeId !== undefined && this.#storeId !== undefined) {
      if (progress.storeId !== this.#storeId) {
        throw new Refused({
          reason: 'store_mismatch',
          message:
            `relay ${this.name}: its progress (position ${progress.position}) was made from store ` +
            `${progress.storeId}, and this store is ${this.#storeId}. If another environment uses ` +
            `the same relay name on this Kafka, give each its own name; if this store is meant to ` +
            `take over the topics, run '${rebase} --to head' (or --to POSITION)`,
        });
      }
    }
    if (progress.position > head) {
      throw new Refused({
        reason: 'position_past_head',
        message:
          `relay ${this.name}: it has published up to position ${progress.position}, but the ` +
          `store's head is ${head}: Kafka holds ${progress.position - head} positions this store ` +
          `does not (a restore from backup, a failover that lost commits?). New appends would ` +
          `reuse those positions. Find what was lost, then run '${rebase} --to head'`,
      });
    }
    if (this.#storeId === undefined) {
      this.#logger.warn(
        { relay: this.name },
        'the store has no storeId(): the relay cannot tell progress of another store apart',
      );
    } else if (progress.storeId === undefined) {
      if (progress.position > 0) {
        this.#logger.warn(
          { relay: this.name, position: progress.position, storeId: this.#storeId },
          'relay progress has no store id (written by an older Tidemark); adopting this store',
        );
      }
      this.#progressDirty = true;
    }
  }

  /** Refuses: publishes nothing more, says why in status and the log. */
  async #refuse(refusal: RelayRefusal): Promise<void> {
    this.#refusal = refusal;
    this.#lastError = refusal.message;
    this.#state = 'refused';
    this.#readAhead = undefined;
    this.#logger.error(
      {
        relay: this.name,
        transactionalId: this.transactionalId,
        reason: refusal.reason,
        ...(refusal.topic ? { topic: refusal.topic } : {}),
      },
      `relay refused to publish: ${refusal.message}`,
    );
    await this.#closeSession();
    for (const waiter of this.#waiters) {
      if (waiter.timer) clearTimeout(waiter.timer);
      waiter.resolve(this.#position >= waiter.position);
    }
    this.#waiters.clear();
  }

  /**
   * The topic's partition count (compared with the recorded one: a change refuses) and the
   * most bytes one of its events may have. Looked up again every {@link TOPIC_RECHECK_MS}.
   */
  async #topicReady(topic: string): Promise<TopicInfo> {
    const known = this.#topicInfo.get(topic);
    if (known && Date.now() - known.checkedAt < TOPIC_RECHECK_MS) return known;
    const described = await this.#admin!.describeTopic(topic);
    if (!described) {
      // Not there (createTopics off): the send fails and is retried; nothing to record yet.
      return { partitions: 0, limit: this.#maxEventBytes, checkedAt: 0 };
    }
    const partitions = described.partitions.length;
    const recorded = this.#partitions.get(topic);
    if (recorded === undefined) {
      this.#partitions.set(topic, partitions);
      this.#progressDirty = true;
      this.#logger.info(
        { relay: this.name, topic, partitions },
        'relay records the partition count of a topic',
      );
    } else if (recorded !== partitions) {
      throw new Refused({
        reason: 'partitions_changed',
        topic,
        message:
          `relay ${this.name}: topic ${topic} has ${partitions} partitions, it had ${recorded} ` +
          `when the relay first published to it. Streams now hash to other partitions, so ` +
          `consumers may see a stream's events out of order. Once consumers are ready (see ` +
          `docs/kafka.md), run 'tidemark relay rebase --name ${this.name} --accept-partitions'`,
      });
    }
    const topicMax = Number(described.configs['max.message.bytes']);
    const limit = Number.isSafeInteger(topicMax)
      ? Math.min(this.#maxEventBytes, topicMax - BATCH_HEADROOM)
      : this.#maxEventBytes;
    const info = { partitions, limit, checkedAt: Date.now() };
    this.#topicInfo.set(topic, info);
    return info;
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
  async #readProgress(): Promise<RelayProgress> {
    return readRelayProgressRecord(this.#connection, {
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
        if (!this.#producer && !(await this.#openSession())) {
          this.#unsubscribe?.();
          return; // refused; stop() settles done
        }
        const ahead = this.#readAhead;
        this.#readAhead = undefined;
        const events =
          ahead && ahead.after === this.#position ? await ahead.events : await this.#read();
        if (events.length === 0 && !this.#progressDirty) {
          this.#rate = 0;
          await this.#idle();
          continue;
        }
        await this.#publish(events);
        delay = this.#retryDelayMs;
        this.#lastError = undefined;
      } catch (error) {
        if (error instanceof Refused) {
          await this.#refuse(error.refusal);
          this.#unsubscribe?.();
          return;
        }
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
    if (this.#finished) return;
    this.#finished = true;
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

  /**
   * One transaction: the batch's events, then the progress record; committed together. An
   * event over its topic's limit parks its stream (recorded in the progress record, so the
   * stream stays parked across restarts); later events of a parked stream are held.
   */
  async #publish(events: readonly RecordedEvent[]): Promise<void> {
    const started = performance.now();
    const records: ProducerRecord[] = [];
    const parked = new Map(this.#parked);
    const now = Date.now();
    for (const event of events) {
      const topic = this.#topics.topicFor(event.streamId);
      if (topic === undefined) continue;
      if (parked.has(event.streamId)) continue; // held behind its parked event: stream order
      if (this.#createTopics && !this.#ensured.has(topic)) {
        await this.#topics.ensure(this.#admin!, [topic], { logger: this.#logger });
        this.#ensured.add(topic);
      }
      // Looked up once a session and every TOPIC_RECHECK_MS; no await per event otherwise.
      const known = this.#topicInfo.get(topic);
      const { limit } =
        known && now - known.checkedAt < TOPIC_RECHECK_MS ? known : await this.#topicReady(topic);
      const record = encodeEvent(event, { topic, source: this.#source });
      const bytes = recordSize(record);
      if (bytes > limit) {
        const entry: RelayParkedEvent = {
          streamId: event.streamId,
          streamVersion: event.streamVersion,
          position: event.position,
          eventId: event.eventId,
          type: event.type,
          topic,
          bytes,
          limit,
          parkedAt: new Date().toISOString(),
        };
        parked.set(event.streamId, entry);
        this.#logger.error(
          { relay: this.name, ...entry },
          `relay parked stream ${event.streamId}: event at position ${event.position} ` +
            `(${event.eventId}) is ${bytes} bytes, over the limit of ${limit}; the stream's ` +
            `later events are held, other streams go on. Raise the limit, then ` +
            `'tidemark relay retry --name ${this.name} --stream ${event.streamId}' (or skip)`,
        );
        continue;
      }
      records.push(record);
    }
    const last = events.length > 0 ? events[events.length - 1]!.position : this.#position;
    const progress = progressRecord(this.progressTopic, this.transactionalId, {
      position: last,
      storeId: this.#storeId,
      source: this.#source,
      partitions: Object.fromEntries(this.#partitions),
      parked: [...parked.values()],
    });
    // A failed transaction ends the session; the next one reads parked streams and partition
    // counts again from the progress committed in Kafka.
    await this.#producer!.transact(async (tx) => {
      await sendChunked(tx, records, progress, this.#maxSendBytes);
      // Read the next batch while the commit runs when there is more to read (a full batch, or
      // an append announced since this batch was read). Used only if the commit succeeds (the
      // loop checks it starts where this transaction ends); a failure discards it.
      if (events.length === this.#batchSize || this.#announced)
        this.#readAhead = { after: last, events: this.#read(last) };
      this.#logger.debug(
        { relay: this.name, position: last, events: records.length },
        'relay transaction sent; committing',
      );
    });
    this.#parked = parked;
    this.#progressPosition = last;
    this.#progressStoreId = this.#storeId;
    this.#progressDirty = false;
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
    this.#announced = false;
    const read = this.#store.readAll({ after, maxCount: this.#batchSize, upcast: false });
    read.catch(() => {}); // a read-ahead may be dropped unawaited; its error resurfaces if used
    return read;
  }

  /** Waits for an append notification, the poll interval, or stop. */
  #idle(): Promise<void> {
    const signal = this.#abort.signal;
    if (this.#announced || signal.aborted) return Promise.resolve();
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
    if (this.#abort.signal.aborted || this.#state === 'fenced' || this.#state === 'refused')
      return Promise.resolve(false);
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
    const head = await this.#store.headPosition().catch(() => this.#head);
    const error = this.#lastError;
    // Refused, the progress read was never taken over: show what Kafka holds.
    const position = this.#state === 'refused' ? this.#progressPosition : this.#position;
    return {
      name: this.name,
      transactionalId: this.transactionalId,
      state: this.#state,
      position,
      head,
      backlog: Math.max(0, head - position),
      published: this.#published,
      transactions: this.#transactions,
      eventsPerSecond: Math.round(this.#rate),
      lastPublishedAt: this.#lastPublishedAt,
      lastError:
        error === undefined ? undefined : error instanceof Error ? error.message : String(error),
      storeId: this.#storeId,
      progressStoreId: this.#progressStoreId,
      pastHead: Math.max(0, position - head),
      refusal: this.#refusal,
      parked: [...this.#parked.values()],
      partitions: Object.fromEntries(this.#partitions),
    };
  }

  /** Finishes the transaction in flight, then stops and closes the producer. */
  async stop(): Promise<void> {
    this.#abort.abort(new ClosedError(`kafka relay ${this.name}`));
    this.#wake?.();
    if (this.#loop) await this.#loop;
    this.#finish();
    this.#loop = undefined;
    if (this.#state !== 'fenced') this.#state = 'stopped';
  }
}

/** The progress record of a relay: the last record of each of its transactions. */
function progressRecord(
  topic: string,
  transactionalId: string,
  progress: RelayProgress,
): ProducerRecord {
  const value: ProgressValue = {
    v: 2,
    position: progress.position,
    ...(progress.storeId !== undefined ? { storeId: progress.storeId } : {}),
    ...(progress.source !== undefined ? { source: progress.source } : {}),
    partitions: { ...progress.partitions },
    parked: [...progress.parked],
  };
  return {
    topic,
    partition: PROGRESS_PARTITION,
    key: transactionalId,
    value: JSON.stringify(value),
  };
}

/**
 * Sends records in produce requests of at most `maxSendBytes` (a bigger record goes alone), so
 * no request outgrows the broker's limits; the progress record rides in the last request.
 */
async function sendChunked(
  tx: KafkaTransaction,
  records: readonly ProducerRecord[],
  progress: ProducerRecord,
  maxSendBytes: number,
): Promise<void> {
  let chunk: ProducerRecord[] = [];
  let bytes = 0;
  for (const record of records) {
    const size = recordSize(record);
    if (chunk.length > 0 && bytes + size > maxSendBytes) {
      await tx.send(chunk);
      chunk = [];
      bytes = 0;
    }
    chunk.push(record);
    bytes += size;
  }
  chunk.push(progress);
  await tx.send(chunk);
}

function recordSize(record: ProducerRecord): number {
  let size = 70; // record framing, timestamp and offset deltas, varints: generous
  if (record.key !== undefined) size += Buffer.byteLength(record.key);
  if (record.value !== null) size += Buffer.byteLength(record.value);
  for (const name in record.headers) size += name.length + Buffer.byteLength(record.headers[name]!);
  return size;
}

/** Waits `ms`, or less when `signal` aborts (a stop ends the wait early, not in an error). */
const sleep = (ms: number, signal?: AbortSignal): Promise<unknown> =>
  timeout(ms, undefined, signal ? { signal } : {}).catch(() => undefined);

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
  options: ReadProgressOptions,
): Promise<number> {
  return (await readRelayProgressRecord(connection, options)).position;
}

/** Options of {@link readRelayProgress} and {@link readRelayProgressRecord}. */
export interface ReadProgressOptions {
  transactionalId: string;
  progressTopic?: string;
  /** How long to wait for open transactions on the progress partition. Default 70 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

const NO_PROGRESS: RelayProgress = {
  position: 0,
  storeId: undefined,
  source: undefined,
  partitions: {},
  parked: [],
};

/**
 * A relay's last committed progress record, whole: position, the store it was made from,
 * partition counts and parked streams (position 0 and nothing else when it has none).
 */
export async function readRelayProgressRecord(
  connection: KafkaConnection,
  options: ReadProgressOptions,
): Promise<RelayProgress> {
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
    return NO_PROGRESS;
  } finally {
    await reader.close();
  }
}

function parseProgress(topic: string, value: Buffer | null, offset: bigint): RelayProgress {
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
  if (
    (parsed?.v !== 1 && parsed?.v !== 2) ||
    typeof position !== 'number' ||
    !Number.isSafeInteger(position)
  ) {
    throw new KafkaWireFormatError(
      'value',
      'progress record is not {"v":1|2,"position":<integer>,...}',
      location,
    );
  }
  if (parsed.v === 1) return { ...NO_PROGRESS, position };
  const partitions = parsed.partitions ?? {};
  const parked = parsed.parked ?? [];
  if (
    (parsed.storeId !== undefined && typeof parsed.storeId !== 'string') ||
    (parsed.source !== undefined && typeof parsed.source !== 'string') ||
    typeof partitions !== 'object' ||
    Object.values(partitions).some((n) => !Number.isSafeInteger(n)) ||
    !Array.isArray(parked) ||
    parked.some((p) => typeof p?.streamId !== 'string' || !Number.isSafeInteger(p?.position))
  ) {
    throw new KafkaWireFormatError('value', 'progress record (v2) has malformed fields', location);
  }
  return { position, storeId: parsed.storeId, source: parsed.source, partitions, parked };
}

// ---------------------------------------------------------------------------------------------
// Operator actions: each writes a new progress record under the relay's transactional id. That
// fences a relay still running with that id (it stops with state `fenced`): stop the relay
// first, act, then start it again.

/** Which relay an operator action is about. */
export interface RelayOperationOptions {
  readonly connection: KafkaConnection;
  /** The store the relay publishes. */
  readonly store: EventStore;
  /** The relay's name (default `default`), or its transactional id. */
  readonly name?: string;
  readonly transactionalId?: string;
  readonly progressTopic?: string;
  readonly logger?: Logger;
}

/**
 * Takes over the relay's transactional id (fencing a running instance), reads its progress,
 * and lets `work` write the next progress record (with events, if any) in one transaction.
 */
async function operate<T>(
  options: RelayOperationOptions,
  work: (
    progress: RelayProgress,
    commit: (next: RelayProgress, records?: readonly ProducerRecord[]) => Promise<void>,
    admin: KafkaAdmin,
  ) => Promise<T>,
): Promise<T> {
  const transactionalId = options.transactionalId ?? `tidemark-relay-${options.name ?? 'default'}`;
  const progressTopic = options.progressTopic ?? DEFAULT_PROGRESS_TOPIC;
  const producer = new KafkaProducer(options.connection, { transactionalId });
  const admin = new KafkaAdmin(options.connection);
  try {
    await producer.initTransactions();
    const progress = await readRelayProgressRecord(options.connection, {
      transactionalId,
      progressTopic,
      timeoutMs: 70_000,
    });
    return await work(
      progress,
      (next, records = []) =>
        producer.transact((tx) =>
          sendChunked(
            tx,
            records,
            progressRecord(progressTopic, transactionalId, next),
            512 * 1024,
          ),
        ),
      admin,
    );
  } finally {
    await producer.close().catch(() => {});
    await admin.close().catch(() => {});
  }
}

async function storeIdOf(store: EventStore): Promise<string | undefined> {
  return store.storeId ? store.storeId() : undefined;
}

/**
 * Re-bases a relay deliberately: writes a progress record for this store, at `to` (a position
 * up to the store's head, or `head`), so that a relay that refused (another store's progress,
 * progress past the head) resumes after it. With `acceptPartitions`, the partition count of
 * every recorded topic is recorded anew (after a topic's partitions were added). Without `to`
 * the position stays (the progress must then be this store's already).
 *
 * Parked streams whose event is after the new position are dropped (the relay meets them
 * again); the others stay parked. Resolves with the record written.
 */
export async function rebaseRelay(
  options: RelayOperationOptions & {
    readonly to?: number | 'head';
    readonly acceptPartitions?: boolean;
  },
): Promise<RelayProgress> {
  const { to } = options;
  if (to !== undefined && to !== 'head' && (!Number.isSafeInteger(to) || to < 0))
    throw new InvalidArgumentError('to', 'must be a position (a non-negative integer) or head');
  if (to === undefined && !options.acceptPartitions)
    throw new InvalidArgumentError('to', 'give a position to re-base to, or acceptPartitions');
  const logger = options.logger ?? silentLogger;
  return operate(options, async (progress, commit, admin) => {
    const storeId = await storeIdOf(options.store);
    const head = await options.store.headPosition();
    const position = to === 'head' ? head : (to ?? progress.position);
    if (position > head)
      throw new InvalidArgumentError('to', `position ${position} is past the store's head ${head}`);
    if (to === undefined && progress.storeId !== undefined && progress.storeId !== storeId) {
      throw new InvalidArgumentError(
        'to',
        `the progress was made from store ${progress.storeId}, not this one (${storeId}): give a position`,
      );
    }
    const partitions: Record<string, number> = { ...progress.partitions };
    if (options.acceptPartitions) {
      for (const topic of Object.keys(partitions)) {
        const described = await admin.describeTopic(topic);
        if (described) partitions[topic] = described.partitions.length;
        else delete partitions[topic];
      }
    }
    const next: RelayProgress = {
      position,
      storeId,
      source: progress.source,
      partitions,
      parked: progress.parked.filter((p) => p.position <= position),
    };
    await commit(next);
    logger.warn(
      {
        from: { position: progress.position, storeId: progress.storeId },
        to: { position, storeId },
        partitions,
      },
      'relay re-based by an operator',
    );
    return next;
  });
}

/** What {@link retryRelayParked} and {@link skipRelayParked} did. */
export interface ReleaseResult {
  /** Events of the stream published now. */
  readonly published: number;
  /** Set when an event of the stream is still over the limit: the stream stays parked there. */
  readonly parked: RelayParkedEvent | undefined;
}

/**
 * Publishes a parked stream's event and the events held behind it (after the limit was
 * raised), in stream order, in one transaction with the progress record that unparks it.
 * An event still over the limit parks the stream again at that event.
 */
export function retryRelayParked(
  options: RelayOperationOptions & { readonly streamId: string; readonly maxEventBytes?: number },
): Promise<ReleaseResult> {
  return release(options, false);
}

/**
 * Drops a parked stream's event for good (it is never published) and publishes the events held
 * behind it, like {@link retryRelayParked}. Consumers then see a gap in the stream's versions:
 * Kafka-fed projections hold the stream until `tidemark dlq retry` or `skip` there.
 */
export function skipRelayParked(
  options: RelayOperationOptions & { readonly streamId: string; readonly maxEventBytes?: number },
): Promise<ReleaseResult> {
  return release(options, true);
}

async function release(
  options: RelayOperationOptions & { readonly streamId: string; readonly maxEventBytes?: number },
  skip: boolean,
): Promise<ReleaseResult> {
  const maxEventBytes = positive('maxEventBytes', options.maxEventBytes, DEFAULT_MAX_EVENT_BYTES);
  const logger = options.logger ?? silentLogger;
  return operate(options, async (progress, commit, admin) => {
    const entry = progress.parked.find((p) => p.streamId === options.streamId);
    if (!entry) {
      throw new InvalidArgumentError(
        'streamId',
        `relay has no parked event of stream '${options.streamId}'`,
      );
    }
    const storeId = await storeIdOf(options.store);
    if (progress.storeId !== undefined && storeId !== undefined && progress.storeId !== storeId)
      throw new StorageError(
        `the relay's progress was made from store ${progress.storeId}, not this one`,
      );
    const source = progress.source;
    if (source === undefined)
      throw new StorageError('the progress record does not name its source');
    // The stream's events from the parked one up to what the relay has passed: it held them.
    const held: RecordedEvent[] = [];
    for (let after = entry.position - 1; after < progress.position;) {
      const batch = await options.store.readAll({ after, maxCount: 1000, upcast: false });
      if (batch.length === 0) break;
      for (const event of batch) {
        if (event.position > progress.position) break;
        if (event.streamId === options.streamId) held.push(event);
      }
      after = batch[batch.length - 1]!.position;
    }
    if (held[0]?.eventId !== entry.eventId)
      throw new StorageError(
        `the parked event ${entry.eventId} is not in the store at ${entry.position}`,
      );
    if (skip) held.shift();
    const described = await admin.describeTopic(entry.topic);
    const topicMax = Number(described?.configs['max.message.bytes']);
    const limit = Number.isSafeInteger(topicMax)
      ? Math.min(maxEventBytes, topicMax - BATCH_HEADROOM)
      : maxEventBytes;
    const records: ProducerRecord[] = [];
    let parkedAgain: RelayParkedEvent | undefined;
    for (const event of held) {
      const record = encodeEvent(event, { topic: entry.topic, source });
      const bytes = recordSize(record);
      if (bytes > limit) {
        parkedAgain = {
          streamId: event.streamId,
          streamVersion: event.streamVersion,
          position: event.position,
          eventId: event.eventId,
          type: event.type,
          topic: entry.topic,
          bytes,
          limit,
          parkedAt: new Date().toISOString(),
        };
        break;
      }
      records.push(record);
    }
    const parked = progress.parked.filter((p) => p.streamId !== options.streamId);
    if (parkedAgain) parked.push(parkedAgain);
    await commit({ ...progress, storeId: progress.storeId ?? storeId, parked }, records);
    logger.warn(
      {
        streamId: options.streamId,
        skipped: skip ? entry.eventId : undefined,
        published: records.length,
        parked: parkedAgain,
      },
      skip
        ? 'relay: parked event skipped by an operator'
        : 'relay: parked stream retried by an operator',
    );
    return { published: records.length, parked: parkedAgain };
  });
}

/**
 * What a relay's progress says against the store, as a relay starting now would judge it:
 * `ok`; `other_store` (made from another store: the relay refuses); `past_head` (published
 * positions the store does not hold: the relay refuses); `not_recorded` (written by an older
 * Tidemark, without a store id: the relay adopts this store at its next start).
 */
export type RelayStoreCheck = 'ok' | 'other_store' | 'past_head' | 'not_recorded';

/** What {@link inspectRelay} answers. */
export interface RelayInspection {
  readonly name: string;
  readonly transactionalId: string;
  /** The last position published (the progress record's). */
  readonly published: number;
  readonly head: number;
  /** Positions behind the head, and positions published beyond it (one of them is 0). */
  readonly backlog: number;
  readonly pastHead: number;
  readonly storeId: string | undefined;
  readonly progressStoreId: string | undefined;
  readonly storeCheck: RelayStoreCheck;
  readonly partitions: Readonly<Record<string, number>>;
  readonly parked: readonly RelayParkedEvent[];
}

/**
 * A relay's committed progress, read from Kafka and checked against the store, without
 * touching the relay (read only: nothing is fenced). For `tidemark relay status` and monitors.
 */
export async function inspectRelay(
  options: RelayOperationOptions & { readonly timeoutMs?: number },
): Promise<RelayInspection> {
  const name = options.name ?? 'default';
  const transactionalId = options.transactionalId ?? `tidemark-relay-${name}`;
  const progress = await readRelayProgressRecord(options.connection, {
    transactionalId,
    ...(options.progressTopic !== undefined ? { progressTopic: options.progressTopic } : {}),
    ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
  });
  const storeId = await storeIdOf(options.store);
  const head = await options.store.headPosition();
  const storeCheck: RelayStoreCheck =
    progress.storeId !== undefined && storeId !== undefined && progress.storeId !== storeId
      ? 'other_store'
      : progress.position > head
        ? 'past_head'
        : progress.storeId === undefined && progress.position > 0
          ? 'not_recorded'
          : 'ok';
  return {
    name,
    transactionalId,
    published: progress.position,
    head,
    backlog: Math.max(0, head - progress.position),
    pastHead: Math.max(0, progress.position - head),
    storeId,
    progressStoreId: progress.storeId,
    storeCheck,
    partitions: progress.partitions,
    parked: progress.parked,
  };
}
