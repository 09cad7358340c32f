// The benchmark's arithmetic: ratios taken pair by pair from slices or rounds run in turns, their
// median and spread, and the verdict of `bench/compare.ts --ratios` on whether two runs agree.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { roundOrder, type Result } from '../../bench/lib.ts';
import {
  agrees,
  median,
  pairedRatio,
  quantile,
  relativeDifference,
  spreadLabel,
} from '../../bench/stats.ts';
import { compareRatios, ratioRows, targetRows } from '../../bench/summary.ts';

const row = (scenario: string, impl: string, opsPerSec: number, extra: Partial<Result> = {}) =>
  ({ scenario, impl, opsPerSec, p50Ms: 1, p99Ms: 2, peakRssMb: 50, ...extra }) as Result;

describe('median and quantile', () => {
  it('takes the middle value, or the mean of the two middle ones, whatever the order', () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 3, 2]), 2.5);
    assert.ok(Number.isNaN(median([])));
  });

  it('interpolates quartiles between ranks', () => {
    assert.equal(quantile([1, 2, 3, 4, 5], 0.25), 2);
    assert.equal(quantile([1, 2, 3, 4], 0.75), 3.25);
    assert.equal(quantile([7], 0.25), 7);
  });
});

describe('pairedRatio', () => {
  it('divides slice k by slice k and reports the median pair, its range and relative IQR', () => {
    // Totals would say 0.7 (7 / 10); the pairs say the ratio is 0.5 in most slices.
    const stat = pairedRatio(7, 10, [5, 5, 5, 20], [10, 10, 10, 10]);
    assert.deepEqual(stat.pairs, [0.5, 0.5, 0.5, 2]);
    assert.equal(stat.ratio, 0.5);
    assert.equal(stat.min, 0.5);
    assert.equal(stat.max, 2);
    // Quartiles 0.5 and 0.875: (0.875 - 0.5) / 0.5.
    assert.equal(stat.relativeIqr, 0.75);
    assert.equal(spreadLabel(stat), '0.50–2.00x');
  });

  it('falls back to the ratio of the totals when the sides were not run in turns', () => {
    for (const [a, b] of [
      [undefined, undefined],
      [
        [1, 2],
        [1, 2, 3],
      ],
      [[4], [2]],
    ] as const) {
      const stat = pairedRatio(6, 4, a, b);
      assert.equal(stat.ratio, 1.5);
      assert.deepEqual(stat.pairs, []);
      assert.equal(spreadLabel(stat), '');
    }
  });

  it('leaves out a pair with a zero side rather than dividing by it', () => {
    const stat = pairedRatio(1, 1, [2, 0, 3], [1, 1, 1]);
    assert.deepEqual(stat.pairs, [2, 3]);
    assert.equal(stat.ratio, 2.5);
  });
});

describe('agreement of two runs', () => {
  it('is relative to the first run and holds up to 20% exactly', () => {
    assert.ok(Math.abs(relativeDifference(1, 1.2) - 0.2) < 1e-12);
    assert.equal(agrees(1, 1.2), true);
    assert.equal(agrees(1, 0.8), true);
    assert.equal(agrees(1, 1.21), false);
    assert.equal(agrees(1, 0.79), false);
    assert.equal(agrees(1, 1.3, 0.5), true);
  });
});

