/**
 * Every error Tidemark throws is a {@link TidemarkError} with a stable `code`.
 *
 * Codes are part of the public contract: they are listed in docs/errors.md, a test keeps the
 * classes, the codes and the docs in agreement, and callers recognise errors by code or type
 * guard, never by message text. How a code maps to an HTTP status lives in `tidemark/http`.
 */

/** Options shared by every Tidemark error. */
export interface TidemarkErrorOptions {
  cause?: unknown;
}

/** The base class: a stable `code`, whether retrying can help, and typed fields per subclass. */
export abstract class TidemarkError extends Error {
  /** A stable, documented, snake_case identifier of what went wrong. */
  abstract readonly code: string;
  /** True when the same call may succeed if tried again (a conflict, an unreachable database). */
  abstract readonly retryable: boolean;

  constructor(message: string, options: TidemarkErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
  }

  /**
   * A plain-object view for logs and parked records: name, code, message, retryable, then the
   * subclass's own typed fields (those that are set). No stack, no cause chain.
   */
  toJSON(): Record<string, unknown> {
    const fields = Object.entries(this).filter(([, value]) => value !== undefined);
    return {
      name: this.name,
      code: this.code,
      message: this.message,
      retryable: this.retryable,
      ...Object.fromEntries(fields),
    };
  }
}

/** Narrow an unknown value to a Tidemark error, optionally of one code. */
export function isTidemarkError<C extends ErrorCode>(
  value: unknown,
  code?: C,
): value is TidemarkError & { code: C } {
  return value instanceof TidemarkError && (code === undefined || value.code === code);
}

/** An argument is malformed: empty stream id, unknown expected version, bad option. */
export class InvalidArgumentError extends TidemarkError {
  readonly code = 'invalid_argument';
  readonly retryable = false;
  /** The argument (or path into it) that is wrong. */
  readonly argument: string;
  constructor(argument: string, message: string, options?: TidemarkErrorOptions) {
    super(`${argument}: ${message}`, options);
    this.argument = argument;
  }
}

/** Event data or metadata cannot be turned into JSON (a BigInt, a cycle, undefined, a function). */
export class SerializationError extends TidemarkError {
  readonly code = 'serialization_failed';
  readonly retryable = false;
  readonly what: string;
  constructor(what: string, message: string, options?: TidemarkErrorOptions) {
    super(`${what} cannot be serialised: ${message}`, options);
    this.what = what;
  }
}

/** The stream is not at the version the caller expected. */
export class WrongExpectedVersionError extends TidemarkError {
  readonly code = 'wrong_expected_version';
  readonly retryable = true;
  readonly streamId: string;
  /** What the caller expected, as given (a number or a named expectation). */
  readonly expected: string | number;
  /** The stream's version when the append was checked (0: no stream). */
  readonly actual: number;
  constructor(
    streamId: string,
    expected: string | number,
    actual: number,
    options?: TidemarkErrorOptions,
  ) {
    super(`stream '${streamId}' is at version ${actual}, expected ${String(expected)}`, options);
    this.streamId = streamId;
    this.expected = expected;
    this.actual = actual;
  }
}

/** An appended event carries an id the store already holds. Nothing of that append is written. */
export class DuplicateEventIdError extends TidemarkError {
  readonly code = 'duplicate_event_id';
  readonly retryable = false;
  readonly eventId: string;
  constructor(eventId: string, options?: TidemarkErrorOptions) {
    super(`an event with id '${eventId}' is already stored`, options);
    this.eventId = eventId;
  }
}

/** A command addressed a stream that has no events, and its handler requires one. */
export class StreamNotFoundError extends TidemarkError {
  readonly code = 'stream_not_found';
  readonly retryable = false;
  readonly streamId: string;
  constructor(streamId: string, options?: TidemarkErrorOptions) {
    super(`stream '${streamId}' does not exist`, options);
    this.streamId = streamId;
  }
}

/**
 * The stream was moved to the archive (docs/retention.md): it stays readable, but it takes no
 * more events. A command on it is refused before it is decided, and an append that races with
 * the archiving is refused by the store, atomically; nothing is written either way.
 */
export class StreamArchivedError extends TidemarkError {
  readonly code = 'stream_archived';
  readonly retryable = false;
  readonly streamId: string;
  constructor(streamId: string, options?: TidemarkErrorOptions) {
    super(`stream '${streamId}' is archived: it can be read but takes no more events`, options);
    this.streamId = streamId;
  }
  override toJSON() {
    return { ...super.toJSON(), streamId: this.streamId };
  }
}

/**
 * A business rule refused a command. Thrown by `decide`; `rule` is the domain's own stable
 * code (for example `order_not_open`), which an HTTP answer carries as its `code`.
 */
export class BusinessRuleError extends TidemarkError {
  readonly code = 'business_rule_violated';
  readonly retryable = false;
  readonly rule: string;
  readonly details?: Record<string, unknown>;
  constructor(rule: string, message: string, details?: Record<string, unknown>) {
    super(message);
    this.rule = rule;
    this.details = details;
  }
}

