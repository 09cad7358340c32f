/**
 * What the results say: Tidemark's ratio to each baseline of the same scenario (the median of
 * the per-pair ratios, with their spread), the project's performance targets, met or missed,
 * and whether two runs agree. Shared by the runner (printed), the report (docs/benchmarks.md)
 * and bench/compare.ts.
 */
import type { Result } from './lib.ts';
import {
  AGREEMENT,
  agrees,
  pairedRatio,
  relativeDifference,
  spreadLabel,
  type RatioStat,
} from './stats.ts';

export const isTidemark = (r: Result) => r.impl.startsWith('tidemark');
const measured = (r: Result | undefined): r is Result =>
  r !== undefined && !r.skipped && !r.error && r.opsPerSec > 0;

/** What a ratio divides: throughput (higher is better) or p99 latency (lower is better). */
export type RatioMetric = 'throughput' | 'p99';

export interface RatioEntry extends RatioStat {
  /** The implementation divided by (the baseline). */
  impl: string;
  metric: RatioMetric;
}

export interface RatioRow {
  scenario: string;
  /** The implementation whose figure is divided (Tidemark, or one mode of it). */
  of: string;
  metric: RatioMetric;
  /** Its throughput (or p99 in ms, for a p99 row). */
  tidemark: number;
  /** `of`'s figure divided by each baseline's, with the per-pair spread. */
  ratios: RatioEntry[];
}

/**
 * Ratios between modes of Tidemark itself, beside the Tidemark-to-baseline ones: the Orders
 * service with Kafka against the same service on PostgreSQL alone (issue 16), for POST
 * throughput and for the visibility p99 (there: Kafka's p99 divided by PostgreSQL's).
 */
const modeComparisons: { scenario: RegExp; of: RegExp; vs: RegExp; metric: RatioMetric }[] = [
  { scenario: /^http POST \/orders/, of: /with Kafka/, vs: /on PostgreSQL/, metric: 'throughput' },
  {
    scenario: /^http command-to-query visibility/,
    of: /with Kafka/,
    vs: /on PostgreSQL/,
    metric: 'p99',
  },
];

/** `a`'s figure divided by `b`'s, pair by pair when both ran in turns in the same scenario. */
export function ratioOf(a: Result, b: Result, metric: RatioMetric = 'throughput'): RatioStat {
  // Slices of different scenarios did not run next to each other: not pairs.
  const inTurns = a.scenario === b.scenario;
  if (metric === 'p99') {
    return pairedRatio(
      a.p99Ms,
      b.p99Ms,
      inTurns ? a.runsP99Ms : undefined,
      inTurns ? b.runsP99Ms : undefined,
    );
  }
  return pairedRatio(
    a.opsPerSec,
    b.opsPerSec,
    inTurns ? a.runs : undefined,
    inTurns ? b.runs : undefined,
  );
}

/**
 * One row per scenario that has a Tidemark result and at least one baseline, and one per mode
 * comparison measured (see `modeComparisons`).
 */
