/**
 * What the results say: Tidemark's ratio to each baseline of the same scenario, and the
 * project's performance targets, met or missed. Shared by the runner (printed) and the report
 * (docs/benchmarks.md).
 */
import type { Result } from './lib.ts';

export const isTidemark = (r: Result) => r.impl.startsWith('tidemark');
const measured = (r: Result | undefined): r is Result =>
  r !== undefined && !r.skipped && !r.error && r.opsPerSec > 0;

export interface RatioRow {
  scenario: string;
  tidemark: number;
  /** `impl` → Tidemark's throughput divided by that implementation's. */
  ratios: { impl: string; ratio: number }[];
}

/** One row per scenario that has a Tidemark result and at least one baseline. */
export function ratioRows(results: readonly Result[]): RatioRow[] {
  const rows: RatioRow[] = [];
  for (const scenario of [...new Set(results.map((r) => r.scenario))]) {
    const mine = results.filter((r) => r.scenario === scenario);
    const tidemark = mine.find((r) => isTidemark(r) && measured(r));
    if (!tidemark) continue;
    const ratios = mine
      .filter((r) => !isTidemark(r) && measured(r))
      .map((r) => ({ impl: r.impl, ratio: tidemark.opsPerSec / r.opsPerSec }));
    if (ratios.length > 0) rows.push({ scenario, tidemark: tidemark.opsPerSec, ratios });
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
  const ratio = x.opsPerSec / y.opsPerSec;
  return {
    target,
    measured: `${ratio.toFixed(2)}x (${fmt(x.opsPerSec)} vs ${fmt(y.opsPerSec)}/s)`,
    met: ratio >= atLeast,
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

/** The targets of project issue 8, checked against one run's results. */
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
      'Command-to-query visibility p99 <= 100 ms with Kafka, at 500 commands/s',
      find(results, /visibility/, /kafka/i),
      (r) => r.p99Ms,
      (v) => `p99 ${fmt(v)} ms`,
      (v) => v <= 100,
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
