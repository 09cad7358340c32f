// The Kafka wire format (docs/kafka-wire-format.md): encoding, decoding, the round trip, and
// every way a record can fail to be a Tidemark event. No broker needed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Upcasters, UpcastError, isTidemarkError, type RecordedEvent } from 'tidemark';
import {
  KafkaWireFormatError,
  decodeEvent,
  encodeEvent,
  type ConsumedRecord,
  type ProducerRecord,
} from 'tidemark/kafka';
import { decodePartition } from '../../src/kafka/internal.ts';
import { encodeBatch, fetchedPartition } from '../support/record-batches.ts';

const event: RecordedEvent = {
  eventId: '0b9f6a52-2f0e-4f7e-9f4e-5c0d2a7c9e11',
  streamId: 'order-42',
  streamVersion: 3,
  position: 9_007_199_254_740_991,
  type: 'ItemAdded',
  schemaVersion: 2,
  data: { sku: 'SKU-1', quantity: 2, unitPriceCents: 1299, note: 'ünïcødé ✓', nested: [1, null] },
  metadata: {
    correlationId: 'req-1',
    causationId: 'cmd-9',
    traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    tracestate: 'vendor=x',
    userId: 'u-7',
    tags: ['a', 'b'],
  },
  recordedAt: new Date('2025-01-31T09:30:00.123Z'),
};

/** What a consumer would receive for a produced record. */
function consumed(record: ProducerRecord, offset = 17n): ConsumedRecord {
  const headers = new Map<string, Buffer>();
  for (const [name, value] of Object.entries(record.headers ?? {})) {
    headers.set(name, Buffer.isBuffer(value) ? value : Buffer.from(value));
  }
  const toBuffer = (v: string | Buffer | null | undefined) =>
    v === null || v === undefined ? null : Buffer.isBuffer(v) ? v : Buffer.from(v);
  return {
    topic: record.topic,
    partition: 2,
    offset,
    timestamp: record.timestamp ?? 0n,
    key: toBuffer(record.key),
    value: toBuffer(record.value),
    headers,
  };
}

const text = (v: string | Buffer | null | undefined) =>
  v === null || v === undefined ? v : Buffer.isBuffer(v) ? v.toString('utf8') : v;

function withHeaders(
  record: ConsumedRecord,
  change: Record<string, string | Buffer | undefined>,
): ConsumedRecord {
  const headers = new Map(record.headers);
  for (const [name, value] of Object.entries(change)) {
    if (value === undefined) headers.delete(name);
    else headers.set(name, Buffer.isBuffer(value) ? value : Buffer.from(value));
  }
  return { ...record, headers };
}

type RawHeaders = [Buffer | null, Buffer | null][];

/**
 * The same record as a fetch delivers it: encoded into a record batch (the library's encoder)
 * and read back by decodePartition, so decodeEvent reads its headers in the fetched bytes.
 * `raw` replaces the header pairs, to give what a map cannot hold (null names and values, a
 * name twice).
 */
function fetched(record: ConsumedRecord, raw?: RawHeaders): ConsumedRecord {
  const pairs: RawHeaders = raw ?? [...record.headers].map(([n, v]) => [Buffer.from(n), v]);
  const batch = encodeBatch([{ key: record.key, value: record.value, headers: pairs }], {
    firstOffset: record.offset,
    firstTimestamp: record.timestamp,
  });
  const [one] = decodePartition(
    record.topic,
    fetchedPartition([batch], [], record.partition),
    record.offset,
    true,
  ).records;
  return one!;
}

/** Refused as built here and as a fetch delivers it, with the same field and reason. */
function rejects(record: ConsumedRecord, field: string, reason: RegExp): void {
  rejectsOne(record, field, reason);
  rejectsOne(fetched(record), field, reason);
}

function rejectsOne(record: ConsumedRecord, field: string, reason: RegExp): void {
  assert.throws(
    () => decodeEvent(record),
    (error: unknown) => {
      assert.ok(error instanceof KafkaWireFormatError, String(error));
      assert.equal(error.code, 'kafka_wire_format_invalid');
      assert.equal(error.retryable, false);
      assert.equal(error.field, field);
      assert.match(error.reason, reason);
      assert.deepEqual(error.location, { topic: 'order-events', partition: 2, offset: 17n });
      return true;
    },
  );
}

