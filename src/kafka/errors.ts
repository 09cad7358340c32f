/**
 * Errors of the Kafka port. Each extends the project's {@link TidemarkError} with a stable code;
 * failures of @platformatic/kafka never leave this folder untranslated (see {@link translateKafkaError}).
 *
 * Broker connection failures become the core {@link UnavailableError} (`unavailable`), like a
 * database that cannot be reached.
 */
import { TidemarkError, UnavailableError, type TidemarkErrorOptions } from '../core/errors.ts';

/**
 * Another producer started with the same transactional id, so this one was fenced: the broker
 * refuses its sends and commits, and its open transaction is aborted. Not retryable with this
 * producer: a relay that sees it must stop (another instance has taken over) or create a new
 * producer, which fences the other one in turn.
 */
export class KafkaProducerFencedError extends TidemarkError {
  readonly code = 'kafka_producer_fenced';
  readonly retryable = false;
  readonly transactionalId: string;
  constructor(transactionalId: string, options?: TidemarkErrorOptions) {
    super(
      `producer with transactional id '${transactionalId}' was fenced by a newer instance`,
      options,
    );
    this.transactionalId = transactionalId;
  }
}

/**
 * A Kafka request failed for a reason other than fencing or an unreachable broker: the broker
 * answered with an error (`brokerError` is Kafka's own name for it, such as
 * `TOPIC_ALREADY_EXISTS` or `OFFSET_OUT_OF_RANGE`), or the client refused the call.
 */
export class KafkaOperationError extends TidemarkError {
  readonly code = 'kafka_operation_failed';
  /** What the port was doing: `createTopic`, `send`, `commitTransaction`, `fetch`, ... */
  readonly operation: string;
  /** Kafka's error name when the broker answered with one. */
  readonly brokerError: string | undefined;
  readonly retryable: boolean;
  constructor(
    operation: string,
    message: string,
    brokerError: string | undefined,
    retryable: boolean,
    options?: TidemarkErrorOptions,
  ) {
    super(`kafka ${operation} failed: ${message}`, options);
    this.operation = operation;
    this.brokerError = brokerError;
    this.retryable = retryable;
  }
}

/** Where a record sits in Kafka, when the record came from there. */
export interface RecordLocation {
  readonly topic: string;
  readonly partition: number;
  readonly offset: bigint;
}

/**
 * A Kafka record is not a Tidemark event as docs/kafka-wire-format.md defines it: a required
 * header is missing, a value does not parse, the key and `ce_subject` disagree, and so on.
 * `field` names the header (`ce_position`), or `key` / `value`. Not retryable: the same bytes
 * will fail the same way. Kafka-fed projections park such a record instead of applying it.
 */
export class KafkaWireFormatError extends TidemarkError {
  readonly code = 'kafka_wire_format_invalid';
  readonly retryable = false;
  readonly field: string;
  readonly reason: string;
  /** The record's topic, partition and offset, when it was read from Kafka. */
  readonly location: RecordLocation | undefined;
  constructor(
    field: string,
    reason: string,
    location?: RecordLocation,
    options?: TidemarkErrorOptions,
  ) {
    super(
      `${
        location ? `${location.topic}[${location.partition}]@${location.offset}: ` : ''
      }${field}: ${reason}`,
      options,
    );
    this.field = field;
    this.reason = reason;
    this.location = location;
  }
  /** The location flattened, its offset (a bigint) as text: parked records keep this as JSON. */
  override toJSON() {
    const { location: _location, ...fields } = super.toJSON();
    return {
      ...fields,
      ...(this.location
        ? {
            topic: this.location.topic,
            partition: this.location.partition,
            offset: String(this.location.offset),
          }
        : {}),
    };
  }
}

/**
 * A partition no longer holds the beginning of what the relay published to it (retention or
 * DeleteRecords moved its log start offset past where a projection version must start), and the
 * feed has no store of record to fill the missing part from. Not retryable: the records are
 * gone. The projector stops instead of building a read model that silently misses them; give
 * `kafkaFeed` its `backfill` (the store and the topic routing), or keep the topic's retention
 * unbounded.
 */
export class KafkaHistoryTruncatedError extends TidemarkError {
  readonly code = 'kafka_history_truncated';
  readonly retryable = false;
  readonly topic: string;
  readonly partition: number;
  /** The partition's first offset now (its log start offset). */
  readonly logStartOffset: bigint;
  /** Where the version had to start: its stored offset, or null for the beginning. */
  readonly neededOffset: bigint | null;
  constructor(
    topic: string,
    partition: number,
    logStartOffset: bigint,
    neededOffset: bigint | null,
    options?: TidemarkErrorOptions,
  ) {
    super(
      `${topic}[${partition}] starts at offset ${logStartOffset} (retention dropped what came before), ` +
        `but a projection must read it from ${neededOffset === null ? 'the beginning' : `offset ${neededOffset}`}, ` +
        'and the feed has no store to fill the missing events from (kafkaFeed backfill)',
      options,
    );
    this.topic = topic;
    this.partition = partition;
    this.logStartOffset = logStartOffset;
    this.neededOffset = neededOffset;
  }
  override toJSON() {
    return {
      ...super.toJSON(),
      topic: this.topic,
      partition: this.partition,
      logStartOffset: String(this.logStartOffset),
      neededOffset: this.neededOffset === null ? null : String(this.neededOffset),
    };
  }
}