export function ratioRows(results: readonly Result[]): RatioRow[] {
  const rows: RatioRow[] = [];
  for (const scenario of [...new Set(results.map((r) => r.scenario))]) {
    const mine = results.filter((r) => r.scenario === scenario);
    const tidemark = mine.find((r) => isTidemark(r) && measured(r));
    if (tidemark) {
      const ratios = mine
        .filter((r) => !isTidemark(r) && measured(r))
        .map((r) => ({ impl: r.impl, metric: 'throughput' as const, ...ratioOf(tidemark, r) }));
      if (ratios.length > 0) {
        rows.push({
          scenario,
          of: tidemark.impl,
          metric: 'throughput',
          tidemark: tidemark.opsPerSec,
          ratios,
        });
      }
    }
    for (const c of modeComparisons.filter((m) => m.scenario.test(scenario))) {
      const of = mine.find((r) => c.of.test(r.impl) && measured(r));
      const vs = mine.find((r) => c.vs.test(r.impl) && measured(r));
      if (!of || !vs) continue;
      rows.push({
        scenario,
        of: of.impl,
        metric: c.metric,
        tidemark: c.metric === 'p99' ? of.p99Ms : of.opsPerSec,
        ratios: [{ impl: vs.impl, metric: c.metric, ...ratioOf(of, vs, c.metric) }],
      });
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
  // Judged on the median of the per-pair ratios when both ran in turns (same scenario).
  const stat = ratioOf(x, y);
  const spread = spreadLabel(stat);
  return {
    target,
    measured: `${stat.ratio.toFixed(2)}x (${spread ? `pairs ${spread}; ` : ''}${fmt(x.opsPerSec)} vs ${fmt(y.opsPerSec)}/s)`,
    met: stat.ratio >= atLeast,
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

/** A visibility p99 target, with the rate it was measured at (500/s, or half the capacity). */
function visibilityTarget(target: string, r: Result | undefined, atMostMs: number): TargetRow {
  if (!r) return { target, measured: 'not measured', met: undefined };
  const rate = r.offeredRate
    ? ` at ${fmt(r.offeredRate)}/s${r.offeredRate < 500 ? ' (half its capacity)' : ''}`
    : '';
  const rounds =
    r.runsP99Ms && r.runsP99Ms.length > 1
      ? `; rounds ${fmt(Math.min(...r.runsP99Ms))}–${fmt(Math.max(...r.runsP99Ms))} ms`
      : '';
  return { target, measured: `p99 ${fmt(r.p99Ms)} ms${rate}${rounds}`, met: r.p99Ms <= atMostMs };
}

export const fmt = (n: number) =>
  n >= 100 ? Math.round(n).toLocaleString('en-US') : n >= 10 ? n.toFixed(1) : n.toFixed(2);

const TM = /^tidemark/;

/** The targets of project issues 8 and 16, checked against one run's results. */
export function targetRows(results: readonly Result[]): TargetRow[] {
  const sqlite1 = /^sqlite append 1 event per call$/;
  const sqlite10 = /^sqlite append 10 events per call$/;
  const sqliteC = /^sqlite append, \d+ concurrent writers$/;
  const pg1 = /^postgres append 1 event per call$/;
  const catchUpSqlite = /^catch-up store->SQLite/;
  const catchUpPg = /^catch-up store->PostgreSQL/;
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
    visibilityTarget(
      'Command-to-query visibility p99 <= 25 ms embedded, at 500 commands/s (or half its capacity)',
      find(results, /visibility/, /embedded/),
      25,
    ),
    visibilityTarget(
      'Command-to-query visibility p99 <= 100 ms with Kafka, at 500 commands/s (or half its capacity)',
      find(results, /visibility/, /kafka/i),
      100,
    ),
  ];
  const service = results.filter(
    (r) => /^http /.test(r.scenario) && /embedded/.test(r.impl) && measured(r),
  );
  rows.push(
    valueTarget(
      'Service RSS <= 150 MB under load (embedded; the highest of its HTTP runs)',
      service.length > 0
        ? service.reduce((a, b) => (a.peakRssMb >= b.peakRssMb ? a : b))
        : undefined,
      (r) => r.peakRssMb,
      (v) => `peak ${fmt(v)} MB`,
      (v) => v <= 150,
    ),
  );
  // Issue 16 (performance, round 2).
  const post = /^http POST \/orders/;
  const loadSqlite = /^sqlite load \d+-event aggregate$/;
  const loadPg = /^postgres load \d+-event aggregate$/;
  rows.push(
    ratioTarget(
      results,
      'POST /orders with Kafka >= 0.8x the same service on PostgreSQL',
      [post, /with Kafka/],
      [post, /on PostgreSQL/],
      0.8,
    ),
    ...(['SQLite', 'PostgreSQL'] as const).map((kind) => {
      const projector = new RegExp(`^kafka projector, topic → ${kind} `);
      return ratioTarget(
        results,
        `Kafka-fed projector >= 0.8x the store-fed runner, into ${kind}`,
        [projector, TM],
        [projector, /^store-fed/],
        0.8,
      );
    }),
    ratioTarget(
      results,
      'Catch-up store->PostgreSQL >= 2x the raw per-event loop',
      [catchUpPg, TM],
      [catchUpPg, /^raw pg/],
      2,
    ),
    ratioTarget(
      results,
      'Load of a 1,000-event aggregate without snapshot >= 0.8x raw: SQLite',
      [loadSqlite, TM],
      [loadSqlite, /^raw/],
      0.8,
    ),
    ratioTarget(
      results,
      'Load of a 1,000-event aggregate without snapshot >= 0.8x raw: PostgreSQL',
      [loadPg, TM],
      [loadPg, /^raw/],
      0.8,
    ),
    valueTarget(
      'Service RSS <= 150 MB under the POST /orders test (compiled, embedded, about 2,000/s)',
      find(results, post, /embedded/),
      (r) => r.peakRssMb,
      (v) => `peak ${fmt(v)} MB`,
      (v) => v <= 150,
    ),
  );
  return rows;
}

/** One ratio in two runs (see {@link compareRatios}). */
export interface RatioAgreement {
  scenario: string;
  of: string;
  vs: string;
  metric: RatioMetric;
  a?: RatioStat;
  b?: RatioStat;
  /** (B - A) / A; undefined when one run lacks the ratio. */
  difference?: number;
  /** Within the tolerance; false also when one run lacks the ratio. */
  agrees: boolean;
}

/**
 * Every ratio of two runs side by side, and whether B's is within `tolerance` of A's (relative
 * to A's). A ratio that only one run has does not agree: one of them could not measure it.
 */
export function compareRatios(
  first: readonly Result[],
  second: readonly Result[],
  tolerance = AGREEMENT,
): { rows: RatioAgreement[]; allAgree: boolean } {
  const flat = (results: readonly Result[]) =>
    new Map(
      ratioRows(results).flatMap((row) =>
        row.ratios.map((r) => [
          [row.scenario, row.of, r.impl, row.metric].join('\u0000'),
          { scenario: row.scenario, of: row.of, vs: r.impl, metric: row.metric, stat: r },
        ]),
      ),
    );
  const inA = flat(first);
  const inB = flat(second);
  const rows: RatioAgreement[] = [];
  for (const key of new Set([...inA.keys(), ...inB.keys()])) {
    const x = inA.get(key);
    const y = inB.get(key);
    const { scenario, of, vs, metric } = (x ?? y)!;
    if (!x || !y) {
      rows.push({
        scenario,
        of,
        vs,
        metric,
        ...(x ? { a: x.stat } : {}),
        ...(y ? { b: y.stat } : {}),
        agrees: false,
      });
      continue;
    }
    rows.push({
      scenario,
      of,
      vs,
      metric,
      a: x.stat,
      b: y.stat,
      difference: relativeDifference(x.stat.ratio, y.stat.ratio),
      agrees: agrees(x.stat.ratio, y.stat.ratio, tolerance),
    });
  }
  return { rows, allAgree: rows.every((r) => r.agrees) };
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
