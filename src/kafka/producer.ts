/**
 * The producer side of the Kafka port: idempotent sends, and transactions for the relay's
 * exactly-once publish (send a batch of events, then commit; a crash or a fence aborts it).
 */
import { Producer, compatibilityPartitioner, type MessageToProduce } from '@platformatic/kafka';
import { ClosedError, InvalidArgumentError } from '../core/errors.ts';
import { clientOptions, type KafkaConnection } from './connection.ts';
import { KafkaProducerFencedError, brokerErrorsOf, translateKafkaError } from './errors.ts';

/** One record to append. */
export interface ProducerRecord {
  readonly topic: string;
  /**
   * The partition key; Tidemark uses the stream id, so one stream's events stay in order in one
   * partition. Hashed like Kafka's Java client (murmur2), so other clients agree on the partition.
   */
  readonly key?: string | Buffer;
  /** The payload; `null` writes a tombstone (meaningful on compacted topics only). */
  readonly value: Buffer | string | null;
  /** Record headers; string values are written as UTF-8. */
  readonly headers?: Readonly<Record<string, string | Buffer>>;
  /** An explicit partition, overriding the key's hash. */
  readonly partition?: number;
  /** Create time in ms since the epoch; default: now. */
  readonly timestamp?: bigint;
}

/** Where a batch landed: the offset of its first record in each partition it touched. */
export interface PartitionOffset {
  readonly topic: string;
  readonly partition: number;
  readonly offset: bigint;
}

/** Options of {@link KafkaProducer}. */
export interface KafkaProducerOptions {
  /**
   * Makes the producer transactional. Keep it stable per logical writer (for example
   * `tidemark-relay-orders`): a new producer with the same id fences the old one and aborts its
   * open transaction, which is how a restarted or duplicated relay is kept from double-publishing.
   */
  readonly transactionalId?: string;
  /**
   * How long a transaction may stay open before the coordinator aborts it. Default 60000 ms.
   * (The library sends its request timeout here; left at its default, any transaction open
   * for more than 5 s would be aborted by the broker.)
   */
  readonly transactionTimeoutMs?: number;
  /** Attempts per request on retryable errors before the call fails. Default 10. */
  readonly retries?: number;
}

type TransactionState = 'open' | 'committed' | 'aborted' | 'failed';

function toMessage(record: ProducerRecord): MessageToProduce<Buffer, Buffer, Buffer, Buffer> {
  if (typeof record.topic !== 'string' || record.topic === '') {
    throw new InvalidArgumentError('topic', 'a record needs a topic');
  }
  // The library's default (no-op) serializers need Buffers everywhere, header names included.
  // A string slipping through makes its retry loop spin forever on a TypeError, so convert here.
  const headers = new Map<Buffer, Buffer>();
  for (const [name, value] of Object.entries(record.headers ?? {})) {
    headers.set(Buffer.from(name), Buffer.isBuffer(value) ? value : Buffer.from(String(value)));
  }
  const message: MessageToProduce<Buffer, Buffer, Buffer, Buffer> = {
    topic: record.topic,
    value: (record.value === null
      ? null
      : Buffer.isBuffer(record.value)
        ? record.value
        : Buffer.from(record.value)) as Buffer,
    headers,
  };
  if (record.key !== undefined)
    message.key = Buffer.isBuffer(record.key) ? record.key : Buffer.from(record.key);
  if (record.partition !== undefined) message.partition = record.partition;
  if (record.timestamp !== undefined) message.timestamp = record.timestamp;
  return message;
}

/**
 * Pause before the library retries a request. After a commit, the coordinator answers the next
 * transaction's AddPartitionsToTxn with CONCURRENT_TRANSACTIONS until the previous transaction's
 * markers are written (a few milliseconds). Waiting the usual 200 ms there halved a relay's
 * throughput (measured: 206 ms per transaction at p50, 19 ms with short waits), so those are
 * retried after 10, 20, 40 ms ..., as Kafka's Java client does with its short backoff for them.
 */
function retryDelay(
  _client: unknown,
  _operation: string,
  attempt: number,
  _retries: number,
  error: unknown,
): number {
  // 10, 20, 40 ... 500 ms: about 2.5 s over the default 10 retries, which also covers an
  // InitProducerId waiting for the coordinator to abort a crashed predecessor's transaction.
  return brokerErrorsOf(error).includes('CONCURRENT_TRANSACTIONS')
    ? Math.min(10 * 2 ** (attempt - 1), 500)
    : 200;
}

