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
import { KafkaWireFormatError } from './errors.ts';
import type { ProducerRecord } from './producer.ts';
import { fetchedRecord, headerSpans, type ConsumedRecord } from './records.ts';

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

// The format's headers, as slots: decodeEvent finds each by index, not by a map lookup.
const H_CONTENT_TYPE = 0;
const H_SPEC_VERSION = 1;
const H_ID = 2;
const H_SOURCE = 3;
const H_TYPE = 4;
const H_SUBJECT = 5;
const H_TIME = 6;
const H_STREAM_VERSION = 7;
const H_POSITION = 8;
const H_SCHEMA_VERSION = 9;
const H_METADATA = 10;
/** Slot of each lifted metadata key's header, in LIFTED's order. */
const H_LIFTED = 11;
const SLOT_NAMES: readonly string[] = [
  WireHeaders.contentType,
  WireHeaders.specVersion,
  WireHeaders.id,
  WireHeaders.source,
  WireHeaders.type,
  WireHeaders.subject,
  WireHeaders.time,
  WireHeaders.streamVersion,
  WireHeaders.position,
  WireHeaders.schemaVersion,
  WireHeaders.metadata,
  ...LIFTED.map(([, header]) => header),
];
/** Per name length (index), the slots whose names have that length, and the names' bytes. */
const SLOTS_BY_LENGTH: { slot: number; bytes: Buffer }[][] = [];
SLOT_NAMES.forEach((name, slot) => {
  const bytes = Buffer.from(name, 'utf8');
  (SLOTS_BY_LENGTH[bytes.length] ??= []).push({ slot, bytes });
});
const EMPTY = Buffer.alloc(0);

/** The slot of a header name given as bytes, or -1 when the format does not know it. */
function slotOf(name: Buffer, at: number, length: number): number {
  const candidates = length < SLOTS_BY_LENGTH.length ? SLOTS_BY_LENGTH[length] : undefined;
  if (candidates === undefined) return -1;
  for (let c = 0; c < candidates.length; c++) {
    const { slot, bytes } = candidates[c]!;
    if (sameBytes(name, at, bytes, 0, length)) return slot;
  }
  return -1;
}

/** Bytes equal: `a` from `aAt` and `b` from `bAt`, `length` of each. */
function sameBytes(a: Buffer, aAt: number, b: Buffer, bAt: number, length: number): boolean {
  for (let i = 0; i < length; i++) if (a[aAt + i] !== b[bAt + i]) return false;
  return true;
}

/*
 * The values of the format's headers in the record being decoded, by slot: the buffer holding
 * each, where it starts, and its length (-1 when the header is absent, 0 for a null value).
 * decodeEvent is synchronous, so one set serves every call: nothing is allocated per record.
 */
const slotBytes: Buffer[] = SLOT_NAMES.map(() => EMPTY);
const slotAt = new Int32Array(SLOT_NAMES.length);
const slotLength = new Int32Array(SLOT_NAMES.length);

/**
 * Finds the format's headers in a record: in the fetched bytes when the record was fetched
 * (names matched by their bytes, nothing decoded or cut), else in its map. The same rules
 * either way: a null name is skipped, a null value is empty, the last one wins.
 */
function fillSlots(record: ConsumedRecord): void {
  slotLength.fill(-1);
  const fetched = fetchedRecord(record);
  if (fetched === undefined) {
    for (let i = 0; i < SLOT_NAMES.length; i++) {
      const value = record.headers.get(SLOT_NAMES[i]!);
      if (value === undefined) continue;
      slotBytes[i] = value;
      slotAt[i] = 0;
      slotLength[i] = value.length;
    }
    return;
  }
  const bytes = fetched.bytes;
  const spans = headerSpans(fetched);
  for (let s = 0; s < 4 * fetched.headerCount; s += 4) {
    const nameLength = spans[s + 1]!;
    if (nameLength < 0) continue;
    const slot = slotOf(bytes, spans[s]!, nameLength);
    if (slot < 0) continue;
    slotBytes[slot] = bytes;
    slotAt[slot] = spans[s + 2]!;
    slotLength[slot] = Math.max(0, spans[s + 3]!);
  }
}

