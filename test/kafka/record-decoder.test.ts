// Tidemark's record batch decoder (src/kafka/records.ts) against the library's own parser, on the
// same bytes: every field of every record must agree, for random records of every shape the
// format allows (null and empty keys and values, long ones whose lengths take several varint
// bytes, null and repeated header names, every compression the library has). Then what the
// library does not cover: log-append time, a batch cut short by the fetch's byte limit, offsets
// past 2^53, and corrupt bytes, which fail loudly with a typed error. No broker needed; the
// broker-fed paths are in test/infra/kafka.test.ts and the Kafka projection tests.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  Reader,
  compressionsAlgorithms,
  readRecordsBatches,
  type CompressionAlgorithmValue,
} from '@platformatic/kafka';
import { decodePartition } from '../../src/kafka/internal.ts';
import { KafkaOperationError } from '../../src/kafka/errors.ts';
import { readBatches } from '../../src/kafka/records.ts';
import { encodeBatch, fetchedPartition, type BatchRecord } from '../support/record-batches.ts';

/** A small seeded generator, so a failure can be replayed. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function someBytes(next: () => number): Buffer | null {
  const pick = next();
  if (pick < 0.1) return null;
  if (pick < 0.2) return Buffer.alloc(0);
  // Mostly short; some past 63 and 8191 bytes, whose lengths take two and three varint bytes.
  const length =
    pick < 0.8
      ? Math.floor(next() * 60)
      : pick < 0.95
        ? 64 + Math.floor(next() * 400)
        : 8192 + Math.floor(next() * 200);
  const bytes = Buffer.alloc(length);
  for (let i = 0; i < length; i++) bytes[i] = Math.floor(next() * 256);
  return bytes;
}

function someRecords(next: () => number): BatchRecord[] {
  const count = 1 + Math.floor(next() * 12);
  return Array.from({ length: count }, () => {
    const headers: [Buffer | null, Buffer | null][] = [];
    const headerCount = Math.floor(next() * 6);
    for (let h = 0; h < headerCount; h++) {
      // Names from a small set, so some repeat; one in ten is null (at most one per record).
      const name =
        next() < 0.1 && !headers.some(([n]) => n === null)
          ? null
          : Buffer.from(`h${Math.floor(next() * 4)}`);
      headers.push([name, someBytes(next)]);
    }
    return {
      key: someBytes(next),
      value: someBytes(next),
      headers,
      // Deltas of either sign, some large enough for a multi-byte varlong.
      timestampDelta: Math.floor((next() - 0.3) * (next() < 0.5 ? 100 : 1e10)),
    };
  });
}

const COMPRESSIONS = (Object.keys(compressionsAlgorithms) as CompressionAlgorithmValue[]).filter(
  (c) =>
    (compressionsAlgorithms as Record<string, { available?: boolean }>)[c]!.available !== false,
);

describe('kafka: record batch decoder', () => {
  it('agrees with the library parser on every field of random batches, in every compression', () => {
    assert.ok(COMPRESSIONS.includes('gzip' as CompressionAlgorithmValue), `${COMPRESSIONS}`);
    let checked = 0;
    for (let seed = 1; seed <= 60; seed++) {
      const next = random(seed);
      const compression = COMPRESSIONS[seed % COMPRESSIONS.length]!;
      const batches: Buffer[] = [];
      let offset = BigInt(Math.floor(next() * 1e6));
      for (let b = 0; b < 1 + Math.floor(next() * 4); b++) {
        const records = someRecords(next);
        batches.push(
          encodeBatch(records, {
            firstOffset: offset,
            firstTimestamp: 1_700_000_000_000n + BigInt(Math.floor(next() * 1e6)),
            compression,
          }),
        );
        offset += BigInt(records.length);
      }
      const partition = fetchedPartition(batches);
      const theirs = readRecordsBatches(Reader.from(partition.records!)).flatMap((batch) =>
        batch.records.map((r) => ({
          offset: batch.firstOffset + BigInt(r.offsetDelta),
          timestamp: batch.firstTimestamp + r.timestampDelta,
          key: r.key,
          value: r.value,
          // The map the library's pairs make: null names skipped, null values empty, last wins.
          headers: new Map(
            r.headers
              .filter(([n]) => n !== null)
              .map(([n, v]) => [n!.toString('utf8'), v ?? Buffer.alloc(0)] as const),
          ),
        })),
      );
      const ours = decodePartition('t', partition, 0n, false).records.map((r) => ({
        offset: r.offset,
        timestamp: r.timestamp,
        key: r.key,
        value: r.value,
        headers: new Map(r.headers),
      }));
      assert.equal(ours.length, theirs.length, `seed ${seed} (${compression})`);
      for (let i = 0; i < ours.length; i++) {
        assert.deepEqual(ours[i], theirs[i], `seed ${seed} (${compression}), record ${i}`);
      }
      checked += ours.length;
    }
    assert.ok(checked > 300, `${checked} records compared`);
  });

  it('reads a log-append time batch at its max timestamp, as Kafka defines it', () => {
    const batch = encodeBatch(
      [
        { value: 'a', timestampDelta: 0 },
        { value: 'b', timestampDelta: 5 },
      ],
      {
        firstOffset: 0n,
        firstTimestamp: 1_000n,
        logAppendTime: true,
        maxTimestamp: 9_999n,
      },
    );
    const records = decodePartition('t', fetchedPartition([batch]), 0n, true).records;
    assert.deepEqual(
      records.map((r) => r.timestamp),
      [9_999n, 9_999n],
    );
    // The create-time batch next to it: the first timestamp plus each delta.
    const created = encodeBatch(
      [
        { value: 'a', timestampDelta: 0 },
        { value: 'b', timestampDelta: 5 },
      ],
      { firstOffset: 0n, firstTimestamp: 1_000n },
    );
    assert.deepEqual(
      decodePartition('t', fetchedPartition([created]), 0n, true).records.map((r) => r.timestamp),
      [1_000n, 1_005n],
    );
  });

  it('leaves a last batch cut short for the next fetch, and moves past the whole ones', () => {
    const one = encodeBatch([{ value: 'a' }, { value: 'b' }], { firstOffset: 10n });
    const two = encodeBatch([{ value: 'c' }], { firstOffset: 12n });
    for (const cut of [1, 11, 12, 30, two.length - 1]) {
      const partition = fetchedPartition([one, two.subarray(0, cut)]);
      const decoded = decodePartition('t', partition, 10n, true);
      assert.deepEqual(
        decoded.records.map((r) => r.value!.toString()),
        ['a', 'b'],
        `cut at ${cut}`,
      );
      assert.equal(decoded.nextOffset, 12n, `cut at ${cut}`);
    }
  });

  it('keeps offsets exact past 2^53', () => {
    const first = 2n ** 60n + 3n;
    const batch = encodeBatch([{ value: 'a' }, { value: 'b' }, { value: 'c' }], {
      firstOffset: first,
    });
    const decoded = decodePartition('t', fetchedPartition([batch]), first + 1n, true);
    assert.deepEqual(
      decoded.records.map((r) => r.offset),
      [first + 1n, first + 2n],
    );
    assert.equal(decoded.nextOffset, first + 3n);
  });

  it('refuses corrupt bytes with a typed error, never a wrong record', () => {
    const good = encodeBatch(
      [
        { key: 'k1', value: 'v1', headers: [['h', 'x']] },
        { key: 'k2', value: 'v2' },
      ],
      { firstOffset: 0n },
    );
    const corrupt = (change: (b: Buffer) => void, expected: RegExp) => {
      const bytes = Buffer.from(good);
      change(bytes);
      assert.throws(
        () => decodePartition('t', fetchedPartition([bytes]), 0n, true),
        (error: unknown) =>
          error instanceof KafkaOperationError &&
          error.brokerError === 'CORRUPT_MESSAGE' &&
          !error.retryable &&
          expected.test(error.message),
      );
    };
    corrupt((b) => b.writeInt8(1, 16), /magic 1/);
    corrupt((b) => b.writeInt32BE(3, 57), /bytes after the batch's 3 records|runs past/); // count 3
    corrupt((b) => b.writeInt32BE(1, 57), /bytes after the batch's 1 records/); // count 1
    corrupt((b) => (b[61] = 0x7e), /runs past its batch/); // first record's length: 63
    corrupt((b) => b.writeInt16BE(7, 21), /unknown compression 7/);
    corrupt((b) => b.writeInt32BE(10, 8), /batch length 10/);
    // The last record's header count (its last byte, the batch's last) says one: its headers
    // are read when asked for, and run past the record.
    const headerless = Buffer.from(good);
    headerless[headerless.length - 1] = 0x02;
    const [, second] = decodePartition('t', fetchedPartition([headerless]), 0n, true).records;
    assert.throws(
      () => second!.headers,
      (error: unknown) =>
        error instanceof KafkaOperationError && error.brokerError === 'CORRUPT_MESSAGE',
    );
    // The unchanged bytes read fine: the cases above corrupt real data.
    assert.equal(readBatches(good)[0]!.count, 2);
    assert.equal(decodePartition('t', fetchedPartition([good]), 0n, true).records.length, 2);
  });
});
