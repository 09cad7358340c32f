/**
 * What the results say: Tidemark's ratio to each baseline of the same scenario, and the
 * project's performance targets, met or missed. Shared by the runner (printed) and the report
 * (docs/benchmarks.md).
 */
import type { Result } from './lib.ts';

export const isTidemark = (r: Result) => r.impl.startsWith('tidemark');
const measured = (r: Result | undefined): r is Result =>
  r !== undefined && !r.skipped && !r.error && r.opsPerSec > 0;

/**
 * x's throughput over y's, paired in time: slice or round i of x ran next to slice or round i
 * of y (the runner rotates their order), so each pair met the same load on the machine. The
 * ratio is the median of the per-pair ratios, and `min`/`max` are their range: how noisy it was.
 * Without matching `runs` (one round), the plain ratio of the totals, with no range.
 */
export interface PairedRatio {
  ratio: number;
  min: number;
  max: number;
  /** How many pairs the ratio is the median of (1: no pairing). */
  pairs: number;
}

export function pairedRatio(x: Result, y: Result): PairedRatio {
  const a = x.runs;
  const b = y.runs;
  if (!a || !b || a.length !== b.length || a.length < 2) {
    const ratio = x.opsPerSec / y.opsPerSec;
    return { ratio, min: ratio, max: ratio, pairs: 1 };
  }
  const ratios = a.map((v, i) => v / b[i]!).sort((p, q) => p - q);
  const middle = ratios.length >> 1;
  const ratio =
    ratios.length % 2 === 1 ? ratios[middle]! : (ratios[middle - 1]! + ratios[middle]!) / 2;
  return { ratio, min: ratios[0]!, max: ratios.at(-1)!, pairs: ratios.length };
}

/** `0.85x (0.80 to 0.91 over 6 pairs)`, or `0.85x` without pairs. */
export function ratioText(r: PairedRatio): string {
  return r.pairs > 1
    ? `${r.ratio.toFixed(2)}x (${r.min.toFixed(2)} to ${r.max.toFixed(2)} over ${r.pairs} pairs)`
    : `${r.ratio.toFixed(2)}x`;
}

export interface RatioRow {
  scenario: string;
  tidemark: number;
  /** `impl` → Tidemark's throughput divided by that implementation's, paired (pairedRatio). */
  ratios: ({ impl: string } & PairedRatio)[];
}

/**
 * Tidemark against Tidemark: two ways to run the same service, compared in one row (the first
 * divided by the second).
 */
const SIDE_BY_SIDE = [
  {
    scenario: /^http POST \/orders/,
    a: /with Kafka/,
    b: /on PostgreSQL/,
    label: ': Kafka mode against PostgreSQL mode',
  },
];

/**
 * One row per scenario that has a Tidemark result and at least one baseline, and one per
 * side-by-side pair of Tidemark's own modes.
 */
export function ratioRows(results: readonly Result[]): RatioRow[] {
  const rows: RatioRow[] = [];
  for (const scenario of [...new Set(results.map((r) => r.scenario))]) {
    const mine = results.filter((r) => r.scenario === scenario);
    // One row per way Tidemark ran (the first under the scenario's name), against every baseline.
    const tidemarks = mine.filter((r) => isTidemark(r) && measured(r));
    for (const [i, tidemark] of tidemarks.entries()) {
      const ratios = mine
        .filter((r) => !isTidemark(r) && measured(r))
        .map((r) => ({ impl: r.impl, ...pairedRatio(tidemark, r) }));
      if (ratios.length > 0) {
        rows.push({
          scenario: i === 0 ? scenario : `${scenario} (${tidemark.impl})`,
          tidemark: tidemark.opsPerSec,
          ratios,
        });
      }
    }
    for (const side of SIDE_BY_SIDE) {
      if (!side.scenario.test(scenario)) continue;
      const a = mine.find((r) => side.a.test(r.impl) && measured(r));
      const b = mine.find((r) => side.b.test(r.impl) && measured(r));
      if (a && b) {
        rows.push({
          scenario: `${scenario}${side.label}`,
          tidemark: a.opsPerSec,
          ratios: [{ impl: b.impl, ...pairedRatio(a, b) }],
        });
      }
    }
  }
  return rows;
}

export interface TargetRow {
  target: string;
  measured: string;
  /** undefined: not measured in this run. */
  met: boolean | undefined;
}

const find = (results: readonly Result[], scenario: RegExp, impl: RegExp) =>
  results.find((r) => scenario.test(r.scenario) && impl.test(r.impl) && measured(r));

function ratioTarget(
  results: readonly Result[],
  target: string,
  a: [RegExp, RegExp],
  b: [RegExp, RegExp],
  atLeast: number,
): TargetRow {
  const x = find(results, ...a);
  const y = find(results, ...b);
  if (!x || !y) return { target, measured: 'not measured', met: undefined };
  const paired = pairedRatio(x, y);
  return {
    target,
    measured: `${ratioText(paired)}; ${fmt(x.opsPerSec)} vs ${fmt(y.opsPerSec)}/s`,
    met: paired.ratio >= atLeast,
  };
}

function valueTarget(
  target: string,
  r: Result | undefined,
  pick: (r: Result) => number,
  label: (v: number) => string,
  ok: (v: number) => boolean,
): TargetRow {
  if (!r) return { target, measured: 'not measured', met: undefined };
  const v = pick(r);
  return { target, measured: label(v), met: ok(v) };
}

export const fmt = (n: number) =>
  n >= 100 ? Math.round(n).toLocaleString('en-US') : n >= 10 ? n.toFixed(1) : n.toFixed(2);

const TM = /^tidemark/;
const httpPost = /^http POST \/orders/;

