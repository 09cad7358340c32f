/**
 * Input checks and serialisation shared by every store adapter, done once per append before any
 * I/O, so bad input fails the same way everywhere and never reaches the database.
 */
import { InvalidArgumentError, SerializationError, StorageError } from './errors.ts';
import { assertExpectedVersion, type ExpectedVersion, ANY } from './expected-version.ts';
import type { MessageMetadata, NewEvent } from './messages.ts';
import type { AppendOptions, ReadAllOptions, ReadStreamOptions } from './store.ts';
import type { Upcasters } from './upcasting.ts';

/** Longest stream id accepted, in UTF-16 code units. */
export const MAX_STREAM_ID_LENGTH = 512;
/** Longest event type accepted. */
export const MAX_EVENT_TYPE_LENGTH = 256;

/** An event ready for an INSERT: data and metadata already JSON text. */
export interface PreparedEvent {
  eventId: string;
  type: string;
  schemaVersion: number;
  data: string;
  metadata: string;
  /** The metadata object as written (for the recorded event handed back). */
  metadataObject: MessageMetadata;
  /** The data as given (for the recorded event handed back). */
  dataObject: unknown;
}

export function validateStreamId(
  streamId: unknown,
  argument = 'streamId',
): asserts streamId is string {
  if (typeof streamId !== 'string' || streamId.length === 0) {
    throw new InvalidArgumentError(argument, 'must be a non-empty string');
  }
  if (streamId.length > MAX_STREAM_ID_LENGTH) {
    throw new InvalidArgumentError(argument, `must be at most ${MAX_STREAM_ID_LENGTH} characters`);
  }
  // A lone surrogate cannot be stored as UTF-8 and would come back changed.
  if (!streamId.isWellFormed()) {
    throw new InvalidArgumentError(argument, 'must be well-formed Unicode');
  }
}

/** JSON text of `value`, or a {@link SerializationError} saying what could not be written. */
export function toJson(value: unknown, what: string): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (error) {
    throw new SerializationError(what, (error as Error).message, { cause: error });
  }
  if (text === undefined) {
    throw new SerializationError(what, `${typeof value} has no JSON form`);
  }
  return text;
}

/** Validates and serialises the events of one append. Throws before anything is written. */
export function prepareEvents(
  events: readonly NewEvent[],
  upcasters: Upcasters,
  newId: () => string,
): PreparedEvent[] {
  if (!Array.isArray(events) || events.length === 0) {
    throw new InvalidArgumentError('events', 'must be a non-empty array');
  }
  const prepared: PreparedEvent[] = new Array(events.length);
  for (let i = 0; i < events.length; i++) {
    const event = events[i];
    if (event === null || typeof event !== 'object') {
      throw new InvalidArgumentError(`events[${i}]`, 'must be an object');
    }
    const { type, data, metadata, eventId } = event;
    if (typeof type !== 'string' || type.length === 0 || type.length > MAX_EVENT_TYPE_LENGTH) {
      throw new InvalidArgumentError(
        `events[${i}].type`,
        `must be a non-empty string of at most ${MAX_EVENT_TYPE_LENGTH} characters`,
      );
    }
    if (eventId !== undefined && (typeof eventId !== 'string' || eventId.length === 0)) {
      throw new InvalidArgumentError(`events[${i}].eventId`, 'must be a non-empty string');
    }
    if (
      metadata !== undefined &&
      (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata))
    ) {
      throw new InvalidArgumentError(`events[${i}].metadata`, 'must be an object');
    }
    const metadataObject = metadata ?? {};
    prepared[i] = {
      eventId: eventId ?? newId(),
      type,
      schemaVersion: upcasters.currentVersion(type),
      data: toJson(data, `events[${i}].data`),
      metadata: toJson(metadataObject, `events[${i}].metadata`),
      metadataObject,
      dataObject: data,
    };
  }
  return prepared;
}

/** The expected version of an append, checked (`ANY` when not given). */
export function appendExpectation(options: AppendOptions | undefined): ExpectedVersion {
  const expected = options?.expectedVersion === undefined ? ANY : options.expectedVersion;
  assertExpectedVersion(expected);
  return expected;
}

function positiveIntOption(value: unknown, name: string, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new InvalidArgumentError(name, `must be an integer >= ${min}, got ${String(value)}`);
  }
  return value;
}

/** Checked and defaulted stream read options. `toVersion` is `Infinity`-free: MAX_SAFE_INTEGER. */
export function streamReadRange(options: ReadStreamOptions | undefined): {
  forwards: boolean;
  fromVersion: number;
  toVersion: number;
  maxCount: number;
} {
  const direction = options?.direction ?? 'forwards';
  if (direction !== 'forwards' && direction !== 'backwards') {
    throw new InvalidArgumentError('direction', `must be 'forwards' or 'backwards'`);
  }
  return {
    forwards: direction === 'forwards',
    fromVersion: positiveIntOption(options?.fromVersion, 'fromVersion', 1),
    toVersion: positiveIntOption(options?.toVersion, 'toVersion', Number.MAX_SAFE_INTEGER),
    maxCount: positiveIntOption(options?.maxCount, 'maxCount', Number.MAX_SAFE_INTEGER),
  };
}

/** Checked and defaulted global log read options. */
export function allReadRange(options: ReadAllOptions | undefined): {
  after: number;
  maxCount: number;
} {
  return {
    after: positiveIntOption(options?.after, 'after', 0, 0),
    maxCount: positiveIntOption(options?.maxCount, 'maxCount', 1000),
  };
}

/** Checked and defaulted `limit` for listings. */
export function listLimit(limit: unknown, fallback = 100): number {
  return positiveIntOption(limit, 'limit', fallback);
}

/** Parses stored JSON text; a broken row is reported with where it is. */
export function parseStoredJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new StorageError(`${where}: stored JSON is unreadable`, { cause: error });
  }
}
