// Kafka record batches as a broker sends them, for tests of Tidemark's record decoder
// (src/kafka/records.ts). The bytes come from the library's own batch encoder, an implementation
// independent of the decoder under test; the fields the encoder does not set (base offset,
// control and timestamp-type bits, the CRC over them) are written here as Kafka's batch format
// places them.
import {
  crc32c,
  createRecordsBatch,
  type CompressionAlgorithmValue,
  type MessageRecord,
} from '@platformatic/kafka';
import type { FetchResponsePartition } from '../../src/kafka/records.ts';

const TRANSACTIONAL = 1 << 4;
const CONTROL = 1 << 5;
const LOG_APPEND_TIME = 1 << 3;

/** One record of a batch. Header names and values may be null; a name may repeat. */
export interface BatchRecord {
  readonly key?: Buffer | string | null;
  readonly value?: Buffer | string | null;
  readonly headers?: readonly (readonly [Buffer | string | null, Buffer | string | null])[];
  /** Milliseconds after the batch's first timestamp. */
  readonly timestampDelta?: number;
}

export interface BatchOptions {
  readonly firstOffset: bigint;
  readonly producerId?: bigint;
  readonly transactional?: boolean;
  readonly control?: boolean;
  readonly logAppendTime?: boolean;
  readonly firstTimestamp?: bigint;
  /** Written as the batch's max timestamp (log-append time reads it). */
  readonly maxTimestamp?: bigint;
  readonly compression?: CompressionAlgorithmValue;
}

const bytes = (v: Buffer | string | null | undefined) =>
  v === null || v === undefined ? null : Buffer.isBuffer(v) ? v : Buffer.from(v, 'utf8');

/** One record batch (v2), as bytes. */
export function encodeBatch(records: readonly BatchRecord[], options: BatchOptions): Buffer {
  const first = options.firstTimestamp ?? 1_700_000_000_000n;
  const messages = records.map((r) => {
    // Distinct Buffer objects as keys: a Map then holds a name twice, and a null name.
    const headers = new Map<Buffer | null, Buffer | null>();
    for (const [name, value] of r.headers ?? []) headers.set(bytes(name), bytes(value));
    return {
      topic: 't',
      key: bytes(r.key),
      value: bytes(r.value),
      headers,
      timestamp: first + BigInt(r.timestampDelta ?? 0),
    } as unknown as MessageRecord;
  });
  const batch = Buffer.from(
    createRecordsBatch(messages, {
      compression: options.compression ?? 'none',
      producerId: options.producerId ?? -1n,
      producerEpoch: 0,
      ...(options.transactional || options.control ? { transactionalId: 'tx' } : {}),
    }).buffer,
  );
  batch.writeBigInt64BE(options.firstOffset, 0);
  let attributes = batch.readInt16BE(21);
  if (options.transactional || options.control) attributes |= TRANSACTIONAL;
  if (options.control) attributes |= CONTROL;
  if (options.logAppendTime) attributes |= LOG_APPEND_TIME;
  batch.writeInt16BE(attributes, 21);
  if (options.maxTimestamp !== undefined) batch.writeBigInt64BE(options.maxTimestamp, 35);
  // The CRC covers everything from the attributes on.
  batch.writeUInt32BE(crc32c(batch.subarray(21)), 17);
  return batch;
}

/** A transaction marker: a control batch whose one record's key is (version 0, type). */
export function encodeMarker(producerId: bigint, offset: bigint, commit: boolean): Buffer {
  const key = Buffer.alloc(4);
  key.writeInt16BE(0, 0);
  key.writeInt16BE(commit ? 1 : 0, 2);
  return encodeBatch([{ key, value: Buffer.alloc(6) }], {
    firstOffset: offset,
    producerId,
    control: true,
  });
}

/** A fetched partition holding `batches` back to back. */
export function fetchedPartition(
  batches: readonly Buffer[],
  aborted: { producerId: bigint; firstOffset: bigint }[] = [],
  partitionIndex = 0,
): FetchResponsePartition {
  return {
    partitionIndex,
    errorCode: 0,
    highWatermark: 100n,
    lastStableOffset: 100n,
    logStartOffset: 0n,
    abortedTransactions: aborted,
    records: batches.length === 0 ? null : Buffer.concat(batches),
  };
}