function toOffsets(result: {
  offsets?: { topic: string; partition: number; offset: bigint }[];
}): PartitionOffset[] {
  return (result.offsets ?? []).map(({ topic, partition, offset }) => ({
    topic,
    partition,
    offset,
  }));
}

/**
 * An idempotent producer (acks=all, one request in flight per broker, sequence numbers, so a
 * retried send is never written twice), optionally transactional.
 *
 * A transactional producer publishes only inside transactions:
 *
 * ```ts
 * const producer = new KafkaProducer(connection, { transactionalId: 'tidemark-relay-orders' });
 * await producer.initTransactions(); // fences any older instance
 * await producer.transact(async (tx) => {
 *   await tx.send(records);
 * }); // committed; aborted if the callback throws
 * ```
 *
 * Once fenced, every call throws {@link KafkaProducerFencedError}: close the producer.
 */
export class KafkaProducer {
  readonly #producer: Producer<Buffer, Buffer, Buffer, Buffer>;
  readonly #transactionalId: string | undefined;
  #fenced: KafkaProducerFencedError | undefined;
  #open: KafkaTransaction | undefined;
  #initialized = false;
  #closed = false;

  constructor(connection: KafkaConnection, options: KafkaProducerOptions = {}) {
    this.#transactionalId = options.transactionalId;
    if (this.#transactionalId !== undefined && this.#transactionalId.trim() === '') {
      throw new InvalidArgumentError('transactionalId', 'must not be empty');
    }
    this.#producer = new Producer<Buffer, Buffer, Buffer, Buffer>({
      ...clientOptions(connection, 'producer'),
      idempotent: true,
      // InitProducerId must say "no producer yet" (-1/-1). The library's default (0/0) claims
      // producer id 0, epoch 0: harmless for a new transactional id, but once the id has a
      // producer the coordinator answers PRODUCER_FENCED, so a restarted relay could never
      // take over its own transactional id.
      producerId: -1n,
      producerEpoch: -1,
      ...(this.#transactionalId !== undefined ? { transactionalId: this.#transactionalId } : {}),
      // With idempotence on, the library sends `timeout` as both the produce timeout and the
      // transaction timeout of InitProducerId.
      timeout: options.transactionTimeoutMs ?? 60_000,
      retries: options.retries ?? 10,
      retryDelay: retryDelay,
      partitioner: compatibilityPartitioner,
    });
    this.#producer.on('error', () => {});
  }

  /** The transactional id, if this producer is transactional. */
  get transactionalId(): string | undefined {
    return this.#transactionalId;
  }

  /** True once a newer producer with the same transactional id has fenced this one. */
  get fenced(): boolean {
    return this.#fenced !== undefined;
  }

  #check(): void {
    if (this.#closed) throw new ClosedError('kafka producer');
    if (this.#fenced) throw this.#fenced;
  }

  /** Translates a library failure, remembering a fence so every later call reports it too. */
  fail(error: unknown, operation: string): never {
    const translated = translateKafkaError(error, operation, {
      transactionalId: this.#transactionalId,
    });
    if (translated instanceof KafkaProducerFencedError) this.#fenced ??= translated;
    throw translated;
  }

  /** Appends records outside any transaction (idempotent producers only). */
  async send(records: readonly ProducerRecord[]): Promise<PartitionOffset[]> {
    this.#check();
    if (this.#transactionalId !== undefined) {
      throw new InvalidArgumentError(
        'send',
        'a transactional producer sends inside transactions only',
      );
    }
    if (records.length === 0) return [];
    const messages = records.map(toMessage);
    try {
      return toOffsets(await this.#producer.send({ messages }));
    } catch (error) {
      this.fail(error, 'send');
    }
  }

  /**
   * Registers the transactional id with its coordinator (InitProducerId). This bumps the
   * producer epoch: any older producer with the same id is fenced, and a transaction it left
   * open is aborted. Done implicitly by the first {@link beginTransaction}; call it first when
   * a relay must know it is the only writer before it reads where to resume.
   */
  async initTransactions(): Promise<void> {
    this.#check();
    if (this.#transactionalId === undefined) {
      throw new InvalidArgumentError(
        'transactionalId',
        'initTransactions needs a transactional producer',
      );
    }
    if (this.#initialized) return;
    try {
      // The library registers the id when it prepares a transaction; cancelling it afterwards
      // is local only (no EndTxn), so this is exactly one InitProducerId round trip.
      const transaction = await this.#producer.beginTransaction();
      await transaction.cancel();
      this.#initialized = true;
    } catch (error) {
      this.fail(error, 'initTransactions');
    }
  }

  /** Starts a transaction. One at a time per producer. */
  async beginTransaction(): Promise<KafkaTransaction> {
    this.#check();
    if (this.#transactionalId === undefined) {
      throw new InvalidArgumentError(
        'transactionalId',
        'transactions need a transactional producer',
      );
    }
    if (this.#open)
      throw new InvalidArgumentError(
        'transaction',
        'a transaction is already open on this producer',
      );
    try {
      const inner = await this.#producer.beginTransaction();
      this.#initialized = true;
      const transaction = new KafkaTransaction(this, inner, () => {
        if (this.#open === transaction) this.#open = undefined;
      });
      this.#open = transaction;
      return transaction;
    } catch (error) {
      this.fail(error, 'beginTransaction');
    }
  }

  /**
   * Runs `work` in a transaction: commits when it resolves, aborts when it throws (and
   * rethrows). A fence is rethrown as {@link KafkaProducerFencedError} without an abort attempt:
   * the broker has already aborted the transaction.
   */
  async transact<T>(work: (transaction: KafkaTransaction) => Promise<T>): Promise<T> {
    const transaction = await this.beginTransaction();
    let result: T;
    try {
      result = await work(transaction);
    } catch (error) {
      if (!this.fenced && transaction.state !== 'aborted')
        await transaction.abort().catch(() => {});
      throw error;
    }
    await transaction.commit();
    return result;
  }

  /** Closes connections. An open transaction is left to the broker, which aborts it on timeout. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const open = this.#open;
    if (open) await open.discard();
    await this.#producer.close(true);
  }
}

type LibraryTransaction = Awaited<
  ReturnType<Producer<Buffer, Buffer, Buffer, Buffer>['beginTransaction']>
>;

/**
 * An open transaction: records sent through it become visible to read_committed consumers
 * together on {@link commit}, or never after {@link abort}.
 */
export class KafkaTransaction {
  readonly #producer: KafkaProducer;
  readonly #inner: LibraryTransaction;
  readonly #onDone: () => void;
  #state: TransactionState = 'open';
  #sent = false;

  /** @internal created by {@link KafkaProducer.beginTransaction} */
  constructor(producer: KafkaProducer, inner: LibraryTransaction, onDone: () => void) {
    this.#producer = producer;
    this.#inner = inner;
    this.#onDone = onDone;
  }

  /** `open`, then `committed` or `aborted`; `failed` after a failed send (only abort is left). */
  get state(): TransactionState {
    return this.#state;
  }

  #check(operation: string, allowFailed = false): void {
    if (this.#state === 'open' || (allowFailed && this.#state === 'failed')) return;
    throw new InvalidArgumentError(
      'transaction',
      `cannot ${operation} a transaction that is ${this.#state}`,
    );
  }

  /** Appends records as part of the transaction. */
  async send(records: readonly ProducerRecord[]): Promise<PartitionOffset[]> {
    this.#check('send in');
    if (records.length === 0) return [];
    const messages = records.map(toMessage);
    try {
      const result = await this.#inner.send({ messages });
      this.#sent = true;
      return toOffsets(result);
    } catch (error) {
      // Part of the batch may be written: the transaction can only be aborted now.
      this.#sent = true;
      this.#state = 'failed';
      this.#producer.fail(error, 'send');
    }
  }

  /** Makes everything sent visible, atomically. */
  async commit(): Promise<void> {
    this.#check('commit');
    await this.#end(true);
  }

  /** Discards everything sent. */
  async abort(): Promise<void> {
    this.#check('abort', true);
    await this.#end(false);
  }

  async #end(commit: boolean): Promise<void> {
    const operation = commit ? 'commitTransaction' : 'abortTransaction';
    try {
      // The coordinator answers INVALID_TXN_STATE to EndTxn for a transaction it never saw
      // (nothing was sent), so an empty transaction ends locally, as Kafka's Java client does.
      if (this.#sent) {
        if (commit) await this.#inner.commit();
        else await this.#inner.abort();
      } else {
        await this.#inner.cancel();
      }
      this.#state = commit ? 'committed' : 'aborted';
      this.#onDone();
    } catch (error) {
      this.#state = 'failed';
      try {
        this.#producer.fail(error, operation);
      } finally {
        if (this.#producer.fenced) this.#onDone();
      }
    }
  }

  /** @internal forget the transaction locally (producer closing). */
  async discard(): Promise<void> {
    if (this.#state === 'committed' || this.#state === 'aborted') return;
    this.#state = 'aborted';
    await this.#inner.cancel().catch(() => {});
    this.#onDone();
  }
}