describe('ratio rows', () => {
  it('pairs within a scenario, takes the median, and adds Kafka against PostgreSQL for HTTP', () => {
    const results = [
      row('s', 'raw', 100, { runs: [100, 100, 100] }),
      row('s', 'tidemark', 90, { runs: [80, 90, 200] }),
      row('http POST /orders (32 connections)', 'tidemark embedded (SQLite)', 2000),
      row('http POST /orders (32 connections)', 'tidemark on PostgreSQL', 800, {
        runs: [800, 1000],
      }),
      row('http POST /orders (32 connections)', 'tidemark with Kafka (PostgreSQL)', 600, {
        runs: [600, 900],
      }),
      row('http command-to-query visibility', 'tidemark on PostgreSQL', 400, {
        p99Ms: 20,
        runsP99Ms: [20, 40],
      }),
      row('http command-to-query visibility', 'tidemark with Kafka (PostgreSQL)', 300, {
        p99Ms: 80,
        runsP99Ms: [80, 80],
      }),
    ];
    const rows = ratioRows(results);
    assert.equal(rows.length, 3);
    assert.equal(rows[0]!.ratios[0]!.ratio, 0.9);
    assert.deepEqual(rows[0]!.ratios[0]!.pairs, [0.8, 0.9, 2]);
    const post = rows[1]!;
    assert.equal(post.of, 'tidemark with Kafka (PostgreSQL)');
    assert.equal(post.ratios[0]!.impl, 'tidemark on PostgreSQL');
    assert.equal(post.ratios[0]!.ratio, (0.75 + 0.9) / 2);
    const visibility = rows[2]!;
    assert.equal(visibility.metric, 'p99');
    assert.equal(visibility.tidemark, 80);
    assert.deepEqual(visibility.ratios[0]!.pairs, [4, 2]);
  });

  it('judges a ratio target on the paired median, and never pairs slices of two scenarios', () => {
    const results = [
      row('sqlite append 1 event per call', 'raw better-sqlite3', 1000, { runs: [1000, 1000] }),
      row('sqlite append 1 event per call', 'tidemark', 900, { runs: [700, 1000] }),
      row('sqlite append, 64 concurrent writers', 'tidemark', 4000, { runs: [1, 1] }),
    ];
    const targets = targetRows(results);
    const single = targets.find((t) => t.target.startsWith('SQLite single append'))!;
    assert.equal(single.met, true); // median of 0.7 and 1.0 is 0.85, the totals' 0.9 aside
    assert.match(single.measured, /^0\.85x \(pairs 0\.70–1\.00x;/);
    const group = targets.find((t) => t.target.startsWith('SQLite concurrent'))!;
    assert.match(group.measured, /^4\.00x \(4,000 vs/); // totals: the runs are not pairs
    const kafka = targets.find((t) => t.target.startsWith('POST /orders with Kafka'))!;
    assert.equal(kafka.met, undefined);
  });
});

describe('compareRatios and compare.ts --ratios', () => {
  const runA = [
    row('a', 'raw', 100, { runs: [100, 100] }),
    row('a', 'tidemark', 100, { runs: [100, 100] }),
    row('b', 'raw', 100),
    row('b', 'tidemark', 50),
  ];
  const agreeing = [
    row('a', 'raw', 100, { runs: [100, 100] }),
    row('a', 'tidemark', 100, { runs: [110, 118] }),
    row('b', 'raw', 100),
    row('b', 'tidemark', 45),
  ];
  const differing = [...agreeing.slice(0, 2), row('b', 'raw', 100), row('b', 'tidemark', 80)];

  it('says which ratios differ by more than 20%, and that a ratio in one run only differs', () => {
    const same = compareRatios(runA, agreeing);
    assert.equal(same.allAgree, true);
    assert.ok(Math.abs(same.rows[0]!.difference! - 0.14) < 1e-9);
    const apart = compareRatios(runA, differing);
    assert.equal(apart.allAgree, false);
    assert.deepEqual(
      apart.rows.map((r) => r.agrees),
      [true, false],
    );
    const missing = compareRatios(runA, agreeing.slice(0, 2));
    assert.equal(missing.allAgree, false);
    assert.equal(missing.rows[1]!.difference, undefined);
  });

  const dir = mkdtempSync(join(tmpdir(), 'tidemark-bench-test-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, results: Result[]) => {
    const path = join(dir, name);
    writeFileSync(path, JSON.stringify(results));
    return path;
  };
  const compare = fileURLToPath(new URL('../../bench/compare.ts', import.meta.url));

  it('exits 0 when every ratio agrees and 1 when one does not, naming it', () => {
    const a = file('a.json', runA);
    const ok = spawnSync(process.execPath, [compare, '--ratios', a, file('b.json', agreeing)], {
      encoding: 'utf8',
    });
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /2 of 2 ratios agree within 20%/);
    const bad = spawnSync(process.execPath, [compare, '--ratios', a, file('c.json', differing)], {
      encoding: 'utf8',
    });
    assert.equal(bad.status, 1, bad.stderr);
    assert.match(bad.stdout, /^b\s.*\+60%\s+DIFFERS$/m);
    assert.match(bad.stdout, /1 of 2 ratios agree within 20%; 1 differ/);
  });
});

describe('roundOrder', () => {
  it('runs the cases as given, then reversed, so each pair meets in both orders', () => {
    assert.deepEqual(
      [0, 1, 2, 3].map((r) => roundOrder(['A', 'B'], r).join('')),
      ['AB', 'BA', 'AB', 'BA'],
    );
    assert.deepEqual(roundOrder(['E', 'P', 'K'], 1), ['K', 'P', 'E']);
  });
});
