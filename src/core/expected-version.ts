import { InvalidArgumentError, WrongExpectedVersionError } from './errors.ts';

/** The stream must not exist yet (its version is 0). */
export const NO_STREAM = 'no_stream';
/** The stream must exist, at any version. */
export const STREAM_EXISTS = 'stream_exists';
/** No check: append whatever the stream's version. */
export const ANY = 'any';

/**
 * What an append expects of the stream: a named expectation, or the exact current version
 * (a non-negative integer; 0 is the same as {@link NO_STREAM}).
 */
export type ExpectedVersion = typeof NO_STREAM | typeof STREAM_EXISTS | typeof ANY | number;

/** Throws {@link InvalidArgumentError} unless `value` is an {@link ExpectedVersion}. */
export function assertExpectedVersion(value: unknown): asserts value is ExpectedVersion {
  if (value === NO_STREAM || value === STREAM_EXISTS || value === ANY) return;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return;
  throw new InvalidArgumentError(
    'expectedVersion',
    `expected '${NO_STREAM}', '${STREAM_EXISTS}', '${ANY}' or a non-negative integer, got ${describe(value)}`,
  );
}

/** Whether a stream at `actual` (0: no stream) satisfies `expected`. */
export function matchesExpectedVersion(expected: ExpectedVersion, actual: number): boolean {
  switch (expected) {
    case ANY:
      return true;
    case NO_STREAM:
      return actual === 0;
    case STREAM_EXISTS:
      return actual > 0;
    default:
      return expected === actual;
  }
}

/** Throws {@link WrongExpectedVersionError} unless the stream at `actual` satisfies `expected`. */
export function checkExpectedVersion(
  streamId: string,
  expected: ExpectedVersion,
  actual: number,
): void {
  if (!matchesExpectedVersion(expected, actual)) {
    throw new WrongExpectedVersionError(streamId, expected, actual);
  }
}

function describe(value: unknown): string {
  if (typeof value === 'string') return `'${value}'`;
  if (typeof value === 'bigint') return `${value}n`;
  if (value === null || typeof value !== 'object') return String(value);
  return Array.isArray(value) ? 'an array' : 'an object';
}
