/**
 * Turning fetched record batches into records, with read_committed filtering.
 *
 * In read_committed mode the broker returns every batch below the last stable offset, aborted
 * ones included, plus the list of aborted transactions (producer id and first offset) that
 * overlap the fetched range. Dropping aborted data is the client's job. The rule, as in Kafka's
 * Java consumer: walk batches in offset order; once a batch reaches an aborted transaction's
 * first offset, that producer id is "aborting"; its transactional data batches are skipped
 * until its ABORT control marker, which ends the aborted transaction.
 *
 * (@platformatic/kafka 1.x filters with one range per producer id, so when a response holds
 * two aborted transactions of one producer, the first one's records get through. This module
 * does not rely on that filter.)
 */
import {
  compressionsAlgorithmsByBitmask,
  ResponseError,
  type Consumer,
  type Reader,
} from '@platformatic/kafka';
import { KafkaOperationError } from './errors.ts';

// The Fetch request's types are not exported by the package; derive them from Consumer.fetch.
type Fetch = Consumer<Buffer, Buffer, Buffer, Buffer>['fetch'];
/** A Fetch request's topic entry. */
export type FetchRequestTopic = Parameters<Fetch>[0]['topics'][number];

/** A transaction the broker lists as aborted in a read_committed answer. */
export interface AbortedTransaction {
  readonly producerId: bigint;
  readonly firstOffset: bigint;
}

/** One partition of a Fetch response, its record batches kept as the bytes the broker sent. */
export interface FetchResponsePartition {
  readonly partitionIndex: number;
  readonly errorCode: number;
  readonly highWatermark: bigint;
  readonly lastStableOffset: bigint;
  readonly logStartOffset: bigint;
  /** Null on the wire means none. */
  readonly abortedTransactions: readonly AbortedTransaction[] | null;
  /** The record batches, undecoded (see {@link readBatches}); null when there are none. */
  readonly records: Buffer | null;
}

/** A Fetch response (v13 to v17: topics by id). */
export interface FetchResponse {
  readonly throttleTimeMs: number;
  readonly errorCode: number;
  readonly responses: readonly {
    readonly topicId: string;
    readonly partitions: readonly FetchResponsePartition[];
  }[];
}

/**
 * Reads a Fetch response (v13 to v17, which share their layout) without decoding its records:
 * each partition's record batches stay one buffer, read later by {@link readBatches}. The
 * library's own parser builds an object, a tuple and buffers for every record and header before
 * Tidemark sees any (about 2 µs per event, docs/benchmarks.md); this one leaves that to the
 * decoder below, which builds one object per record. Errors are reported as the library's
 * parser reports them (a {@link ResponseError} naming each failed partition), so the callers'
 * error handling is unchanged.
 */
export function parseFetchResponse(
  _correlationId: number,
  apiKey: number,
  apiVersion: number,
  reader: Reader,
): FetchResponse {
  const errors: [string, [number, null]][] = [];
  const throttleTimeMs = reader.readInt32();
  const errorCode = reader.readInt16();
  if (errorCode !== 0) errors.push(['', [errorCode, null]]);
  reader.readInt32(); // session id: Tidemark asks for no fetch session
  const responses = reader.readArray((r, i) => ({
    topicId: r.readUUID(),
    partitions: r.readArray(
      (r, j): FetchResponsePartition => {
        const partitionIndex = r.readInt32();
        const partitionError = r.readInt16();
        if (partitionError !== 0) {
          errors.push([`/responses/${i}/partitions/${j}`, [partitionError, null]]);
        }
        const highWatermark = r.readInt64();
        const lastStableOffset = r.readInt64();
        const logStartOffset = r.readInt64();
        const abortedTransactions = r.readNullableArray((r) => ({
          producerId: r.readInt64(),
          firstOffset: r.readInt64(),
        }));
        r.readInt32(); // preferred read replica
        // COMPACT_RECORDS: length + 1, 0 for null.
        const size = r.readUnsignedVarInt() - 1;
        let records: Buffer | null = null;
        if (size > 0) {
          // One contiguous buffer: a view when the bytes arrived in one chunk, else a copy.
          records = r.buffer.slice(r.position, r.position + size);
          r.skip(size);
        }
        r.readTaggedFields(); // diverging epoch, current leader, snapshot id: not used
        return {
          partitionIndex,
          errorCode: partitionError,
          highWatermark,
          lastStableOffset,
          logStartOffset,
          abortedTransactions,
          records,
        };
      },
      true,
      false,
    ),
  }));
  reader.readTaggedFields(); // node endpoints (v16+): not used
  const response: FetchResponse = { throttleTimeMs, errorCode, responses };
  if (errors.length > 0) {
    throw new ResponseError(apiKey, apiVersion, Object.fromEntries(errors), response);
  }
  return response;
}