describe('kafka: wire format', () => {
  const record = encodeEvent(event, { topic: 'order-events', source: 'tidemark://orders' });

  it('encodes a CloudEvent in binary mode: key, JSON value, ce_ headers', () => {
    assert.equal(record.topic, 'order-events');
    assert.equal(text(record.key), 'order-42');
    assert.deepEqual(JSON.parse(text(record.value as Buffer)!), event.data);
    assert.equal(record.timestamp, BigInt(event.recordedAt.getTime()));
    assert.deepEqual(record.headers, {
      'content-type': 'application/json',
      ce_specversion: '1.0',
      ce_id: event.eventId,
      ce_source: 'tidemark://orders',
      ce_type: 'ItemAdded',
      ce_subject: 'order-42',
      ce_time: '2025-01-31T09:30:00.123Z',
      ce_streamversion: '3',
      ce_position: '9007199254740991',
      ce_schemaversion: '2',
      ce_correlationid: 'req-1',
      ce_causationid: 'cmd-9',
      traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      tracestate: 'vendor=x',
      ce_metadata: '{"userId":"u-7","tags":["a","b"]}',
    });
    // Extension attribute names are lower-case letters and digits (CloudEvents 1.0).
    for (const name of Object.keys(record.headers!)) {
      if (name.startsWith('ce_')) assert.match(name.slice(3), /^[a-z0-9]{1,20}$/);
    }
  });

  it('round-trips: the decoded event equals the recorded one', () => {
    assert.deepEqual(decodeEvent(consumed(record)), event);
    assert.deepEqual(decodeEvent(fetched(consumed(record))), event);
  });

  it('reads fetched header pairs as the map would: null names skipped, null values empty, the last of a name', () => {
    const good = consumed(record);
    const pairs = [...good.headers].map(([n, v]): [Buffer | null, Buffer | null] => [
      Buffer.from(n),
      v,
    ]);
    // A null name and an unknown name (not UTF-8, and as long as a known one) are ignored.
    const extra = fetched(good, [
      [null, Buffer.from('x')],
      [Buffer.from([0xff, 0x63, 0x65, 0x5f, 0x69]), Buffer.from('y')],
      ...pairs,
    ]);
    assert.deepEqual(decodeEvent(extra), event);
    assert.equal(extra.headers.get('ce_type')?.toString(), 'ItemAdded');
    assert.equal(extra.headers.size, good.headers.size + 1);
    // The last ce_type wins; an earlier bad one does not matter.
    const twice = fetched(good, [[Buffer.from('ce_type'), Buffer.from('Bogus')], ...pairs]);
    assert.equal(decodeEvent(twice).type, 'ItemAdded');
    const later = fetched(good, [...pairs, [Buffer.from('ce_type'), Buffer.from('Renamed')]]);
    assert.equal(decodeEvent(later).type, 'Renamed');
    assert.equal(later.headers.get('ce_type')?.toString(), 'Renamed');
    // A null value is empty: a required header with one is missing.
    const nulled = pairs.map(([n, v]): [Buffer | null, Buffer | null] =>
      n?.toString() === 'ce_id' ? [n, null] : [n, v],
    );
    rejectsOne(fetched(good, nulled), 'ce_id', /missing/);
    assert.equal(fetched(good, nulled).headers.get('ce_id')?.length, 0);
  });

  it('reads counters from their bytes only when they are plain decimals; the rest is refused as before', () => {
    const good = consumed(record);
    const cases: [string, RegExp][] = [
      ['', /missing/],
      ['0', /range/],
      ['00', /decimal/],
      ['01', /decimal/],
      ['+1', /decimal/],
      ['1e3', /decimal/],
      [' 1', /decimal/],
      ['١', /decimal/], // an Arabic-Indic digit: a digit in Unicode, not in the format
      ['12345678901234567', /decimal/], // 17 digits
      ['9007199254740992', /range/], // 16 digits, above 2^53 - 1
    ];
    for (const [value, reason] of cases) {
      rejects(withHeaders(good, { ce_streamversion: value }), 'ce_streamversion', reason);
    }
    for (const value of ['1', '10', '9007199254740991']) {
      const decoded = decodeEvent(fetched(withHeaders(good, { ce_position: value })));
      assert.equal(decoded.position, Number(value));
    }
  });

  it('compares the key with ce_subject as text; equal bytes or not, and times seen twice', () => {
    const good = consumed(record);
    // Same text, same bytes: accepted. Other text: refused (also after the same subject).
    assert.equal(decodeEvent(fetched(good)).streamId, 'order-42');
    rejects({ ...good, key: Buffer.from('order-42 ') }, 'key', /differs/);
    // The time of the record before is no answer for this one: each is its own.
    const first = decodeEvent(fetched(good));
    const other = decodeEvent(fetched(withHeaders(good, { ce_time: '2025-01-31T09:30:00.124Z' })));
    assert.equal(other.recordedAt.getTime() - first.recordedAt.getTime(), 1);
    rejects(withHeaders(good, { ce_time: '2025-01-31T09:30:00.124' }), 'ce_time', /RFC 3339/);
    assert.equal(decodeEvent(fetched(good)).recordedAt.getTime(), event.recordedAt.getTime());
  });

  it('round-trips empty metadata, null data and metadata keys that are not strings', () => {
    const plain = { ...event, metadata: {}, data: null };
    const encoded = encodeEvent(plain, { topic: 'order-events', source: '/orders' });
    assert.equal(encoded.headers!['ce_metadata'], undefined);
    assert.equal(encoded.headers!['ce_correlationid'], undefined);
    assert.deepEqual(decodeEvent(consumed(encoded)), plain);

    // A correlationId that is not a string stays in ce_metadata, and comes back as it was.
    const odd = {
      ...event,
      metadata: { correlationId: 42, causationId: null } as unknown as RecordedEvent['metadata'],
    };
    const oddRecord = encodeEvent(odd, { topic: 'order-events', source: '/orders' });
    assert.equal(oddRecord.headers!['ce_correlationid'], undefined);
    assert.deepEqual(decodeEvent(consumed(oddRecord)), odd);
  });

  it('upcasts on decode when asked, keeping the stored schema version (as store reads do)', () => {
    const v1 = { ...event, schemaVersion: 1, data: { sku: 'SKU-1', qty: 2 } };
    const upcasters = new Upcasters([
      {
        type: 'ItemAdded',
        fromVersion: 1,
        upcast: (data) => {
          const { qty, ...rest } = data as { qty: number };
          return { ...rest, quantity: qty };
        },
      },
    ]);
    const encoded = consumed(encodeEvent(v1, { topic: 'order-events', source: '/o' }));
    assert.deepEqual(decodeEvent(encoded).data, { sku: 'SKU-1', qty: 2 });
    const upcast = decodeEvent(encoded, { upcasters });
    assert.deepEqual(upcast.data, { sku: 'SKU-1', quantity: 2 });
    assert.equal(upcast.schemaVersion, 1);
    // A schema newer than the reader knows is the core's UpcastError.
    const newer = consumed(
      encodeEvent({ ...v1, schemaVersion: 3 }, { topic: 'order-events', source: '/o' }),
    );
    assert.throws(() => decodeEvent(newer, { upcasters }), UpcastError);
  });

  it('refuses records that are not Tidemark events, saying which field is wrong', () => {
    const good = consumed(record);
    rejects(withHeaders(good, { ce_specversion: '0.3' }), 'ce_specversion', /not supported/);
    rejects(withHeaders(good, { ce_specversion: undefined }), 'ce_specversion', /missing/);
    rejects(withHeaders(good, { ce_id: '' }), 'ce_id', /missing/);
    rejects(withHeaders(good, { ce_type: undefined }), 'ce_type', /missing/);
    rejects(withHeaders(good, { ce_source: undefined }), 'ce_source', /missing/);
    rejects(withHeaders(good, { ce_subject: undefined }), 'ce_subject', /missing/);
    rejects(withHeaders(good, { 'content-type': 'text/plain' }), 'content-type', /JSON/);
    rejects(withHeaders(good, { ce_time: 'yesterday' }), 'ce_time', /RFC 3339/);
    rejects(withHeaders(good, { ce_time: '2025-13-45T99:00:00Z' }), 'ce_time', /RFC 3339/);
    rejects(withHeaders(good, { ce_streamversion: '0' }), 'ce_streamversion', /range/);
    rejects(withHeaders(good, { ce_streamversion: '007' }), 'ce_streamversion', /decimal/);
    rejects(withHeaders(good, { ce_position: '-1' }), 'ce_position', /decimal/);
    rejects(withHeaders(good, { ce_position: '9007199254740993' }), 'ce_position', /range/);
    rejects(withHeaders(good, { ce_schemaversion: '1.5' }), 'ce_schemaversion', /decimal/);
    rejects(withHeaders(good, { ce_metadata: '{oops' }), 'ce_metadata', /not JSON/);
    rejects(withHeaders(good, { ce_metadata: '[1]' }), 'ce_metadata', /object/);
    rejects(
      withHeaders(good, { ce_metadata: '{"correlationId":"x"}' }),
      'ce_correlationid',
      /twice/,
    );
    rejects(withHeaders(good, { ce_type: Buffer.from([0xff, 0xfe]) }), 'ce_type', /UTF-8/);
    rejects({ ...good, key: null }, 'key', /missing/);
    rejects({ ...good, key: Buffer.from('order-43') }, 'key', /differs/);
    rejects({ ...good, value: null }, 'value', /tombstone/);
    rejects({ ...good, value: Buffer.from('{"sku":') }, 'value', /not JSON/);
  });

  it('accepts what the contract allows: other JSON media types, offsets in ce_time, unknown headers', () => {
    const good = consumed(record);
    const other = withHeaders(good, {
      'content-type': 'application/cloudevents+json; charset=utf-8',
      ce_time: '2025-01-31T10:30:00.123+01:00',
      ce_dataschema: 'https://example.com/schema',
      'x-custom': 'ignored',
    });
    const decoded = decodeEvent(other);
    assert.deepEqual(decoded, event);
  });

  it('carries a bad argument as a typed error', () => {
    assert.throws(
      () => encodeEvent({ ...event, data: { big: 1n } }, { topic: 't', source: '/o' }),
      (error: unknown) => isTidemarkError(error, 'serialization_failed'),
    );
  });
});