function wireError(
  record: ConsumedRecord,
  field: string,
  reason: string,
  cause?: unknown,
): KafkaWireFormatError {
  return new KafkaWireFormatError(
    field,
    reason,
    { topic: record.topic, partition: record.partition, offset: record.offset },
    cause === undefined ? undefined : { cause },
  );
}

/** Bytes as UTF-8 text; throws when they are not UTF-8. */
function utf8(
  record: ConsumedRecord,
  field: string,
  bytes: Buffer,
  at: number,
  end: number,
): string {
  const decoded = bytes.toString('utf8', at, end);
  // A lone invalid byte turns into U+FFFD: the header was not UTF-8, so not ours.
  if (decoded.includes('\ufffd') && !Buffer.from(decoded, 'utf8').equals(bytes.subarray(at, end))) {
    throw wireError(record, field, 'is not valid UTF-8');
  }
  return decoded;
}

/** A present header's text. */
function slotText(record: ConsumedRecord, slot: number): string {
  const at = slotAt[slot]!;
  return utf8(record, SLOT_NAMES[slot]!, slotBytes[slot]!, at, at + slotLength[slot]!);
}

function requiredText(record: ConsumedRecord, slot: number): string {
  if (slotLength[slot]! <= 0) throw wireError(record, SLOT_NAMES[slot]!, 'is missing');
  return slotText(record, slot);
}

/**
 * A counter header (`decimal` of the format, at least `min`). Plain digits are read from the
 * bytes; anything else goes through the text, which gives the error.
 */
function counter(record: ConsumedRecord, slot: number, min: number): number {
  const length = slotLength[slot]!;
  // 1 to 16 digits, no leading zero but "0" itself: the DECIMAL rule, on bytes.
  if (length > 0 && length <= 16) {
    const bytes = slotBytes[slot]!;
    const at = slotAt[slot]!;
    let n = 0;
    let i = 0;
    for (; i < length; i++) {
      const digit = bytes[at + i]! - 0x30;
      if (digit < 0 || digit > 9 || (i === 0 && digit === 0 && length > 1)) break;
      n = n * 10 + digit;
    }
    if (i === length && Number.isSafeInteger(n) && n >= min) return n;
  }
  const name = SLOT_NAMES[slot]!;
  const text = requiredText(record, slot);
  if (!DECIMAL.test(text)) throw wireError(record, name, `'${clip(text)}' is not a decimal number`);
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min) {
    throw wireError(record, name, `${text} is out of range (>= ${min})`);
  }
  return n;
}

/** The last `ce_time` decoded and its value (NaN when it was not a time). */
let lastTime = '';
let lastMillis = NaN;

/**
 * The headers whose values repeat from record to record (the spec version, the content type,
 * the source, the event types, the time an append shared), each with the values seen last:
 * their bytes (copied, so no fetch buffer is kept alive) and their text. A value seen before is
 * matched by its bytes and not decoded or checked again; it was valid UTF-8 the first time.
 */
const REPEATING: readonly (readonly [slot: number, keep: number])[] = [
  [H_SPEC_VERSION, 2],
  [H_CONTENT_TYPE, 2],
  [H_SOURCE, 4],
  [H_TYPE, 16],
  [H_TIME, 1], // one append's events share a time; the next append has another
];
const recent: { bytes: Buffer; text: string }[][] = SLOT_NAMES.map(() => []);
const recentKeep: number[] = SLOT_NAMES.map(() => 0);
const recentNext: number[] = SLOT_NAMES.map(() => 0);
for (const [slot, keep] of REPEATING) recentKeep[slot] = keep;

