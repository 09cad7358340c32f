/**
 * Compares two results files (say, two runs on the same machine), row by row and ratio by
 * ratio, to see whether a rerun agrees within noise:
 *
 *   node bench/compare.ts bench/results/a.json bench/results/b.json
 */
import { readFileSync } from 'node:fs';
import type { Result } from './lib.ts';
import { fmt, ratioRows, textTable } from './summary.ts';

const [a, b] = process.argv.slice(2);
if (!a || !b) {
  process.stderr.write('usage: compare.ts <results-a.json> <results-b.json>\n');
  process.exit(2);
}
const load = (path: string) => JSON.parse(readFileSync(path, 'utf8')) as Result[];
const first = load(a);
const second = load(b);
const key = (r: Result) => `${r.scenario}\u0000${r.impl}`;
const other = new Map(second.map((r) => [key(r), r]));
const change = (x: number, y: number) => `${y >= x ? '+' : ''}${(((y - x) / x) * 100).toFixed(0)}%`;

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
