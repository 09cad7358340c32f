// The benchmark's arithmetic and its check (bench/summary.ts, bench/compare.ts, bench/lib.ts):
// ratios taken pair by pair from slices or rounds run in turns, their median and range, the
// targets judged on them, the verdict of `compare.ts --ratios` on whether two runs agree, and
// in-process workloads taking turns slice by slice.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { interleave, type Result } from '../../bench/lib.ts';
import { pairedRatio, ratioRows, ratioText, targetRows } from '../../bench/summary.ts';

const row = (scenario: string, impl: string, opsPerSec: number, extra: Partial<Result> = {}) =>
  ({ scenario, impl, opsPerSec, p50Ms: 1, p99Ms: 2, peakRssMb: 50, ...extra }) as Result;

describe('pairedRatio', () => {
  it('divides slice i by slice i and reports the median pair and the range', () => {
    // The totals would say 0.7; three of four pairs say 0.5, and one slice of bad luck says 2.
    const r = pairedRatio(
      row('s', 'tidemark', 7, { runs: [5, 5, 5, 20] }),
      row('s', 'raw', 10, { runs: [10, 10, 10, 10] }),
    );
    assert.deepEqual(r, { ratio: 0.5, min: 0.5, max: 2, pairs: 4 });
    assert.equal(ratioText(r), '0.50x (0.50 to 2.00 over 4 pairs)');
  });

  it('takes the mean of the two middle pairs for an even count', () => {
    const r = pairedRatio(
      row('s', 'tidemark', 1, { runs: [1, 2, 3, 4] }),
      row('s', 'raw', 1, { runs: [1, 1, 1, 1] }),
    );
    assert.equal(r.ratio, 2.5);
  });

  it('falls back to the ratio of the totals, with no range, when there are no pairs', () => {
    for (const [a, b] of [
      [undefined, undefined],
      [
        [1, 2],
        [1, 2, 3],
      ],
      [[4], [2]],
    ] as const) {
      const r = pairedRatio(
        row('s', 'tidemark', 6, a ? { runs: [...a] } : {}),
        row('s', 'raw', 4, b ? { runs: [...b] } : {}),
      );
      assert.deepEqual(r, { ratio: 1.5, min: 1.5, max: 1.5, pairs: 1 });
      assert.equal(ratioText(r), '1.50x');
    }
  });
});

describe('ratioRows', () => {
  it('pairs Tidemark with each baseline, and Kafka mode with PostgreSQL mode for HTTP POST', () => {
    const post = 'http POST /orders (32 connections)';
    const rows = ratioRows([
      row('s', 'raw', 100, { runs: [100, 100, 100] }),
      row('s', 'tidemark', 90, { runs: [80, 90, 200] }),
      row(post, 'tidemark embedded (SQLite)', 2000, { runs: [2000, 2000] }),
      row(post, 'tidemark on PostgreSQL', 800, { runs: [800, 1000] }),
      row(post, 'tidemark with Kafka (PostgreSQL)', 600, { runs: [600, 900] }),
    ]);
    assert.deepEqual(
      rows.map((r) => [r.scenario, r.ratios.map((x) => [x.impl, x.ratio, x.pairs])]),
      [
        ['s', [['raw', 0.9, 3]]],
        [`${post}: Kafka mode against PostgreSQL mode`, [['tidemark on PostgreSQL', 0.825, 2]]],
      ],
    );
  });

  it('leaves out skipped and failed baselines', () => {
    const rows = ratioRows([
      row('s', 'tidemark', 90),
      row('s', 'emmett', 0, { skipped: 'Emmett disabled' }),
      row('s', 'raw', 0, { error: 'boom' }),
    ]);
    assert.deepEqual(rows, []);
  });
});

describe('targetRows', () => {
  it('judges a ratio target on the paired median and shows the range', () => {
    const targets = targetRows([
      row('sqlite append 1 event per call', 'raw better-sqlite3', 1000, { runs: [1000, 1000] }),
      // Totals 0.9 would pass either way; the median of 0.7 and 0.8 is 0.75, which misses.
      row('sqlite append 1 event per call', 'tidemark', 900, { runs: [700, 800] }),
    ]);
    const single = targets.find((t) => t.target.startsWith('SQLite single append'))!;
    assert.equal(single.met, false);
    assert.match(single.measured, /^0\.75x \(0\.70 to 0\.80 over 2 pairs\)/);
    const kafka = targets.find((t) => t.target.startsWith('POST /orders in Kafka mode'))!;
    assert.deepEqual([kafka.measured, kafka.met], ['not measured', undefined]);
  });
});

describe('compare.ts --ratios', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tidemark-bench-test-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, results: Result[]) => {
    const path = join(dir, name);
    writeFileSync(path, JSON.stringify(results));
    return path;
  };
  const compare = fileURLToPath(new URL('../../bench/compare.ts', import.meta.url));
  const run = (a: string, b: string) =>
    spawnSync(process.execPath, [compare, '--ratios', a, b], { encoding: 'utf8' });
  const first = file('a.json', [
    row('a', 'raw', 100, { runs: [100, 100] }),
    row('a', 'tidemark', 100, { runs: [100, 100] }),
    row('b', 'raw', 100),
    row('b', 'tidemark', 50),
  ]);

  it('exits 0 when every ratio is within 20% of the other run, either way round', () => {
    const second = file('b.json', [
      row('a', 'raw', 100, { runs: [100, 100] }),
      row('a', 'tidemark', 100, { runs: [115, 120] }), // 1.175x: 17.5% above
      row('b', 'raw', 100),
      row('b', 'tidemark', 42), // 0.42x: 0.50 is 19% above it
    ]);
    const ok = run(first, second);
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /2 of 2 ratios agree within 20%/);
  });

  it('exits 1 and names the ratio that moved more than 20%', () => {
    const second = file('c.json', [
      row('a', 'raw', 100, { runs: [100, 100] }),
      row('a', 'tidemark', 100, { runs: [100, 100] }),
      row('b', 'raw', 100),
      row('b', 'tidemark', 41), // 0.50 is 22% above 0.41
    ]);
    const bad = run(first, second);
    assert.equal(bad.status, 1, bad.stderr);
    assert.match(bad.stdout, /^b\s+raw\s.*DIFFERS$/m);
    assert.match(bad.stdout, /^a\s+raw\s.*agrees$/m);
    assert.match(bad.stdout, /1 of 2 ratios agree within 20%; the largest difference is 22%/);
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
