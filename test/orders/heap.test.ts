/**
 * The Orders service's V8 heap setting (examples/orders/src/heap.ts): set unless the operator
 * chose a growth on Node's command line. (test/orders/process.test.ts checks that the running
 * service set it.)
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HEAP_GROWING_PERCENT, heapGrowingFlag } from '../../examples/orders/src/heap.ts';

describe('the Orders service heap setting', () => {
  it('caps the old generation growth at 1.5x when Node was given no growth of its own', () => {
    assert.equal(HEAP_GROWING_PERCENT, 50);
    assert.equal(heapGrowingFlag([]), '--heap-growing-percent=50');
    assert.equal(
      heapGrowingFlag(['--max-semi-space-size=4', '--conditions=tidemark-source']),
      '--heap-growing-percent=50',
    );
  });

  it("leaves the operator's own growth alone, in either spelling", () => {
    assert.equal(heapGrowingFlag(['--heap-growing-percent=100']), undefined);
    assert.equal(
      heapGrowingFlag(['--max-semi-space-size=4', '--heap_growing_percent=20']),
      undefined,
    );
  });
});
