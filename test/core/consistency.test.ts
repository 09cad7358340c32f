import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeConsistencyToken, encodeConsistencyToken, isTidemarkError } from 'tidemark';

describe('consistency tokens', () => {
  it('round-trip any stream id, and are plain visible ASCII (fit for an HTTP header)', () => {
    for (const streamId of ['order-1', 'order-ñ:日本/😀 x', 'a:b:c']) {
      const token = { position: 42, streamId, streamVersion: 7 };
      const text = encodeConsistencyToken(token);
      assert.match(text, /^[\x21-\x7e]+$/);
      assert.deepEqual(decodeConsistencyToken(text), token);
    }
  });

  it('refuses what is not a token', () => {
    for (const text of [
      '',
      'abc',
      '1:x:1:s',
      '1:1:1:',
      '2:1:1:s',
      '1:0:1:s',
      '1:1:1:%E0%A4%A',
      '1:99999999999999999:1:s',
    ]) {
      assert.throws(
        () => decodeConsistencyToken(text),
        (e) => isTidemarkError(e, 'invalid_consistency_token'),
        text,
      );
    }
  });
});