/** {@link requiredText} for a header of {@link REPEATING}. */
function repeatingText(record: ConsumedRecord, slot: number): string {
  const length = slotLength[slot]!;
  const seen = recent[slot]!;
  if (length > 0) {
    const bytes = slotBytes[slot]!;
    const at = slotAt[slot]!;
    for (let i = 0; i < seen.length; i++) {
      const entry = seen[i]!;
      if (entry.bytes.length === length && sameBytes(entry.bytes, 0, bytes, at, length)) {
        return entry.text;
      }
    }
  }
  const text = requiredText(record, slot);
  const at = slotAt[slot]!;
  const entry = { bytes: Buffer.from(slotBytes[slot]!.subarray(at, at + length)), text };
  const keep = recentKeep[slot]!;
  if (seen.length < keep) seen.push(entry);
  else {
    seen[recentNext[slot]!] = entry;
    recentNext[slot] = (recentNext[slot]! + 1) % keep;
  }
  return text;
}

/** The key is the stream id: compared with ce_subject's bytes first, then as text. */
function checkKey(record: ConsumedRecord, streamId: string): void {
  const fetched = fetchedRecord(record);
  const subjectLength = slotLength[H_SUBJECT]!;
  if (fetched !== undefined) {
    if (fetched.keyLength < 0) throw missingKey(record);
    if (
      fetched.keyLength === subjectLength &&
      sameBytes(
        fetched.bytes,
        fetched.keyAt,
        slotBytes[H_SUBJECT]!,
        slotAt[H_SUBJECT]!,
        subjectLength,
      )
    ) {
      return;
    }
  }
  const key = record.key;
  if (key === null) throw missingKey(record);
  const text = key.toString('utf8');
  if (text !== streamId) {
    throw wireError(record, 'key', `'${clip(text)}' differs from ce_subject '${clip(streamId)}'`);
  }
}

function missingKey(record: ConsumedRecord): KafkaWireFormatError {
  return wireError(record, 'key', 'is missing (it must be the stream id)');
}

/**
 * A record from a producer that is not one of the application's relays (its `ce_source` is
 * missing or not in the list). Internal: the Kafka feed parks such records as foreign rather
 * than invalid.
 */
export class ForeignSourceError extends KafkaWireFormatError {
  /** The record's ce_source, undefined when it has none. */
  readonly source: string | undefined;
  constructor(record: ConsumedRecord, source: string | undefined, sources: ReadonlySet<string>) {
    super(
      WireHeaders.source,
      `${source === undefined ? 'missing' : `'${source}'`}: not one of the application's relays (${[...sources].join(', ')})`,
      { topic: record.topic, partition: record.partition, offset: record.offset },
    );
    this.source = source;
  }
}

/**
 * The recorded event a Kafka record carries: the same `eventId`, `streamId`, `streamVersion`,
 * `position`, `type`, `schemaVersion`, `data`, `metadata` and `recordedAt` as the store gives.
 * Throws {@link KafkaWireFormatError} for a record that does not follow the format, and the core
 * `UpcastError` when upcasting is asked for and fails.
 */
export function decodeEvent(record: ConsumedRecord, options: DecodeOptions = {}): RecordedEvent {
  const event = decodeFrom(record, undefined);
  return options.upcasters && !options.upcasters.isEmpty ? options.upcasters.upcast(event) : event;
}

/**
 * {@link decodeEvent} (without upcasting) for the Kafka feed, which takes events only from the
 * application's own relays: a record whose `ce_source` is not in `sources` throws
 * {@link ForeignSourceError} before anything else is checked.
 */
