/**
 * Compares two results files (say, two runs on the same machine), row by row and ratio by
 * ratio, to see whether a rerun agrees within noise:
 *
 *   node bench/compare.ts bench/results/a.json bench/results/b.json
 *   node bench/compare.ts --ratios a.json b.json
 *   node bench/compare.ts --markdown A-label B-label a.json b.json
 *
 * `--ratios` is the check that two runs agree: every ratio (the median of its per-pair ratios)
 * in both runs with its per-pair range, B's difference relative to A, and `DIFFERS` beside those
 * more than 20% apart (or measured in one run only). Exit code 0 when all agree, 1 when not.
 * `--markdown` prints one Markdown table instead (throughput, p99 and peak RSS of both runs, and
 * B's change), for a page such as docs/benchmarks.md.
 */
import { readFileSync } from 'node:fs';
import type { Result } from './lib.ts';
import { AGREEMENT, spreadLabel, type RatioStat } from './stats.ts';
import { compareRatios, fmt, ratioRows, textTable } from './summary.ts';

const args = process.argv.slice(2);
const ratiosOnly = args[0] === '--ratios';
if (ratiosOnly) args.shift();
const markdown = args[0] === '--markdown';
const [labelA, labelB] = markdown ? args.splice(0, 3).slice(1) : ['A', 'B'];
const [a, b] = args;
if (!a || !b) {
  process.stderr.write(
    'usage: compare.ts [--ratios | --markdown <label-a> <label-b>] <results-a.json> <results-b.json>\n',
  );
  process.exit(2);
}
const load = (path: string) => JSON.parse(readFileSync(path, 'utf8')) as Result[];
const first = load(a);
const second = load(b);
const key = (r: Result) => `${r.scenario}\u0000${r.impl}`;
const other = new Map(second.map((r) => [key(r), r]));
const change = (x: number, y: number) => `${y >= x ? '+' : ''}${(((y - x) / x) * 100).toFixed(0)}%`;

if (ratiosOnly) {
  const { rows, allAgree } = compareRatios(first, second);
  const show = (stat: RatioStat | undefined) =>
    stat ? `${stat.ratio.toFixed(2)}x${stat.pairs.length ? ` (${spreadLabel(stat)})` : ''}` : '-';
  console.log(
    textTable(
      ['scenario', 'of', 'vs', 'ratio A (pairs)', 'ratio B (pairs)', 'B vs A', ''],
      rows.map((r) => [
        r.scenario,
        r.of,
        `${r.vs}${r.metric === 'p99' ? ' (p99)' : ''}`,
        show(r.a),
        show(r.b),
        r.difference === undefined ? '-' : change(1, 1 + r.difference),
        r.agrees ? 'ok' : r.difference === undefined ? 'DIFFERS (one run only)' : 'DIFFERS',
      ]),
      [3, 4, 5],
    ),
  );
  const differ = rows.filter((r) => !r.agrees).length;
  console.log(
    `\n${rows.length - differ} of ${rows.length} ratios agree within ${AGREEMENT * 100}%${differ ? `; ${differ} differ` : ''}`,
  );
  process.exit(allAgree ? 0 : 1);
}

if (markdown) {
  const rows = first.filter(
    (r) => other.has(key(r)) && r.opsPerSec > 0 && other.get(key(r))!.opsPerSec > 0,
  );
  const lines = [
    `| scenario | impl | ops/s ${labelA} | ops/s ${labelB} | change | p99 ms ${labelA} | p99 ms ${labelB} | peak RSS MB ${labelA} | peak RSS MB ${labelB} |`,
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map((r) => {
      const s = other.get(key(r))!;
      return `| ${r.scenario} | ${r.impl} | ${fmt(r.opsPerSec)} | ${fmt(s.opsPerSec)} | ${change(r.opsPerSec, s.opsPerSec)} | ${fmt(r.p99Ms)} | ${fmt(s.p99Ms)} | ${Math.round(r.peakRssMb)} | ${Math.round(s.peakRssMb)} |`;
    }),
  ];
  console.log(lines.join('\n'));
  process.exit(0);
}

console.log(
  textTable(
    ['scenario', 'impl', 'ops/s A', 'ops/s B', 'B vs A'],
    first
      .filter((r) => other.has(key(r)) && r.opsPerSec > 0 && other.get(key(r))!.opsPerSec > 0)
      .map((r) => {
        const s = other.get(key(r))!;
        return [
          r.scenario,
          r.impl,
          fmt(r.opsPerSec),
          fmt(s.opsPerSec),
          change(r.opsPerSec, s.opsPerSec),
        ];
      }),
    [2, 3, 4],
  ),
);
const ratiosB = new Map(
  ratioRows(second).flatMap((row) =>
    row.ratios.map((r) => [`${row.scenario}\u0000${r.impl}`, r.ratio]),
  ),
);
console.log('\nTidemark ratios:\n');
console.log(
  textTable(
    ['scenario', 'vs', 'ratio A', 'ratio B', 'B vs A'],
    ratioRows(first).flatMap((row) =>
      row.ratios
        .filter((r) => ratiosB.has(`${row.scenario}\u0000${r.impl}`))
        .map((r) => {
          const rb = ratiosB.get(`${row.scenario}\u0000${r.impl}`)!;
          return [
            row.scenario,
            r.impl,
            `${r.ratio.toFixed(2)}x`,
            `${rb.toFixed(2)}x`,
            change(r.ratio, rb),
          ];
        }),
    ),
    [2, 3, 4],
  ),
);
