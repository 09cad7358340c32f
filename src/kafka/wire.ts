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
import { rawHeadersOf, type ConsumedRecord } from './records.ts';

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
function slotOf(name: Buffer): number {
  const length = name.length;
  const candidates = length < SLOTS_BY_LENGTH.length ? SLOTS_BY_LENGTH[length] : undefined;
  if (candidates === undefined) return -1;
  for (let c = 0; c < candidates.length; c++) {
    const { slot, bytes } = candidates[c]!;
    let i = 0;
    while (i < length && name[i] === bytes[i]) i++;
    if (i === length) return slot;
  }
  return -1;
}

/**
 * The record's values of the format's headers, by slot: from the header pairs as fetched when
 * the record has them (names matched by their bytes, nothing decoded), else from its map. The
 * same rules either way: a null name is skipped, a null value is empty, the last one wins.
 */
function headerSlots(record: ConsumedRecord): (Buffer | undefined)[] {
  const slots: (Buffer | undefined)[] = [];
  const raw = rawHeadersOf(record);
  if (raw === undefined) {
    for (let i = 0; i < SLOT_NAMES.length; i++) slots.push(record.headers.get(SLOT_NAMES[i]!));
    return slots;
  }
  for (let i = 0; i < SLOT_NAMES.length; i++) slots.push(undefined);
  for (let h = 0; h < raw.length; h++) {
    const [name, value] = raw[h]!;
    if (name === null) continue;
    const slot = slotOf(name);
    if (slot >= 0) slots[slot] = value ?? EMPTY;
  }
  return slots;
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

/** A header's text; throws when it is not UTF-8. */
function headerText(record: ConsumedRecord, name: string, value: Buffer): string {
  const decoded = value.toString('utf8');
  // A lone invalid byte turns into U+FFFD: the header was not UTF-8, so not ours.
  if (decoded.includes('\ufffd') && !Buffer.from(decoded, 'utf8').equals(value)) {
    throw wireError(record, name, 'is not valid UTF-8');
  }
  return decoded;
}

function requiredText(record: ConsumedRecord, slots: (Buffer | undefined)[], slot: number): string {
  const name = SLOT_NAMES[slot]!;
  const value = slots[slot];
  if (value === undefined || value.length === 0) throw wireError(record, name, 'is missing');
  return headerText(record, name, value);
}

/**
 * A counter header (`decimal` of the format, at least `min`). Plain digits are read from the
 * bytes; anything else goes through the text, which gives the error.
 */
function counter(
  record: ConsumedRecord,
  slots: (Buffer | undefined)[],
  slot: number,
  min: number,
): number {
  const value = slots[slot];
  // 1 to 16 digits, no leading zero but "0" itself: the DECIMAL rule, on bytes.
  if (value !== undefined && value.length > 0 && value.length <= 16) {
    let n = 0;
    let i = 0;
    for (; i < value.length; i++) {
      const digit = value[i]! - 0x30;
      if (digit < 0 || digit > 9 || (i === 0 && digit === 0 && value.length > 1)) break;
      n = n * 10 + digit;
    }
    if (i === value.length && Number.isSafeInteger(n) && n >= min) return n;
  }
  const name = SLOT_NAMES[slot]!;
  const text = requiredText(record, slots, slot);
  if (!DECIMAL.test(text)) throw wireError(record, name, `'${clip(text)}' is not a decimal number`);
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min) {
    throw wireError(record, name, `${text} is out of range (>= ${min})`);
  }
  return n;
}

/** Bytes equal: the key against ce_subject's bytes, before any text comparison. */
function sameBytes(a: Buffer, b: Buffer): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
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
function repeatingText(
  record: ConsumedRecord,
  slots: (Buffer | undefined)[],
  slot: number,
): string {
  const value = slots[slot];
  const seen = recent[slot]!;
  if (value !== undefined) {
    for (let i = 0; i < seen.length; i++) {
      if (sameBytes(seen[i]!.bytes, value)) return seen[i]!.text;
    }
  }
  const text = requiredText(record, slots, slot);
  const entry = { bytes: Buffer.from(value!), text };
  const keep = recentKeep[slot]!;
  if (seen.length < keep) seen.push(entry);
  else {
    seen[recentNext[slot]!] = entry;
    recentNext[slot] = (recentNext[slot]! + 1) % keep;
  }
  return text;
}

/**
 * The recorded event a Kafka record carries: the same `eventId`, `streamId`, `streamVersion`,
 * `position`, `type`, `schemaVersion`, `data`, `metadata` and `recordedAt` as the store gives.
 * Throws {@link KafkaWireFormatError} for a record that does not follow the format, and the core
 * `UpcastError` when upcasting is asked for and fails.
 */
export function decodeEvent(record: ConsumedRecord, options: DecodeOptions = {}): RecordedEvent {
  // Every projected record comes through here: one pass over the headers, no closures, and
  // counters read from their bytes (see docs/benchmarks.md, Kafka-fed projections).
  const slots = headerSlots(record);
  const specVersion = repeatingText(record, slots, H_SPEC_VERSION);
  if (specVersion !== CLOUDEVENTS_SPEC_VERSION) {
    throw wireError(
      record,
      WireHeaders.specVersion,
      `CloudEvents ${clip(specVersion)} is not supported (only 1.0)`,
    );
  }
  const contentType = repeatingText(record, slots, H_CONTENT_TYPE);
  if (contentType !== CONTENT_TYPE && !JSON_MEDIA_TYPE.test(contentType)) {
    throw wireError(
      record,
      WireHeaders.contentType,
      `'${clip(contentType)}' is not a JSON media type`,
    );
  }
  const eventId = requiredText(record, slots, H_ID);
  repeatingText(record, slots, H_SOURCE);
  const type = repeatingText(record, slots, H_TYPE);
  const streamId = requiredText(record, slots, H_SUBJECT);
  if (record.key === null) throw wireError(record, 'key', 'is missing (it must be the stream id)');
  if (!sameBytes(record.key, slots[H_SUBJECT]!) && record.key.toString('utf8') !== streamId) {
    throw wireError(
      record,
      'key',
      `'${clip(record.key.toString('utf8'))}' differs from ce_subject '${clip(streamId)}'`,
    );
  }
  const time = repeatingText(record, slots, H_TIME);
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
  const streamVersion = counter(record, slots, H_STREAM_VERSION, 1);
  const position = counter(record, slots, H_POSITION, 1);
  const schemaVersion = counter(record, slots, H_SCHEMA_VERSION, 1);

  let metadata: MessageMetadata = {};
  const metadataBytes = slots[H_METADATA];
  if (metadataBytes !== undefined) {
    const metadataText = headerText(record, WireHeaders.metadata, metadataBytes);
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
    const bytes = slots[H_LIFTED + i];
    if (bytes === undefined) continue;
    const [key, header] = LIFTED[i]!;
    const value = headerText(record, header, bytes);
    if (Object.prototype.hasOwnProperty.call(metadata, key)) {
      throw wireError(record, header, `'${key}' is given twice: in ${header} and in ce_metadata`);
    }
    metadata[key] = value;
  }

  if (record.value === null) {
    throw wireError(record, 'value', 'is missing (a tombstone is not an event)');
  }
  let data: unknown;
  try {
    data = JSON.parse(record.value.toString('utf8'));
  } catch (error) {
    throw wireError(record, 'value', 'is not JSON', error);
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
