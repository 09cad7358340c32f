/**
 * Compares two results files (say, two runs on the same machine), row by row and ratio by
 * ratio, to see whether a rerun agrees within noise:
 *
 *   node bench/compare.ts bench/results/a.json bench/results/b.json
 *   node bench/compare.ts --ratios a.json b.json
 *   node bench/compare.ts --markdown A-label B-label a.json b.json
 *
 * `--ratios` prints only the ratios (Tidemark's to each baseline, paired medians) of both runs
 * and whether they agree: within 20% of each other (the larger over the smaller). It exits 1
 * when one does not.
 * `--markdown` prints one Markdown table instead (throughput, p99 and peak RSS of both runs, and
 * B's change), for a page such as docs/benchmarks.md.
 */
import { readFileSync } from 'node:fs';
import type { Result } from './lib.ts';
import { fmt, ratioRows, textTable, type PairedRatio } from './summary.ts';

const args = process.argv.slice(2);
const ratiosOnly = args[0] === '--ratios';
if (ratiosOnly) args.shift();
const markdown = args[0] === '--markdown';
const [labelA, labelB] = markdown ? args.splice(0, 3).slice(1) : ['A', 'B'];
const [a, b] = args;
if (!a || !b) {
  process.stderr.write(
    'usage: compare.ts [--markdown <label-a> <label-b>] <results-a.json> <results-b.json>\n',
  );
  process.exit(2);
}
const load = (path: string) => JSON.parse(readFileSync(path, 'utf8')) as Result[];
const first = load(a);
const second = load(b);
const key = (r: Result) => `${r.scenario}\u0000${r.impl}`;
const other = new Map(second.map((r) => [key(r), r]));
const change = (x: number, y: number) => `${y >= x ? '+' : ''}${(((y - x) / x) * 100).toFixed(0)}%`;

/** Two runs agree on a ratio when the larger is within this factor of the smaller. */
const AGREE = 1.2;

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

if (!ratiosOnly) {
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
}
const ratiosB = new Map(
  ratioRows(second).flatMap((row) =>
    row.ratios.map((r) => [`${row.scenario}\u0000${r.impl}`, r] as const),
  ),
);
let disagree = 0;
const spread = (r: PairedRatio) => (r.pairs > 1 ? `${r.min.toFixed(2)}-${r.max.toFixed(2)}` : '-');
const rows = ratioRows(first).flatMap((row) =>
  row.ratios
    .filter((r) => ratiosB.has(`${row.scenario}\u0000${r.impl}`))
    .map((r) => {
      const rb = ratiosB.get(`${row.scenario}\u0000${r.impl}`)!;
      const factor = Math.max(r.ratio, rb.ratio) / Math.min(r.ratio, rb.ratio);
      if (factor > AGREE) disagree++;
      return [
        row.scenario,
        r.impl,
        `${r.ratio.toFixed(2)}x`,
        spread(r),
        `${rb.ratio.toFixed(2)}x`,
        spread(rb),
        change(r.ratio, rb.ratio),
        factor > AGREE ? 'DIFFERS' : 'agrees',
      ];
    }),
);
console.log('\nTidemark ratios (paired medians, and the range of the pairs):\n');
console.log(
  textTable(
    [
      'scenario',
      'vs',
      'ratio A',
      'range A',
      'ratio B',
      'range B',
      'B vs A',
      `within ${Math.round((AGREE - 1) * 100)}%`,
    ],
    rows,
    [2, 3, 4, 5, 6],
  ),
);
const worst = rows.length
  ? Math.max(
      ...ratioRows(first).flatMap((row) =>
        row.ratios
          .filter((r) => ratiosB.has(`${row.scenario}\u0000${r.impl}`))
          .map((r) => {
            const rb = ratiosB.get(`${row.scenario}\u0000${r.impl}`)!.ratio;
            return Math.max(r.ratio, rb) / Math.min(r.ratio, rb);
          }),
      ),
    )
  : 1;
console.log(
  `\n${rows.length - disagree} of ${rows.length} ratios agree within ${Math.round((AGREE - 1) * 100)}%; the largest difference is ${((worst - 1) * 100).toFixed(0)}%.`,
);
if (ratiosOnly && disagree > 0) process.exitCode = 1;
