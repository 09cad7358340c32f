/**
 * Messages: commands ask, events tell. Both are plain data, `{ type, data, metadata? }`, so they
 * serialise as they are and a `switch (message.type)` narrows them.
 */

/** Metadata that travels with a message. Known keys are typed; anything else is the user's. */
export interface MessageMetadata {
  /** Groups every message caused by one outside request. */
  correlationId?: string;
  /** The id of the message (command or event) that caused this one. */
  causationId?: string;
  /** W3C trace context, `00-<trace-id>-<span-id>-<flags>`. */
  traceparent?: string;
  tracestate?: string;
  /** Who caused the message: the authenticated subject of the request (a JWT's `sub`). */
  actor?: string;
  [key: string]: unknown;
}

/** An event as the domain sees it. */
export interface Event<Type extends string = string, Data = unknown> {
  readonly type: Type;
  readonly data: Data;
  readonly metadata?: MessageMetadata;
}

/** A command as the domain sees it. Time and ids reach `decide` in `data`, never from a clock. */
export interface Command<Type extends string = string, Data = unknown> {
  readonly type: Type;
  readonly data: Data;
  readonly metadata?: MessageMetadata;
}

/** An event on its way into the store. */
export interface NewEvent<E extends Event = Event> {
  readonly type: E['type'];
  readonly data: E['data'];
  readonly metadata?: MessageMetadata;
  /** A unique id; the store makes one (a UUID) when it is missing. */
  readonly eventId?: string;
}

/**
 * An event as stored: the domain event plus where and when it was recorded. `data` is already
 * upcast to the current schema; `schemaVersion` is the version it was stored with.
 */
export type RecordedEvent<E extends Event = Event> = E extends Event
  ? {
      readonly type: E['type'];
      readonly data: E['data'];
      readonly metadata: MessageMetadata;
      readonly eventId: string;
      readonly streamId: string;
      /** 1 for the first event of a stream, then 2, 3, … with no gaps. */
      readonly streamVersion: number;
      /** Position in the store's global log: strictly increasing in commit order. */
      readonly position: number;
      readonly schemaVersion: number;
      readonly recordedAt: Date;
    }
  : never;

/** The part of an event the store reads back before upcasting. */
export interface StoredEvent {
  readonly type: string;
  readonly data: unknown;
  readonly metadata: MessageMetadata;
  readonly eventId: string;
  readonly streamId: string;
  readonly streamVersion: number;
  readonly position: number;
  readonly schemaVersion: number;
  readonly recordedAt: Date;
}
