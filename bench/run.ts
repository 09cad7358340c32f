/**
 * `npm run bench` (about 15 minutes) and `npm run bench -- --quick` (at most 3 minutes).
 * `--only <substring>` runs the scenarios whose name contains it.
 *
 * Writes bench/results/latest.json: an array of {scenario, impl, opsPerSec, p50Ms, p99Ms, peakRssMb}
 * (plus `unit`), and prints a table with Tidemark's ratio to each baseline of the same scenario.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Result } from './lib.ts';
import { httpEmbedded } from './scenarios/http.ts';
import { postgresAppend } from './scenarios/postgres-append.ts';
import { sqliteAppend } from './scenarios/sqlite-append.ts';

export interface BenchContext {
  quick: boolean;
  /** A scratch directory, removed afterwards. */
  dir: string;
}

const scenarios: { name: string; run: (ctx: BenchContext) => Promise<Result[]> }[] = [
  { name: 'sqlite-append', run: sqliteAppend },
  { name: 'postgres-append', run: postgresAppend },
  { name: 'http-embedded', run: httpEmbedded },
];

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const onlyIndex = args.indexOf('--only');
const only = onlyIndex >= 0 ? args[onlyIndex + 1] : undefined;

const dir = mkdtempSync(join(tmpdir(), 'tidemark-bench-'));
const results: Result[] = [];
try {
  for (const scenario of scenarios) {
    if (only && !scenario.name.includes(only)) continue;
    process.stderr.write(`running ${scenario.name}${quick ? ' (quick)' : ''}…\n`);
    results.push(...(await scenario.run({ quick, dir })));
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const outDir = new URL('./results/', import.meta.url).pathname;
mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);

const pad = (s: string, n: number) => s.padEnd(n);
const lines = [
  `${pad('scenario', 44)} ${pad('impl', 22)} ${'ops/s'.padStart(11)} ${'p50 ms'.padStart(9)} ${'p99 ms'.padStart(9)} ${'RSS MB'.padStart(7)}  ratio`,
];
for (const r of results) {
  const tidemark = results.find((t) => t.scenario === r.scenario && t.impl === 'tidemark');
  const ratio =
    tidemark && r.impl !== 'tidemark'
      ? `tidemark/this = ${(tidemark.opsPerSec / r.opsPerSec).toFixed(2)}x`
      : '';
  lines.push(
    `${pad(r.scenario, 44)} ${pad(r.impl, 22)} ${r.opsPerSec.toFixed(0).padStart(11)} ${r.p50Ms.toFixed(3).padStart(9)} ${r.p99Ms.toFixed(3).padStart(9)} ${r.peakRssMb.toFixed(0).padStart(7)}  ${ratio}`,
  );
}
console.log(lines.join('\n'));