/** A stored event has a schema version no upcaster chain leads from, or an upcaster threw. */
export class UpcastError extends TidemarkError {
  readonly code = 'upcast_failed';
  readonly retryable = false;
  readonly eventType: string;
  readonly schemaVersion: number;
  constructor(
    eventType: string,
    schemaVersion: number,
    message: string,
    options?: TidemarkErrorOptions,
  ) {
    super(`${eventType} v${schemaVersion}: ${message}`, options);
    this.eventType = eventType;
    this.schemaVersion = schemaVersion;
  }
}

/** A component was used after `close()`. */
export class ClosedError extends TidemarkError {
  readonly code = 'closed';
  readonly retryable = false;
  readonly component: string;
  constructor(component: string, options?: TidemarkErrorOptions) {
    super(`${component} is closed`, options);
    this.component = component;
  }
}

/** The database or broker cannot be reached (or stopped answering); retrying later may work. */
export class UnavailableError extends TidemarkError {
  readonly code = 'unavailable';
  readonly retryable = true;
  readonly component: string;
  constructor(component: string, message: string, options?: TidemarkErrorOptions) {
    super(`${component} unavailable: ${message}`, options);
    this.component = component;
  }
}

/** Stored data is not what this version of Tidemark expects (a newer schema, a broken row). */
export class StorageError extends TidemarkError {
  readonly code = 'storage_error';
  readonly retryable = false;
  constructor(message: string, options?: TidemarkErrorOptions) {
    super(message, options);
  }
}

/** A consistency token could not be read. */
export class InvalidConsistencyTokenError extends TidemarkError {
  readonly code = 'invalid_consistency_token';
  readonly retryable = false;
  readonly token: string;
  constructor(token: string, options?: TidemarkErrorOptions) {
    super(`'${token}' is not a consistency token`, options);
    this.token = token;
  }
}

/** A projection's handler failed; the runner retries, then parks the event. */
export class ProjectionError extends TidemarkError {
  readonly code = 'projection_failed';
  readonly retryable = true;
  readonly projection: string;
  readonly eventId: string;
  constructor(
    projection: string,
    eventId: string,
    message: string,
    options?: TidemarkErrorOptions,
  ) {
    super(`projection '${projection}' failed on event ${eventId}: ${message}`, options);
    this.projection = projection;
    this.eventId = eventId;
  }
}

/** New personal data names a subject whose data was forgotten; nothing was written. */
export class SubjectForgottenError extends TidemarkError {
  readonly code = 'subject_forgotten';
  readonly retryable = false;
  /** The data subject (a customer id, say). */
  readonly subject: string;
  constructor(subject: string, message?: string, options?: TidemarkErrorOptions) {
    super(message ?? `the personal data of subject '${subject}' was forgotten`, options);
    this.subject = subject;
  }
}

/** Forgetting names a subject the key store has never held personal data for. */
export class UnknownSubjectError extends TidemarkError {
  readonly code = 'unknown_subject';
  readonly retryable = false;
  readonly subject: string;
  constructor(subject: string, options?: TidemarkErrorOptions) {
    super(`no personal data is held for subject '${subject}'`, options);
    this.subject = subject;
  }
}

/**
 * Why a request's credentials were refused. `missing`: no bearer token; `malformed`: not a JWT;
 * `expired`, `not_yet_valid`: outside its validity (after the clock tolerance); `bad_signature`:
 * the signature does not verify or no known key matches; `algorithm_not_allowed`: signed with an
 * algorithm the verifier does not accept; `claim_mismatch`: issuer, audience, subject or another
 * required claim is wrong or absent.
 */
export type AuthenticationFailure =
  | 'missing'
  | 'malformed'
  | 'expired'
  | 'not_yet_valid'
  | 'bad_signature'
  | 'algorithm_not_allowed'
  | 'claim_mismatch';

/** A request's bearer token is missing or cannot be trusted. Nothing was done. */
export class AuthenticationError extends TidemarkError {
  readonly code = 'unauthenticated';
  readonly retryable = false;
  readonly reason: AuthenticationFailure;
  constructor(reason: AuthenticationFailure, message: string, options?: TidemarkErrorOptions) {
    super(message, options);
    this.reason = reason;
  }
}

/** The authenticated subject has none of the roles the action needs. Nothing was done. */
export class AuthorizationError extends TidemarkError {
  readonly code = 'forbidden';
  readonly retryable = false;
  /** The token's subject. */
  readonly subject: string;
  /** The roles of which the action needs one. */
  readonly required: readonly string[];
  constructor(subject: string, required: readonly string[], options?: TidemarkErrorOptions) {
    const roles = Array.isArray(required) ? required : [String(required)];
    super(`'${subject}' needs one of the roles ${roles.join(', ')}`, options);
    this.subject = subject;
    this.required = roles;
  }
}

/** Every error class, for documentation checks and exhaustive mappings. */
export const errorClasses = [
  InvalidArgumentError,
  SerializationError,
  WrongExpectedVersionError,
  DuplicateEventIdError,
  StreamNotFoundError,
  StreamArchivedError,
  BusinessRuleError,
  UpcastError,
  ClosedError,
  UnavailableError,
  StorageError,
  InvalidConsistencyTokenError,
  ProjectionError,
  SubjectForgottenError,
  UnknownSubjectError,
  AuthenticationError,
  AuthorizationError,
] as const;

/** The union of every stable error code. */
export type ErrorCode = InstanceType<(typeof errorClasses)[number]>['code'];