/** A consumed record. */
export interface ConsumedRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: bigint;
  /** Create (or log-append) time, ms since the epoch. */
  readonly timestamp: bigint;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  /** Headers by name (UTF-8); a repeated name keeps its last value; a null value reads as empty. */
  readonly headers: ReadonlyMap<string, Buffer>;
}

// Record batch attributes (Kafka's DefaultRecordBatch): bits 0-2 compression, bit 3 timestamp
// type (1: log-append time), bit 4 transactional, bit 5 control.
const COMPRESSION = 0b111;
const LOG_APPEND_TIME = 1 << 3;
const TRANSACTIONAL = 1 << 4;
const CONTROL = 1 << 5;
// A control record's key is (version int16, type int16); type 0 is ABORT, 1 is COMMIT.
const ABORT_MARKER = 0;

// The v2 record batch header: where each field sits, and where the records begin.
const BATCH_LENGTH_AT = 8;
const MAGIC_AT = 16;
const ATTRIBUTES_AT = 21;
const LAST_OFFSET_DELTA_AT = 23;
const FIRST_TIMESTAMP_AT = 27;
const MAX_TIMESTAMP_AT = 35;
const PRODUCER_ID_AT = 43;
const RECORD_COUNT_AT = 57;
const RECORDS_AT = 61;
/** Base offset and batch length: the part of a batch not counted in its length. */
const LOG_OVERHEAD = 12;

/** A record batch's header, and where its records are. */
export interface RecordBatch {
  readonly firstOffset: bigint;
  readonly lastOffsetDelta: number;
  readonly attributes: number;
  readonly firstTimestamp: bigint;
  readonly maxTimestamp: bigint;
  readonly producerId: bigint;
  readonly count: number;
  /** The records' bytes: the fetched ones, or the decompressed ones. */
  readonly bytes: Buffer;
  readonly start: number;
  readonly end: number;
}

function corrupt(what: string): KafkaOperationError {
  // Not retried: the broker sends the same bytes again. The fetch fails loudly instead.
  return new KafkaOperationError(
    'fetch',
    `corrupt record batch: ${what}`,
    'CORRUPT_MESSAGE',
    false,
  );
}

/**
 * The record batches of a partition's fetched bytes, in the order sent. A last batch cut short
 * (the broker fills a fetch up to its byte limit and may end mid-batch) is left for the next
 * fetch, as Kafka's clients do. Compressed batches are decompressed here.
 */
export function readBatches(records: Buffer | null): RecordBatch[] {
  const batches: RecordBatch[] = [];
  if (records === null) return batches;
  let at = 0;
  while (records.length - at >= LOG_OVERHEAD) {
    const length = records.readInt32BE(at + BATCH_LENGTH_AT);
    const end = at + LOG_OVERHEAD + length;
    if (end > records.length) break; // cut short: read it next time
    if (length < RECORDS_AT - LOG_OVERHEAD) throw corrupt(`batch length ${length} at byte ${at}`);
    const magic = records.readInt8(at + MAGIC_AT);
    if (magic !== 2) throw corrupt(`magic ${magic} (only record batch v2 is read)`);
    const attributes = records.readInt16BE(at + ATTRIBUTES_AT);
    let bytes = records;
    let start = at + RECORDS_AT;
    let stop = end;
    const compression = attributes & COMPRESSION;
    if (compression !== 0) {
      const algorithm = (
        compressionsAlgorithmsByBitmask as Record<
          number,
          { decompressSync(data: Buffer): Buffer } | undefined
        >
      )[compression];
      if (!algorithm) throw corrupt(`unknown compression ${compression}`);
      bytes = algorithm.decompressSync(records.subarray(start, end));
      start = 0;
      stop = bytes.length;
    }
    batches.push({
      firstOffset: records.readBigInt64BE(at),
      lastOffsetDelta: records.readInt32BE(at + LAST_OFFSET_DELTA_AT),
      attributes,
      firstTimestamp: records.readBigInt64BE(at + FIRST_TIMESTAMP_AT),
      maxTimestamp: records.readBigInt64BE(at + MAX_TIMESTAMP_AT),
      producerId: records.readBigInt64BE(at + PRODUCER_ID_AT),
      count: records.readInt32BE(at + RECORD_COUNT_AT),
      bytes,
      start,
      end: stop,
    });
    at = end;
  }
  return batches;
}