export function decodeFrom(
  record: ConsumedRecord,
  sources: ReadonlySet<string> | undefined,
): RecordedEvent {
  // Every projected record comes through here: one pass over the headers, in the fetched bytes,
  // no closures, and counters read from their bytes (see docs/benchmarks.md, Kafka-fed
  // projections).
  fillSlots(record);
  if (sources !== undefined) {
    const source = slotLength[H_SOURCE]! < 0 ? undefined : repeatingTextOrRaw(record, H_SOURCE);
    if (source === undefined || !sources.has(source)) {
      throw new ForeignSourceError(record, source, sources);
    }
  }
  const specVersion = repeatingText(record, H_SPEC_VERSION);
  if (specVersion !== CLOUDEVENTS_SPEC_VERSION) {
    throw wireError(
      record,
      WireHeaders.specVersion,
      `CloudEvents ${clip(specVersion)} is not supported (only 1.0)`,
    );
  }
  const contentType = repeatingText(record, H_CONTENT_TYPE);
  if (contentType !== CONTENT_TYPE && !JSON_MEDIA_TYPE.test(contentType)) {
    throw wireError(
      record,
      WireHeaders.contentType,
      `'${clip(contentType)}' is not a JSON media type`,
    );
  }
  const eventId = requiredText(record, H_ID);
  repeatingText(record, H_SOURCE);
  const type = repeatingText(record, H_TYPE);
  const streamId = requiredText(record, H_SUBJECT);
  checkKey(record, streamId);
  const time = repeatingText(record, H_TIME);
  // The events of one append share their time: parse each distinct one once.
  let millis: number;
  if (time === lastTime) millis = lastMillis;
  else {
    millis = RFC3339.test(time) ? Date.parse(time) : NaN;
    lastTime = time;
    lastMillis = millis;
  }
  if (Number.isNaN(millis)) {
    throw wireError(record, WireHeaders.time, `'${clip(time)}' is not an RFC 3339 time`);
  }
  const streamVersion = counter(record, H_STREAM_VERSION, 1);
  const position = counter(record, H_POSITION, 1);
  const schemaVersion = counter(record, H_SCHEMA_VERSION, 1);

  let metadata: MessageMetadata = {};
  if (slotLength[H_METADATA]! >= 0) {
    const metadataText = slotText(record, H_METADATA);
    let parsed: unknown;
    try {
      parsed = JSON.parse(metadataText);
    } catch (error) {
      throw wireError(record, WireHeaders.metadata, 'is not JSON', error);
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw wireError(record, WireHeaders.metadata, 'must be a JSON object');
    }
    metadata = parsed as MessageMetadata;
  }
  for (let i = 0; i < LIFTED.length; i++) {
    const slot = H_LIFTED + i;
    if (slotLength[slot]! < 0) continue;
    const [key, header] = LIFTED[i]!;
    const value = slotText(record, slot);
    if (Object.prototype.hasOwnProperty.call(metadata, key)) {
      throw wireError(record, header, `'${key}' is given twice: in ${header} and in ce_metadata`);
    }
    metadata[key] = value;
  }

  const fetched = fetchedRecord(record);
  let json: string;
  if (fetched !== undefined) {
    if (fetched.valueLength < 0) throw missingValue(record);
    json = fetched.bytes.toString('utf8', fetched.valueAt, fetched.valueAt + fetched.valueLength);
  } else {
    if (record.value === null) throw missingValue(record);
    json = record.value.toString('utf8');
  }
  let data: unknown;
  try {
    data = JSON.parse(json);
  } catch (error) {
    throw wireError(record, 'value', 'is not JSON', error);
  }

  return {
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
}

/** A source's text for the foreign check: an empty or non-UTF-8 one is foreign, not invalid. */
function repeatingTextOrRaw(record: ConsumedRecord, slot: number): string {
  if (slotLength[slot] === 0) return '';
  try {
    return repeatingText(record, slot);
  } catch {
    const at = slotAt[slot]!;
    return slotBytes[slot]!.toString('utf8', at, at + slotLength[slot]!);
  }
}

function missingValue(record: ConsumedRecord): KafkaWireFormatError {
  return wireError(record, 'value', 'is missing (a tombstone is not an event)');
}

function clip(text: string): string {
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}
