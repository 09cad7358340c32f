// The benchmark harness's turns (bench/lib.ts interleave): workloads run in this process take
// turns slice by slice like served ones, and a baseline that was skipped or failed is left out
// of the ratios. (test/infra/bench-ratios.test.ts covers the ratio arithmetic and compare.ts.)
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { interleave, type Result } from '../../bench/lib.ts';
import { pairedRatio, ratioRows } from '../../bench/summary.ts';

const row = (scenario: string, impl: string, opsPerSec: number, extra: Partial<Result> = {}) =>
  ({ scenario, impl, opsPerSec, p50Ms: 1, p99Ms: 2, peakRssMb: 50, ...extra }) as Result;

describe('ratioRows', () => {
  it('leaves out skipped and failed baselines', () => {
    const rows = ratioRows([
      row('s', 'tidemark', 90),
      row('s', 'emmett', 0, { skipped: 'Emmett disabled' }),
      row('s', 'raw', 0, { error: 'boom' }),
    ]);
    assert.deepEqual(rows, []);
  });
});

describe('interleave with in-process workloads', () => {
  it('runs them slice by slice in turns, pairs their slices and closes each once', async () => {
    const log: string[] = [];
    const workload = (name: string) => async () => ({
      op: (i: number) => {
        if (i % 10 === 0) log.push(`${name}${i}`);
      },
      close: () => {
        log.push(`close ${name}`);
      },
    });
    const [a, b] = await interleave(
      'in-process',
      [
        { impl: 'A', module: '', fn: '', args: null, local: workload('A') },
        { impl: 'B', module: '', fn: '', args: null, local: workload('B') },
      ],
      { unit: 'ops/s', ops: 40, slices: 4, warmup: 10 },
    );
    // Warm-up (ops 0-9) for each, then slices of 10 in turns: A B, B A, A B, B A.
    assert.deepEqual(log, [
      'A0',
      'B0',
      'A10',
      'B10',
      'B20',
      'A20',
      'A30',
      'B30',
      'B40',
      'A40',
      'close A',
      'close B',
    ]);
    assert.equal(a!.runs!.length, 4);
    assert.equal(b!.runs!.length, 4);
    assert.equal(pairedRatio(a!, b!).pairs, 4);
  });

  it('reports a workload that cannot be set up as failed, and runs the others', async () => {
    const [broken, fine] = await interleave(
      'in-process',
      [
        {
          impl: 'broken',
          module: '',
          fn: '',
          args: null,
          local: () => Promise.reject(new Error('no database')),
        },
        { impl: 'fine', module: '', fn: '', args: null, local: async () => ({ op: () => {} }) },
      ],
      { unit: 'ops/s', ops: 20, slices: 2 },
    );
    assert.equal(broken!.error, 'no database');
    assert.equal(fine!.runs!.length, 2);
  });
});
