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
import type { Consumer, RecordsBatch } from '@platformatic/kafka';

// The Fetch API's types are not exported by the package; derive them from Consumer.fetch.
type Fetch = Consumer<Buffer, Buffer, Buffer, Buffer>['fetch'];
/** A Fetch request's topic entry. */
export type FetchRequestTopic = Parameters<Fetch>[0]['topics'][number];
/** A Fetch response. */
export type FetchResponse = Awaited<ReturnType<Fetch>>;
/** One partition of a Fetch response. */
export type FetchResponsePartition = FetchResponse['responses'][number]['partitions'][number];

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

// Record batch attributes (Kafka's DefaultRecordBatch): bit 4 transactional, bit 5 control.
const TRANSACTIONAL = 1 << 4;
const CONTROL = 1 << 5;
// A control record's key is (version int16, type int16); type 0 is ABORT, 1 is COMMIT.
const ABORT_MARKER = 0;

function isAbortMarker(batch: RecordsBatch): boolean {
  const key = batch.records[0]?.key;
  return (
    key !== null && key !== undefined && key.length >= 4 && key.readInt16BE(2) === ABORT_MARKER
  );
}

export interface DecodedPartition {
  readonly records: ConsumedRecord[];
  /** The offset to fetch next: one past the last batch returned, control batches included. */
  readonly nextOffset: bigint | undefined;
}

type RawHeaders = RecordsBatch['records'][number]['headers'];

/**
 * A fetched record. Its headers stay as the fetch parsed them (name and value buffers) until
 * `headers` is first read: the event decoder (wire.ts) matches names by their bytes through
 * {@link rawHeadersOf}, so the hot path builds no map and decodes no header name.
 */
class FetchedRecord implements ConsumedRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: bigint;
  readonly timestamp: bigint;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly raw: RawHeaders;
  #headers: Map<string, Buffer> | undefined;

  constructor(
    topic: string,
    partition: number,
    offset: bigint,
    timestamp: bigint,
    key: Buffer | null,
    value: Buffer | null,
    raw: RawHeaders,
  ) {
    this.topic = topic;
    this.partition = partition;
    this.offset = offset;
    this.timestamp = timestamp;
    this.key = key;
    this.value = value;
    this.raw = raw;
  }

  get headers(): ReadonlyMap<string, Buffer> {
    if (this.#headers === undefined) {
      const headers = new Map<string, Buffer>();
      for (const [name, value] of this.raw) {
        if (name !== null) headers.set(name.toString('utf8'), value ?? EMPTY);
      }
      this.#headers = headers;
    }
    return this.#headers;
  }
}

const EMPTY = Buffer.alloc(0);

/**
 * The header pairs of a record as fetched (name, value; either may be null), or undefined for a
 * record built elsewhere (read its `headers` map then). Same content as the map: a null name is
 * skipped, a null value reads as empty, a repeated name keeps its last value.
 */
export function rawHeadersOf(record: ConsumedRecord): RawHeaders | undefined {
  return record instanceof FetchedRecord ? record.raw : undefined;
}

function toRecord(
  topic: string,
  partition: FetchResponsePartition,
  batch: RecordsBatch,
  record: RecordsBatch['records'][number],
): ConsumedRecord {
  return new FetchedRecord(
    topic,
    partition.partitionIndex,
    batch.firstOffset + BigInt(record.offsetDelta),
    batch.firstTimestamp + record.timestampDelta,
    record.key,
    record.value,
    record.headers,
  );
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
  const batches = [...(partition.records ?? [])].sort((a, b) =>
    a.firstOffset < b.firstOffset ? -1 : a.firstOffset > b.firstOffset ? 1 : 0,
  );
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
    const transactional = (batch.attributes & TRANSACTIONAL) !== 0;
    for (const record of batch.records) {
      const consumed = toRecord(topic, partition, batch, record);
      if (consumed.offset < fetchOffset) continue;
      if (!transactional) records.push(consumed);
      else {
        const list = pending.get(batch.producerId) ?? [];
        list.push(consumed);
        pending.set(batch.producerId, list);
      }
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
  const batches = [...(partition.records ?? [])].sort((a, b) =>
    a.firstOffset < b.firstOffset ? -1 : a.firstOffset > b.firstOffset ? 1 : 0,
  );
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
    for (const record of batch.records) {
      if (batch.firstOffset + BigInt(record.offsetDelta) < fetchOffset) continue;
      records.push(toRecord(topic, partition, batch, record));
    }
  }
  return { records, nextOffset };
}
