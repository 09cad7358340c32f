/**
 * Tidemark's Kafka wire format: a recorded event as a CloudEvents 1.0 event in the Kafka protocol
 * binding's binary content mode. docs/kafka-wire-format.md is the contract for other clients;
 * this module is its one implementation in Tidemark, used by the relay (encode) and by
 * Kafka-fed projections (decode).
 *
 * A record, as written by {@link encodeEvent}:
 *
 * ```
 * key                = UTF-8(streamId)
 * value              = UTF-8(JSON(data))                 ; data as stored, NOT upcast
 * header content-type     = "application/json"
 * header ce_specversion   = "1.0"
 * header ce_id            = eventId
 * header ce_source        = <configured URI-reference>   ; e.g. "tidemark://orders"
 * header ce_type          = type
 * header ce_subject       = streamId                     ; equals the key
 * header ce_time          = RFC 3339 UTC, milliseconds   ; recordedAt, "2025-01-31T09:30:00.123Z"
 * header ce_streamversion = decimal                      ; 1, 2, 3 ... per stream
 * header ce_position      = decimal                      ; the store's global log position
 * header ce_schemaversion = decimal                      ; schema version the data was stored with
 * header ce_correlationid = metadata.correlationId       ; only when it is a string
 * header ce_causationid   = metadata.causationId         ; only when it is a string
 * header traceparent      = metadata.traceparent         ; W3C trace context, only when a string
 * header tracestate       = metadata.tracestate          ; only when a string
 * header ce_metadata      = JSON object                  ; every other metadata key; absent when none
 * record timestamp   = recordedAt (ms)
 * decimal            = "0" / (%x31-39 *15DIGIT)          ; at most 2^53 - 1
 * ```
 *
 * The counters travel as CloudEvents *String* attributes holding decimal digits, not as
 * CloudEvents Integers: those are 32-bit, and positions outgrow 2^31 in a long-lived store.
 * Decoders ignore headers they do not know, so attributes can be added without breaking them.
 */
import {
  InvalidArgumentError,
  type MessageMetadata,
  type RecordedEvent,
  type Upcasters,
} from '../core/index.ts';
import { toJson } from '../core/preparation.ts';
import { KafkaWireFormatError, type RecordLocation } from './errors.ts';
import type { ProducerRecord } from './producer.ts';
import type { ConsumedRecord } from './records.ts';

/** The CloudEvents version this format implements. */
export const CLOUDEVENTS_SPEC_VERSION = '1.0';
/** The media type of record values. */
export const CONTENT_TYPE = 'application/json';

/** Header names of the format. */
export const WireHeaders = {
  contentType: 'content-type',
  specVersion: 'ce_specversion',
  id: 'ce_id',
  source: 'ce_source',
  type: 'ce_type',
  subject: 'ce_subject',
  time: 'ce_time',
  streamVersion: 'ce_streamversion',
  position: 'ce_position',
  schemaVersion: 'ce_schemaversion',
  correlationId: 'ce_correlationid',
  causationId: 'ce_causationid',
  traceparent: 'traceparent',
  tracestate: 'tracestate',
  metadata: 'ce_metadata',
} as const;

/** Metadata keys that travel in headers of their own (when their value is a string). */
const LIFTED: readonly (readonly [key: string, header: string])[] = [
  ['correlationId', WireHeaders.correlationId],
  ['causationId', WireHeaders.causationId],
  ['traceparent', WireHeaders.traceparent],
  ['tracestate', WireHeaders.tracestate],
];

/** What {@link encodeEvent} needs besides the event. */
export interface EncodeOptions {
  /** The topic to write to. */
  readonly topic: string;
  /** `ce_source`: a URI-reference naming the producing application, e.g. `tidemark://orders`. */
  readonly source: string;
}

/** Checks a `ce_source` value once, at configuration time. */
export function validateSource(source: unknown, argument = 'source'): asserts source is string {
  // A URI-reference (RFC 3986) has no spaces or control characters; a relative one is allowed.
  if (typeof source !== 'string' || source === '' || hasSpaceOrControl(source)) {
    throw new InvalidArgumentError(
      argument,
      'must be a non-empty URI-reference (e.g. tidemark://orders)',
    );
  }
}

function hasSpaceOrControl(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code <= 0x20 || code === 0x7f) return true;
  }
  return /\s/.test(text);
}

/**
 * The Kafka record for a recorded event. `event.data` must be the data as stored (read from a
 * store opened without upcasters): consumers upcast from `ce_schemaversion` themselves.
 */
export function encodeEvent(event: RecordedEvent, options: EncodeOptions): ProducerRecord {
  const headers: Record<string, string> = {
    [WireHeaders.contentType]: CONTENT_TYPE,
    [WireHeaders.specVersion]: CLOUDEVENTS_SPEC_VERSION,
    [WireHeaders.id]: event.eventId,
    [WireHeaders.source]: options.source,
    [WireHeaders.type]: event.type,
    [WireHeaders.subject]: event.streamId,
    [WireHeaders.time]: event.recordedAt.toISOString(),
    [WireHeaders.streamVersion]: String(event.streamVersion),
    [WireHeaders.position]: String(event.position),
    [WireHeaders.schemaVersion]: String(event.schemaVersion),
  };
  const metadata = event.metadata;
  let rest: Record<string, unknown> | undefined;
  for (const key in metadata) {
    const value = metadata[key];
    if (value === undefined) continue; // JSON drops it too: the store never returns one
    const lifted = typeof value === 'string' ? LIFTED.find(([k]) => k === key) : undefined;
    if (lifted) headers[lifted[1]] = value as string;
    else (rest ??= {})[key] = value;
  }
  if (rest) headers[WireHeaders.metadata] = toJson(rest, 'metadata');
  return {
    topic: options.topic,
    key: event.streamId,
    value: Buffer.from(toJson(event.data, 'data')),
    headers,
    timestamp: BigInt(event.recordedAt.getTime()),
  };
}

