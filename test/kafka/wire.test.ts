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

function rejects(record: ConsumedRecord, field: string, reason: RegExp): void {
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
