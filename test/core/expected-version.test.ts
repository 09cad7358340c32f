import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ANY,
  NO_STREAM,
  STREAM_EXISTS,
  assertExpectedVersion,
  isTidemarkError,
  matchesExpectedVersion,
} from 'tidemark';

describe('expected versions', () => {
  it('match as named', () => {
    const table: [unknown, number, boolean][] = [
      [NO_STREAM, 0, true],
      [NO_STREAM, 1, false],
      [STREAM_EXISTS, 0, false],
      [STREAM_EXISTS, 3, true],
      [ANY, 0, true],
      [ANY, 9, true],
      [0, 0, true],
      [4, 4, true],
      [4, 5, false],
    ];
    for (const [expected, actual, result] of table) {
      assertExpectedVersion(expected);
      assert.equal(
        matchesExpectedVersion(expected, actual),
        result,
        `${String(expected)} vs ${actual}`,
      );
    }
  });

  it('refuse anything else', () => {
    for (const value of [-1, 1.5, NaN, Infinity, '3', 'no-stream', null, undefined, 3n, {}]) {
      assert.throws(
        () => assertExpectedVersion(value),
        (e) => isTidemarkError(e, 'invalid_argument'),
      );
    }
  });
});
