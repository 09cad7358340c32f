/**
 * The benchmark's arithmetic: ratios paired slice by slice (or round by round) with their range,
 * Kafka mode against PostgreSQL mode side by side, the targets judged on the paired median, and
 * `compare.ts --ratios` telling two runs that agree within 20% from two that do not.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { Result } from '../../bench/lib.ts';
import { pairedRatio, ratioRows, ratioText, targetRows } from '../../bench/summary.ts';

const row = (scenario: string, impl: string, runs: number[]): Result => ({
  scenario,
  impl,
  opsPerSec: runs.reduce((a, b) => a + b, 0) / runs.length,
  p50Ms: 1,
  p99Ms: 2,
  peakRssMb: 100,
  runs,
});

const dir = mkdtempSync(join(tmpdir(), 'tidemark-bench-ratios-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('bench ratios', () => {
  it('pairs slices in order: the median of per-pair ratios, and their range', () => {
    // One slow slice of the baseline (a burst of outside load) moves the plain ratio of the
    // totals, not the median of the pairs.
    const tidemark = row('s', 'tidemark', [100, 100, 100, 100, 10]);
    const raw = row('s', 'raw', [100, 125, 100, 80, 10]);
    const paired = pairedRatio(tidemark, raw);
    assert.equal(paired.pairs, 5);
    assert.equal(paired.ratio, 1);
    assert.equal(paired.min, 0.8);
    assert.equal(paired.max, 1.25);
    assert.equal(ratioText(paired), '1.00x (0.80 to 1.25 over 5 pairs)');
    // An even count: the mean of the two middle ratios.
    assert.equal(pairedRatio(row('s', 't', [2, 3, 4, 6]), row('s', 'r', [2, 2, 2, 2])).ratio, 1.75);
  });

  it('falls back to the ratio of the totals without matching runs', () => {
    const a = { ...row('s', 'tidemark', [1]), opsPerSec: 300 };
    const b = { ...row('s', 'raw', [1, 2]), opsPerSec: 200 };
    assert.deepEqual(pairedRatio(a, b), { ratio: 1.5, min: 1.5, max: 1.5, pairs: 1 });
    assert.equal(ratioText(pairedRatio(a, b)), '1.50x');
  });

  it('puts Kafka mode beside PostgreSQL mode, and judges the target on the paired median', () => {
    const post = 'http POST /orders (32 connections)';
    const results = [
      row(post, 'tidemark embedded (SQLite)', [3000, 3000, 3000]),
      row(post, 'tidemark on PostgreSQL', [1000, 2000, 1000]),
      row(post, 'tidemark with Kafka (PostgreSQL)', [900, 1000, 700]),
    ];
    const side = ratioRows(results).find((r) =>
      r.scenario.endsWith('Kafka mode against PostgreSQL mode'),
    );
    assert.ok(side, 'a side-by-side row');
    assert.equal(side.ratios[0]!.impl, 'tidemark on PostgreSQL');
    assert.equal(side.ratios[0]!.ratio, 0.7);
    const target = targetRows(results).find((t) =>
      t.target.startsWith('POST /orders in Kafka mode'),
    );
    assert.equal(target?.met, false);
    assert.match(target!.measured, /^0\.70x \(0\.50 to 0\.90 over 3 pairs\)/);
    const better = targetRows([
      results[1]!,
      row(post, 'tidemark with Kafka (PostgreSQL)', [850, 1700, 900]),
    ]).find((t) => t.target.startsWith('POST /orders in Kafka mode'));
    assert.equal(better?.met, true);
  });

  it('compare.ts --ratios: exit 0 when two runs agree within 20%, 1 when one ratio does not', () => {
    const write = (name: string, results: Result[]) => {
      const path = join(dir, name);
      writeFileSync(path, JSON.stringify(results));
      return path;
    };
    const a = write('a.json', [
      row('x', 'tidemark', [100, 100, 100]),
      row('x', 'raw', [100, 100, 100]),
    ]);
    const close = write('b.json', [
      row('x', 'tidemark', [115, 115, 115]),
      row('x', 'raw', [100, 100, 100]),
    ]);
    const far = write('c.json', [
      row('x', 'tidemark', [130, 130, 130]),
      row('x', 'raw', [100, 100, 100]),
    ]);
    const run = (x: string, y: string) =>
      spawnSync(process.execPath, ['bench/compare.ts', '--ratios', x, y], { encoding: 'utf8' });
    const agrees = run(a, close);
    assert.equal(agrees.status, 0, agrees.stdout + agrees.stderr);
    assert.match(agrees.stdout, /1 of 1 ratios agree within 20%/);
    const differs = run(a, far);
    assert.equal(differs.status, 1, differs.stdout + differs.stderr);
    assert.match(differs.stdout, /DIFFERS/);
    assert.match(differs.stdout, /0 of 1 ratios agree within 20%; the largest difference is 30%/);
  });
});