/** Options of {@link decodeEvent}. */
export interface DecodeOptions {
  /** Upcast the data to the current schema (as the store's reads do). Default: as stored. */
  readonly upcasters?: Upcasters;
}

const DECIMAL = /^(0|[1-9][0-9]{0,15})$/;
// RFC 3339 date-time: full-date "T" full-time, with a fraction and a zone (Z or an offset).
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
const JSON_MEDIA_TYPE = /^application\/(?:[a-z0-9.+-]+\+)?json\s*(;.*)?$/i;

/**
 * The recorded event a Kafka record carries: the same `eventId`, `streamId`, `streamVersion`,
 * `position`, `type`, `schemaVersion`, `data`, `metadata` and `recordedAt` as the store gives.
 * Throws {@link KafkaWireFormatError} for a record that does not follow the format, and the core
 * `UpcastError` when upcasting is asked for and fails.
 */
export function decodeEvent(record: ConsumedRecord, options: DecodeOptions = {}): RecordedEvent {
  const location: RecordLocation = {
    topic: record.topic,
    partition: record.partition,
    offset: record.offset,
  };
  const fail = (field: string, reason: string, cause?: unknown): never => {
    throw new KafkaWireFormatError(
      field,
      reason,
      location,
      cause === undefined ? undefined : { cause },
    );
  };
  const headers = record.headers;
  const text = (name: string): string | undefined => {
    const value = headers.get(name);
    if (value === undefined) return undefined;
    const decoded = value.toString('utf8');
    // A lone invalid byte turns into U+FFFD: the header was not UTF-8, so not ours.
    if (decoded.includes('\ufffd') && !Buffer.from(decoded, 'utf8').equals(value)) {
      fail(name, 'is not valid UTF-8');
    }
    return decoded;
  };
  const required = (name: string): string => {
    const value = text(name);
    if (value === undefined || value === '') fail(name, 'is missing');
    return value!;
  };
  const counter = (name: string, min: number): number => {
    const value = required(name);
    if (!DECIMAL.test(value)) fail(name, `'${clip(value)}' is not a decimal number`);
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < min) fail(name, `${value} is out of range (>= ${min})`);
    return n;
  };

  const specVersion = required(WireHeaders.specVersion);
  if (specVersion !== CLOUDEVENTS_SPEC_VERSION) {
    fail(WireHeaders.specVersion, `CloudEvents ${clip(specVersion)} is not supported (only 1.0)`);
  }
  const contentType = required(WireHeaders.contentType);
  if (!JSON_MEDIA_TYPE.test(contentType)) {
    fail(WireHeaders.contentType, `'${clip(contentType)}' is not a JSON media type`);
  }
  const eventId = required(WireHeaders.id);
  required(WireHeaders.source);
  const type = required(WireHeaders.type);
  const streamId = required(WireHeaders.subject);
  if (record.key === null) fail('key', 'is missing (it must be the stream id)');
  else if (record.key.toString('utf8') !== streamId) {
    fail(
      'key',
      `'${clip(record.key.toString('utf8'))}' differs from ce_subject '${clip(streamId)}'`,
    );
  }
  const time = required(WireHeaders.time);
  const millis = RFC3339.test(time) ? Date.parse(time) : NaN;
  if (Number.isNaN(millis)) fail(WireHeaders.time, `'${clip(time)}' is not an RFC 3339 time`);
  const streamVersion = counter(WireHeaders.streamVersion, 1);
  const position = counter(WireHeaders.position, 1);
  const schemaVersion = counter(WireHeaders.schemaVersion, 1);

  let metadata: MessageMetadata = {};
  const metadataText = text(WireHeaders.metadata);
  if (metadataText !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(metadataText);
    } catch (error) {
      fail(WireHeaders.metadata, 'is not JSON', error);
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      fail(WireHeaders.metadata, 'must be a JSON object');
    }
    metadata = parsed as MessageMetadata;
  }
  for (const [key, header] of LIFTED) {
    const value = text(header);
    if (value === undefined) continue;
    if (Object.prototype.hasOwnProperty.call(metadata, key)) {
      fail(header, `'${key}' is given twice: in ${header} and in ce_metadata`);
    }
    metadata[key] = value;
  }

  if (record.value === null) fail('value', 'is missing (a tombstone is not an event)');
  let data: unknown;
  try {
    data = JSON.parse(record.value!.toString('utf8'));
  } catch (error) {
    fail('value', 'is not JSON', error);
  }

  const event = {
    type,
    data,
    metadata,
    eventId,
    streamId,
    streamVersion,
    position,
    schemaVersion,
    recordedAt: new Date(millis),
  } as RecordedEvent;
  return options.upcasters && !options.upcasters.isEmpty ? options.upcasters.upcast(event) : event;
}

function clip(text: string): string {
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}