/** Every error class of the Kafka port, for documentation checks. */
export const kafkaErrorClasses = [
  KafkaProducerFencedError,
  KafkaOperationError,
  KafkaWireFormatError,
  KafkaHistoryTruncatedError,
] as const;

/** True for a producer fenced by a newer instance with the same transactional id. */
export function isProducerFenced(value: unknown): value is KafkaProducerFencedError {
  return value instanceof KafkaProducerFencedError;
}

// Kafka's names for "a newer producer with this transactional id exists". Brokers answer
// PRODUCER_FENCED (InitProducerId, EndTxn, AddPartitionsToTxn) or INVALID_PRODUCER_EPOCH
// (Produce, and older request versions) depending on the request.
const FENCING_ERRORS = new Set(['PRODUCER_FENCED', 'INVALID_PRODUCER_EPOCH']);

interface LibraryError {
  code?: string;
  apiId?: string;
  canRetry?: boolean;
  errors?: unknown[];
  cause?: unknown;
  message?: string;
}

/** Every error in a library error's tree (AggregateError members and causes), depth first. */
function flatten(error: unknown, out: LibraryError[] = [], depth = 0): LibraryError[] {
  if (depth > 8 || error === null || typeof error !== 'object') return out;
  const e = error as LibraryError;
  out.push(e);
  if (Array.isArray(e.errors)) for (const inner of e.errors) flatten(inner, out, depth + 1);
  if (e.cause) flatten(e.cause, out, depth + 1);
  return out;
}

/** Kafka's error names (ProtocolError `apiId`s) found anywhere in a library error. */
export function brokerErrorsOf(error: unknown): string[] {
  const names: string[] = [];
  for (const e of flatten(error)) {
    if (typeof e.apiId === 'string') names.push(e.apiId);
    // The library's metadata code replaces the broker's UNKNOWN_TOPIC_OR_PARTITION with a
    // UserError that carries only this message (base.js). Matching its text is the one way to
    // tell a missing topic apart; it is confined to this function.
    else if (
      e.code === 'PLT_KFK_USER' &&
      typeof e.message === 'string' &&
      /^Unknown topic .*\.$/.test(e.message)
    ) {
      names.push('UNKNOWN_TOPIC_OR_PARTITION');
    }
  }
  return names;
}

/**
 * Turns anything @platformatic/kafka throws into a Tidemark error: fencing into
 * {@link KafkaProducerFencedError}, a broker that cannot be reached into `UnavailableError`,
 * the rest into {@link KafkaOperationError}. Tidemark errors pass through unchanged.
 */
export function translateKafkaError(
  error: unknown,
  operation: string,
  context: { transactionalId?: string } = {},
): TidemarkError {
  if (error instanceof TidemarkError) return error;
  const all = flatten(error);
  const brokerErrors = brokerErrorsOf(error);
  const message = error instanceof Error ? error.message : String(error);
  if (context.transactionalId !== undefined && brokerErrors.some((id) => FENCING_ERRORS.has(id))) {
    return new KafkaProducerFencedError(context.transactionalId, { cause: error });
  }
  const detail = deepestMessage(all) ?? message;
  const networkOnly =
    brokerErrors.length === 0 &&
    all.some(
      (e) =>
        e.code === 'PLT_KFK_NETWORK' || e.code === 'ECONNREFUSED' || e.code === 'PLT_KFK_TIMEOUT',
    );
  if (networkOnly)
    return new UnavailableError('kafka', `${operation}: ${detail}`, { cause: error });
  // The library marks each error it knows with canRetry; one non-retryable error decides.
  const retryable = all.every((e) => e.canRetry !== false) && brokerErrors.length > 0;
  const broker = brokerErrors[0];
  return new KafkaOperationError(
    operation,
    broker ? `${broker}: ${detail}` : detail,
    broker,
    retryable,
    {
      cause: error,
    },
  );
}

function deepestMessage(all: LibraryError[]): string | undefined {
  for (let i = all.length - 1; i >= 0; i--) {
    const m = all[i]!.message;
    if (m && !/failed \d+ times|^Producing messages failed|^Received response with error/.test(m))
      return m;
  }
  return undefined;
}
