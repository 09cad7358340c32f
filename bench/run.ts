/**
 * `npm run bench` (about 15 minutes) and `npm run bench -- --quick` (about 3 minutes).
 *
 *   --quick            less work per slice and round, as many rounds
 *   --only <text>      only the scenarios whose name contains <text> (repeatable, or a,b)
 *   --rounds <n>       rounds per scenario (default 3); each implementation's median round is
 *                      kept, the order of implementations rotates, and ratios are the median of
 *                      the per-round (or per-slice) ratios, with their range
 *   --out <name>       write bench/results/<name>.json (and .meta.json) instead of latest
 *   --no-emmett        leave out the Emmett peer (otherwise installed on first use)
 *   --list             print the scenario names and exit
 *
 * PostgreSQL and Kafka are found as bench/machine.ts says (`npm run services:up` is enough). A
 * scenario whose service is missing is reported as skipped, in the table and in the results.
 *
 * Writes bench/results/latest.json: an array of {scenario, impl, opsPerSec, p50Ms, p99Ms,
 * peakRssMb} (plus unit, notes, runs, skipped, error), and bench/results/latest.meta.json (the
 * machine, versions, options). Prints the results, Tidemark's ratios to each baseline, and the
 * targets. Progress goes to stderr. `node bench/report.ts` turns the results into
 * docs/benchmarks.md and its chart.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { emmettDir, emmettMissing, failedResult, Skip, type Result } from './lib.ts';
import { findServices, machine } from './machine.ts';
import { catchUp } from './scenarios/catch-up.ts';
import { emmettPostgresAppend } from './scenarios/emmett-postgres-append.ts';
import { httpEmbedded } from './scenarios/http.ts';
import { kafkaScenario } from './scenarios/kafka.ts';
import { loadAggregate } from './scenarios/load.ts';
import { postgresAppend } from './scenarios/postgres-append.ts';
import { sqliteAppend } from './scenarios/sqlite-append.ts';
import { fmt, ratioRows, ratioText, targetRows, textTable } from './summary.ts';

export interface BenchContext {
  quick: boolean;
  /** A scratch directory, removed afterwards. */
  dir: string;
  /** Rounds per comparison (see `alternate` in lib.ts). */
  rounds: number;
}

type Service = 'postgres' | 'kafka';

const scenarios: {
  name: string;
  run: (ctx: BenchContext) => Promise<Result[]>;
  /** Services without which the scenario cannot run at all (it is then reported as skipped). */
  requires?: Service[];
}[] = [
  { name: 'sqlite-append', run: sqliteAppend },
  { name: 'postgres-append', run: postgresAppend, requires: ['postgres'] },
  { name: 'emmett-postgres-append', run: emmettPostgresAppend, requires: ['postgres'] },
  { name: 'load', run: loadAggregate },
  { name: 'catch-up', run: catchUp },
  { name: 'http-embedded', run: httpEmbedded },
  { name: 'kafka', run: kafkaScenario, requires: ['kafka'] },
];

function parseArgs(argv: string[]) {
  const options = {
    quick: false,
    only: [] as string[],
    rounds: 0,
    emmett: true,
    list: false,
    out: 'latest',
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--quick') options.quick = true;
    else if (arg === '--no-emmett') options.emmett = false;
    else if (arg === '--list') options.list = true;
    else if (arg === '--only' && argv[i + 1]) options.only.push(...argv[++i]!.split(','));
    else if (arg === '--rounds' && Number(argv[i + 1]) >= 1) options.rounds = Number(argv[++i]);
    else if (arg === '--out' && /^[\w.-]+$/.test(argv[i + 1] ?? '')) options.out = argv[++i]!;
    else {
      process.stderr.write(`unknown argument '${arg}'; see the top of bench/run.ts\n`);
      process.exit(2);
    }
  }
  // Quick runs as many rounds as full ones, each shorter: one round has no spread to show, and
  // a single slice of bad luck decided a quick run's ratios (they moved up to 2x between runs).
  options.rounds ||= 3;
  return options;
}

const options = parseArgs(process.argv.slice(2));
if (options.list) {
  for (const s of scenarios) console.log(s.name);
  process.exit(0);
}
const selected = scenarios.filter(
  (s) => options.only.length === 0 || options.only.some((o) => s.name.includes(o)),
);
if (selected.length === 0) {
  process.stderr.write(`no scenario matches --only ${options.only.join(',')}\n`);
  process.exit(2);
}