// The record decoder's cursor: `at` advances through `bytes`, never past `limit`.
let at = 0;
let limit = 0;

/**
 * A zigzag varint (a varlong, up to 10 bytes) at the cursor. Exact up to 2^53, far beyond any
 * length or delta in a valid batch.
 */
function varint(bytes: Buffer): number {
  if (at >= limit) throw corrupt('a record runs past its end');
  let b = bytes[at++]!;
  if (b < 0x80) return (b >>> 1) ^ -(b & 1);
  let n = b & 0x7f;
  let scale = 0x80;
  for (let i = 1; ; i++) {
    if (i === 10 || at >= limit) throw corrupt('a varint runs past its record');
    b = bytes[at++]!;
    n += (b & 0x7f) * scale;
    if (b < 0x80) break;
    scale *= 0x80;
  }
  return n % 2 === 0 ? n / 2 : -(n + 1) / 2;
}

/** Skips `length` bytes at the cursor (nothing for a null, -1). */
function skipBytes(length: number): void {
  if (length > 0) {
    at += length;
    if (at > limit) throw corrupt('a field runs past its record');
  } else if (length < -1) throw corrupt(`length ${length}`);
}

const EMPTY = Buffer.alloc(0);

/**
 * A fetched record: where its parts lie in the batch's bytes. Key, value and headers are cut
 * from them only when read; the event decoder (wire.ts) reads the bytes in place through
 * {@link headerSpans}.
 */
class FetchedRecord implements ConsumedRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: bigint;
  readonly bytes: Buffer;
  readonly keyAt: number;
  /** -1 for a null key. */
  readonly keyLength: number;
  readonly valueAt: number;
  /** -1 for a null value. */
  readonly valueLength: number;
  readonly headersAt: number;
  readonly headerCount: number;
  readonly end: number;
  readonly #batchTime: bigint;
  /** The record's timestamp delta; NaN when the batch's time is log-append time. */
  readonly #timeDelta: number;
  #headers: Map<string, Buffer> | undefined;

  constructor(
    topic: string,
    partition: number,
    offset: bigint,
    bytes: Buffer,
    keyAt: number,
    keyLength: number,
    valueAt: number,
    valueLength: number,
    headersAt: number,
    headerCount: number,
    end: number,
    batchTime: bigint,
    timeDelta: number,
  ) {
    this.topic = topic;
    this.partition = partition;
    this.offset = offset;
    this.bytes = bytes;
    this.keyAt = keyAt;
    this.keyLength = keyLength;
    this.valueAt = valueAt;
    this.valueLength = valueLength;
    this.headersAt = headersAt;
    this.headerCount = headerCount;
    this.end = end;
    this.#batchTime = batchTime;
    this.#timeDelta = timeDelta;
  }

  get timestamp(): bigint {
    return Number.isNaN(this.#timeDelta)
      ? this.#batchTime
      : this.#batchTime + BigInt(this.#timeDelta);
  }

  get key(): Buffer | null {
    return this.keyLength < 0 ? null : this.bytes.subarray(this.keyAt, this.keyAt + this.keyLength);
  }

  get value(): Buffer | null {
    return this.valueLength < 0
      ? null
      : this.bytes.subarray(this.valueAt, this.valueAt + this.valueLength);
  }

  get headers(): ReadonlyMap<string, Buffer> {
    if (this.#headers === undefined) {
      const headers = new Map<string, Buffer>();
      const spans = headerSpans(this);
      for (let h = 0; h < this.headerCount; h++) {
        const nameLength = spans[4 * h + 1]!;
        if (nameLength < 0) continue;
        const nameAt = spans[4 * h]!;
        const valueAt = spans[4 * h + 2]!;
        const valueLength = spans[4 * h + 3]!;
        headers.set(
          this.bytes.toString('utf8', nameAt, nameAt + nameLength),
          valueLength < 0 ? EMPTY : this.bytes.subarray(valueAt, valueAt + valueLength),
        );
      }
      this.#headers = headers;
    }
    return this.#headers;
  }
}

