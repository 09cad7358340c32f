// read_committed filtering of fetched batches, on hand-built Fetch responses (no broker needed;
// test/infra/kafka.test.ts checks the same against a real one).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeByMarkers, decodePartition } from '../../src/kafka/internal.ts';
import { encodeBatch, encodeMarker, fetchedPartition } from '../support/record-batches.ts';

function dataBatch(
  producerId: bigint,
  firstOffset: bigint,
  values: string[],
  transactional = true,
): Buffer {
  return encodeBatch(
    values.map((value, i) => ({ key: 'k', value, headers: [['h', value]], timestampDelta: i })),
    { firstOffset, producerId, transactional },
  );
}

const marker = encodeMarker;
const partition = (batches: Buffer[], aborted: { producerId: bigint; firstOffset: bigint }[]) =>
  fetchedPartition(batches, aborted);

const values = (decoded: ReturnType<typeof decodePartition>) =>
  decoded.records.map((r) => r.value!.toString());

describe('kafka: decodePartition', () => {
  // Offsets: P aborts (0-1, marker 2), commits (3, marker 4), aborts (5, marker 6), commits (7, marker 8).
  const P = 7n;
  const oneProducerTwoAborts = partition(
    [
      dataBatch(P, 0n, ['a1', 'a2']),
      marker(P, 2n, false),
      dataBatch(P, 3n, ['c1']),
      marker(P, 4n, true),
      dataBatch(P, 5n, ['a3']),
      marker(P, 6n, false),
      dataBatch(P, 7n, ['c2']),
      marker(P, 8n, true),
    ],
    [
      { producerId: P, firstOffset: 0n },
      { producerId: P, firstOffset: 5n },
    ],
  );

  it('drops every aborted transaction of a producer, not only its last one', () => {
    const decoded = decodePartition('t', oneProducerTwoAborts, 0n, true);
    assert.deepEqual(values(decoded), ['c1', 'c2']);
    assert.equal(decoded.nextOffset, 9n, 'the position moves past the last marker');
  });

  it('read_uncommitted returns all data records, never markers', () => {
    assert.deepEqual(values(decodePartition('t', oneProducerTwoAborts, 0n, false)), [
      'a1',
      'a2',
      'c1',
      'a3',
      'c2',
    ]);
  });

  it('keeps other producers’ records that interleave with an aborted transaction', () => {
    const Q = 8n;
    const decoded = decodePartition(
      't',
      partition(
        [
          dataBatch(P, 0n, ['p-aborted']),
          dataBatch(Q, 1n, ['q-committed']),
          dataBatch(7000n, 2n, ['plain'], false),
          marker(P, 3n, false),
          marker(Q, 4n, true),
        ],
        [{ producerId: P, firstOffset: 0n }],
      ),
      0n,
      true,
    );
    assert.deepEqual(values(decoded), ['q-committed', 'plain']);
    assert.equal(decoded.nextOffset, 5n);
  });

  it('skips the records of a batch that lie before the fetch offset', () => {
    const decoded = decodePartition(
      't',
      partition([dataBatch(1n, 10n, ['x', 'y', 'z'], false)], []),
      11n,
      true,
    );
    assert.deepEqual(
      decoded.records.map((r) => [r.offset, r.value!.toString()]),
      [
        [11n, 'y'],
        [12n, 'z'],
      ],
    );
    assert.equal(decoded.records[0]!.timestamp, 1_700_000_000_001n);
    assert.equal(decoded.records[0]!.headers.get('h')!.toString(), 'y');
  });

  it('an empty answer leaves the position alone', () => {
    assert.equal(decodePartition('t', partition([], []), 5n, true).nextOffset, undefined);
  });
});

describe('kafka: decodeByMarkers', () => {
  const P = 7n;
  // A restarted producer: an aborted transaction with data, two commits, then an ABORT marker
  // with no data before it (the producer died right after AddPartitionsToTxn), then a commit.
  const restarts = partition(
    [
      dataBatch(P, 0n, ['t1']),
      marker(P, 1n, true),
      dataBatch(P, 2n, ['t2-aborted']),
      marker(P, 3n, false),
      dataBatch(P, 4n, ['t3']),
      marker(P, 5n, true),
      dataBatch(P, 6n, ['t4']),
      marker(P, 7n, true),
      marker(P, 8n, false),
      dataBatch(P, 9n, ['t5']),
      marker(P, 10n, true),
      dataBatch(P, 11n, ['open']),
    ],
    [{ producerId: P, firstOffset: 2n }],
  );

  it('keeps exactly the committed records, judged by the markers alone', () => {
    const pending = new Map();
    const decoded = decodeByMarkers('t', restarts, 0n, pending);
    assert.deepEqual(values(decoded), ['t1', 't3', 't4', 't5']);
    assert.deepEqual(
      [...pending.get(P)].map((r: { value: Buffer }) => r.value.toString()),
      ['open'],
      'undecided until its marker comes',
    );
    // read_committed decoding agrees (the broker lists only the aborted transaction with data).
    assert.deepEqual(values(decodePartition('t', restarts, 0n, true)).slice(0, 4), [
      't1',
      't3',
      't4',
      't5',
    ]);
  });
});