const started = performance.now();
const startedAt = { at: new Date(), load: loadavg() };
const elapsed = () => `${((performance.now() - started) / 1000).toFixed(0)}s`;
const services = await findServices();
for (const [what, missing] of [
  ['PostgreSQL', services.postgresMissing],
  ['Kafka', services.kafkaMissing],
] as const) {
  process.stderr.write(missing ? `! ${missing}\n` : `${what}: found\n`);
}

if (!options.emmett) process.env.TIDEMARK_BENCH_EMMETT = '0';
else if (emmettMissing()) {
  process.stderr.write('installing the Emmett peer into bench/emmett (first run only)…\n');
  const install = spawnSync(process.execPath, [join(emmettDir, 'install.mjs')], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (install.status !== 0) process.stderr.write('! Emmett install failed: its rows are skipped\n');
}

const dir = mkdtempSync(join(tmpdir(), 'tidemark-bench-'));
const ctx: BenchContext = { quick: options.quick, dir, rounds: options.rounds };
const results: Result[] = [];
let failures = 0;
try {
  for (const scenario of selected) {
    const missing = (scenario.requires ?? [])
      .map((s) => (s === 'postgres' ? services.postgresMissing : services.kafkaMissing))
      .filter((m): m is string => m !== undefined);
    if (missing.length > 0) {
      process.stderr.write(`skipping ${scenario.name}: ${missing.join('; ')}\n`);
      results.push(failedResult(scenario.name, '*', new Skip(missing.join('; '))));
      continue;
    }
    process.stderr.write(
      `[${elapsed()}] ${scenario.name}${options.quick ? ' (quick)' : ''}, load ${loadavg()[0]!.toFixed(1)}…\n`,
    );
    try {
      results.push(...(await scenario.run(ctx)));
    } catch (error) {
      const skipped = error instanceof Skip;
      if (!skipped) failures++;
      process.stderr.write(
        `${skipped ? 'skipped' : 'FAILED'} ${scenario.name}: ${(error as Error).stack ?? String(error)}\n`,
      );
      results.push(failedResult(scenario.name, '*', error));
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
failures += results.filter((r) => r.error).length;

const outDir = new URL('./results/', import.meta.url).pathname;
mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, `${options.out}.json`), `${JSON.stringify(results, null, 2)}\n`);
const meta = {
  ...machine(services, startedAt),
  loadAverageAtEnd: loadavg().map((l) => Math.round(l * 100) / 100),
  durationSeconds: Math.round((performance.now() - started) / 1000),
  quick: options.quick,
  rounds: options.rounds,
  only: options.only,
};
writeFileSync(join(outDir, `${options.out}.meta.json`), `${JSON.stringify(meta, null, 2)}\n`);

const ms = (n: number) => (n === 0 ? '-' : n.toFixed(n < 10 ? 2 : 1));
console.log(
  textTable(
    ['scenario', 'impl', 'ops/s', 'p50 ms', 'p99 ms', 'RSS MB', 'rounds / note'],
    results.map((r) => [
      r.scenario,
      r.impl,
      r.skipped ? 'skipped' : r.error ? 'FAILED' : fmt(r.opsPerSec),
      ms(r.p50Ms),
      ms(r.p99Ms),
      r.peakRssMb ? r.peakRssMb.toFixed(0) : '-',
      r.skipped ??
        r.error?.split('\n')[0] ??
        (r.runs && r.runs.length > 1 ? r.runs.map(fmt).join(' / ') : (r.notes ?? '')),
    ]),
    [2, 3, 4, 5],
  ),
);
console.log(
  `\nTidemark's throughput divided by each baseline's (same scenario, same run; the median of the` +
    `\nper-pair ratios of slices or rounds run side by side, and their range):\n`,
);
console.log(
  textTable(
    ['scenario', 'tidemark', 'ratios'],
    ratioRows(results).map((row) => [
      row.scenario,
      fmt(row.tidemark),
      row.ratios.map((r) => `${ratioText(r)} ${r.impl}`).join(', '),
    ]),
    [1],
  ),
);
console.log('\nTargets:\n');
console.log(
  textTable(
    ['target', 'measured', ''],
    targetRows(results).map((t) => [
      t.target,
      t.measured,
      t.met === undefined ? '' : t.met ? 'met' : 'MISSED',
    ]),
  ),
);
process.stderr.write(`done in ${elapsed()}; results in bench/results/${options.out}.json\n`);
if (failures > 0) process.exitCode = 1;