/** `, at 250 commands/s` when a visibility run went slower than 500/s (see http.ts). */
function visibilityRate(r: Result | undefined): string {
  const rate = r?.notes?.match(/at (\d+) commands\/s/)?.[1];
  return rate && rate !== '500' ? `, at ${rate} commands/s` : '';
}

/** The targets of project issues 8 and 16, checked against one run's results. */
export function targetRows(results: readonly Result[]): TargetRow[] {
  const sqlite1 = /^sqlite append 1 event per call$/;
  const sqlite10 = /^sqlite append 10 events per call$/;
  const sqliteC = /^sqlite append, \d+ concurrent writers$/;
  const pg1 = /^postgres append 1 event per call$/;
  const catchUpSqlite = /^catch-up store->SQLite/;
  const rows: TargetRow[] = [
    ratioTarget(
      results,
      'SQLite single append >= 0.8x raw better-sqlite3',
      [sqlite1, TM],
      [sqlite1, /^raw/],
      0.8,
    ),
    ratioTarget(
      results,
      'SQLite concurrent appends >= 3x the raw single-append rate (group commit)',
      [sqliteC, TM],
      [sqlite1, /^raw/],
      3,
    ),
    ratioTarget(
      results,
      'SQLite appends >= 3x Emmett: 1 per call',
      [sqlite1, TM],
      [sqlite1, /^emmett/],
      3,
    ),
    ratioTarget(
      results,
      'SQLite appends >= 3x Emmett: 10 per call',
      [sqlite10, TM],
      [sqlite10, /^emmett/],
      3,
    ),
    ratioTarget(
      results,
      'SQLite appends >= 3x Emmett: concurrent',
      [sqliteC, TM],
      [sqliteC, /^emmett/],
      3,
    ),
    ratioTarget(
      results,
      'PostgreSQL single append >= 0.8x raw pg (same checks)',
      [pg1, TM],
      [pg1, /^raw pg transaction/],
      0.8,
    ),
    ratioTarget(results, 'PostgreSQL single append >= 2x Emmett', [pg1, TM], [pg1, /^emmett/], 2),
    valueTarget(
      'Catch-up store->SQLite >= 50,000 events/s',
      find(results, catchUpSqlite, TM),
      (r) => r.opsPerSec,
      (v) => `${fmt(v)} events/s`,
      (v) => v >= 50_000,
    ),
    ratioTarget(
      results,
      'Catch-up store->SQLite >= 8x Emmett',
      [catchUpSqlite, TM],
      [catchUpSqlite, /^emmett/],
      8,
    ),
    ratioTarget(
      results,
      'Relay >= 0.5x a raw producer',
      [/relay/, TM],
      [/relay/, /^raw producer, transactional/],
      0.5,
    ),
    valueTarget(
      'Command-to-query visibility p99 <= 25 ms embedded, at 500 commands/s',
      find(results, /visibility/, /embedded/),
      (r) => r.p99Ms,
      (v) => `p99 ${fmt(v)} ms`,
      (v) => v <= 25,
    ),
    valueTarget(
      'Command-to-query visibility p99 <= 100 ms with Kafka, at 500 commands/s (or half its capacity)',
      find(results, /visibility/, /kafka/i),
      (r) => r.p99Ms,
      (v) => `p99 ${fmt(v)} ms${visibilityRate(find(results, /visibility/, /kafka/i))}`,
      (v) => v <= 100,
    ),
    ratioTarget(
      results,
      'POST /orders in Kafka mode >= 0.8x the same service on PostgreSQL alone',
      [httpPost, /with Kafka/],
      [httpPost, /on PostgreSQL/],
      0.8,
    ),
    ratioTarget(
      results,
      'Kafka-fed projector >= 0.8x the store-fed runner: into PostgreSQL',
      [/^kafka projector, topic → PostgreSQL/, TM],
      [/^kafka projector, topic → PostgreSQL/, /^store-fed/],
      0.8,
    ),
    ratioTarget(
      results,
      'Kafka-fed projector >= 0.8x the store-fed runner: into SQLite',
      [/^kafka projector, topic → SQLite/, TM],
      [/^kafka projector, topic → SQLite/, /^store-fed/],
      0.8,
    ),
    ratioTarget(
      results,
      'Catch-up store->PostgreSQL >= 2x the raw per-event loop (plain projection, deferWrites)',
      [/^catch-up store->PostgreSQL/, /^tidemark, deferWrites$/],
      [/^catch-up store->PostgreSQL/, /^raw/],
      2,
    ),
    ratioTarget(
      results,
      'Loading a 1000-event aggregate without a snapshot >= 0.8x raw: SQLite',
      [/^sqlite load 1000-event aggregate$/, TM],
      [/^sqlite load 1000-event aggregate$/, /^raw/],
      0.8,
    ),
    ratioTarget(
      results,
      'Loading a 1000-event aggregate without a snapshot >= 0.8x raw: PostgreSQL',
      [/^postgres load 1000-event aggregate$/, TM],
      [/^postgres load 1000-event aggregate$/, /^raw/],
      0.8,
    ),
  ];
  const service = results.filter(
    (r) => /^http /.test(r.scenario) && /embedded/.test(r.impl) && measured(r),
  );
  rows.push(
    valueTarget(
      'Service RSS <= 150 MB under load (compiled, embedded; the highest of its HTTP runs)',
      service.length > 0
        ? service.reduce((a, b) => (a.peakRssMb >= b.peakRssMb ? a : b))
        : undefined,
      (r) => r.peakRssMb,
      (v) => `peak ${fmt(v)} MB`,
      (v) => v <= 150,
    ),
  );
  return rows;
}

/** Plain-text table with aligned columns. */
export function textTable(header: string[], rows: string[][], right: number[] = []): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (right.includes(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}