/** A fetched record's bytes and where its parts are, or undefined for a record built elsewhere. */
export function fetchedRecord(record: ConsumedRecord): FetchedRecord | undefined {
  return record instanceof FetchedRecord ? record : undefined;
}
export type { FetchedRecord };

let spans = new Int32Array(64);

/**
 * Where each header of a fetched record lies in `record.bytes`: four numbers per header (name
 * start, name length, value start, value length; a length of -1 is a null), in the order sent.
 * The array is shared and overwritten by the next call: read it before calling again.
 */
export function headerSpans(record: FetchedRecord): Int32Array {
  if (spans.length < 4 * record.headerCount) spans = new Int32Array(8 * record.headerCount);
  at = record.headersAt;
  limit = record.end;
  const bytes = record.bytes;
  for (let h = 0, s = 0; h < record.headerCount; h++, s += 4) {
    const nameLength = varint(bytes);
    spans[s] = at;
    spans[s + 1] = nameLength;
    skipBytes(nameLength);
    const valueLength = varint(bytes);
    spans[s + 2] = at;
    spans[s + 3] = valueLength;
    skipBytes(valueLength);
  }
  return spans;
}

/**
 * Decodes a batch's records from `fetchOffset` on (a batch may begin before it: the broker
 * returns whole batches) and appends them to `out`.
 */
function readRecords(
  topic: string,
  partition: number,
  batch: RecordBatch,
  fetchOffset: bigint,
  out: ConsumedRecord[],
): void {
  const bytes = batch.bytes;
  const logAppendTime = (batch.attributes & LOG_APPEND_TIME) !== 0;
  const batchTime = logAppendTime ? batch.maxTimestamp : batch.firstTimestamp;
  // Offsets as numbers within the batch; each record's bigint is made once.
  const first = batch.firstOffset;
  const firstNumber = Number(first);
  const exact = Number.isSafeInteger(firstNumber + batch.lastOffsetDelta);
  at = batch.start;
  for (let i = 0; i < batch.count; i++) {
    limit = batch.end;
    const length = varint(bytes);
    const recordEnd = at + length;
    if (length < 0 || recordEnd > batch.end) throw corrupt(`record ${i} runs past its batch`);
    limit = recordEnd;
    at++; // attributes: unused in v2
    const timeDelta = varint(bytes);
    const offsetDelta = varint(bytes);
    const keyLength = varint(bytes);
    const keyAt = at;
    skipBytes(keyLength);
    const valueLength = varint(bytes);
    const valueAt = at;
    skipBytes(valueLength);
    const headerCount = varint(bytes);
    if (headerCount < 0) throw corrupt(`header count ${headerCount}`);
    const headersAt = at;
    at = recordEnd;
    const offset = exact ? BigInt(firstNumber + offsetDelta) : first + BigInt(offsetDelta);
    if (offset < fetchOffset) continue;
    out.push(
      new FetchedRecord(
        topic,
        partition,
        offset,
        bytes,
        keyAt,
        keyLength,
        valueAt,
        valueLength,
        headersAt,
        headerCount,
        recordEnd,
        batchTime,
        logAppendTime ? NaN : timeDelta,
      ),
    );
  }
  if (at !== batch.end) {
    throw corrupt(`${batch.end - at} bytes after the batch's ${batch.count} records`);
  }
}

/** The first record of a control batch decides: is it an ABORT marker? */
function isAbortMarker(batch: RecordBatch): boolean {
  const out: ConsumedRecord[] = [];
  readRecords('', 0, batch, batch.firstOffset, out);
  const key = out[0]?.key;
  return (
    key !== null && key !== undefined && key.length >= 4 && key.readInt16BE(2) === ABORT_MARKER
  );
}

export interface DecodedPartition {
  readonly records: ConsumedRecord[];
  /** The offset to fetch next: one past the last batch returned, control batches included. */
  readonly nextOffset: bigint | undefined;
}

function byFirstOffset(a: RecordBatch, b: RecordBatch): number {
  return a.firstOffset < b.firstOffset ? -1 : a.firstOffset > b.firstOffset ? 1 : 0;
}

/** Records of transactions not yet decided, per producer id, carried from one fetch to the next. */
export type PendingTransactions = Map<bigint, ConsumedRecord[]>;

/**
 * Decodes one partition of a **read_uncommitted** Fetch response by the transaction markers
 * themselves: a transactional record counts once its producer's COMMIT marker is seen, and is
 * dropped at an ABORT marker; non-transactional records count at once. Unlike
 * {@link decodePartition}, nothing depends on the broker's list of aborted transactions, but a
 * record whose marker lies beyond what was read stays in `pending`. Read a range whose
 * transactions are all complete (below the last stable offset), passing the same `pending` map
 * to consecutive fetches.
 */
export function decodeByMarkers(
  topic: string,
  partition: FetchResponsePartition,
  fetchOffset: bigint,
  pending: PendingTransactions,
): DecodedPartition {
  const batches = readBatches(partition.records).sort(byFirstOffset);
  const records: ConsumedRecord[] = [];
  let nextOffset: bigint | undefined;
  for (const batch of batches) {
    nextOffset = batch.firstOffset + BigInt(batch.lastOffsetDelta) + 1n;
    if ((batch.attributes & CONTROL) !== 0) {
      const decided = pending.get(batch.producerId);
      pending.delete(batch.producerId);
      if (decided && !isAbortMarker(batch)) records.push(...decided);
      continue;
    }
    if ((batch.attributes & TRANSACTIONAL) === 0) {
      readRecords(topic, partition.partitionIndex, batch, fetchOffset, records);
    } else {
      const list = pending.get(batch.producerId) ?? [];
      readRecords(topic, partition.partitionIndex, batch, fetchOffset, list);
      pending.set(batch.producerId, list);
    }
  }
  return { records, nextOffset };
}

/**
 * Decodes one partition of a Fetch response. `fetchOffset` is where the fetch started: a batch
 * may begin before it (the broker returns whole batches), and those earlier records are skipped.
 */
export function decodePartition(
  topic: string,
  partition: FetchResponsePartition,
  fetchOffset: bigint,
  readCommitted: boolean,
): DecodedPartition {
  const batches = readBatches(partition.records).sort(byFirstOffset);
  const aborted = readCommitted
    ? // Nullable in the 2.x typings (a null array on the wire): no aborted transactions.
      [...(partition.abortedTransactions ?? [])].sort((a, b) =>
        a.firstOffset < b.firstOffset ? -1 : a.firstOffset > b.firstOffset ? 1 : 0,
      )
    : [];
  const aborting = new Set<bigint>();
  let nextAborted = 0;
  const records: ConsumedRecord[] = [];
  let nextOffset: bigint | undefined;

  for (const batch of batches) {
    const lastOffset = batch.firstOffset + BigInt(batch.lastOffsetDelta);
    nextOffset = lastOffset + 1n;
    const control = (batch.attributes & CONTROL) !== 0;
    if (readCommitted && (batch.attributes & TRANSACTIONAL) !== 0) {
      while (nextAborted < aborted.length && aborted[nextAborted]!.firstOffset <= lastOffset) {
        aborting.add(aborted[nextAborted]!.producerId);
        nextAborted++;
      }
      if (control) {
        if (isAbortMarker(batch)) aborting.delete(batch.producerId);
        continue;
      }
      if (aborting.has(batch.producerId)) continue;
    }
    if (control) continue;
    readRecords(topic, partition.partitionIndex, batch, fetchOffset, records);
  }
  return { records, nextOffset };
}
