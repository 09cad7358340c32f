/**
 * `npm run bench` (about 15 minutes) and `npm run bench -- --quick` (about 4 minutes).
 *
 *   --quick            fewer operations in more, shorter slices and rounds
 *   --only <text>      only the scenarios whose name contains <text> (repeatable, or a,b)
 *   --rounds <n>       rounds of whole-run scenarios (default 3, 4 with --quick), taken in
 *                      turns (A B, B A, …); each implementation's median round is kept
 *   --out <file>       write the results there (and <file>.meta.json beside it) instead of
 *                      bench/results/latest.json
 *   --no-emmett        leave out the Emmett peer (otherwise installed on first use)
 *   --list             print the scenario names and exit
 *
 * PostgreSQL and Kafka are found as bench/machine.ts says (`npm run services:up` is enough). A
 * scenario whose service is missing is reported as skipped, in the table and in the results.
 *
 * Writes bench/results/latest.json: an array of {scenario, impl, opsPerSec, p50Ms, p99Ms,
 * peakRssMb} (plus unit, notes, runs, runsP99Ms, offeredRate, ratios, skipped, error), and
 * bench/results/latest.meta.json (the machine, versions, options). Prints the results, Tidemark's
 * ratios to each baseline (the median of the per-pair ratios, and their range), and the
 * targets. Progress goes to stderr. `node bench/report.ts` turns the results into
 * docs/benchmarks.md and its chart.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { emmettDir, emmettMissing, failedResult, round, Skip, type Result } from './lib.ts';
import { findServices, machine } from './machine.ts';
import { catchUp } from './scenarios/catch-up.ts';
import { emmettPostgresAppend } from './scenarios/emmett-postgres-append.ts';
import { httpEmbedded } from './scenarios/http.ts';
import { kafkaScenario } from './scenarios/kafka.ts';
import { loadAggregate } from './scenarios/load.ts';
import { postgresAppend } from './scenarios/postgres-append.ts';
import { sqliteAppend } from './scenarios/sqlite-append.ts';
import { spreadLabel } from './stats.ts';
import { fmt, ratioRows, targetRows, textTable } from './summary.ts';

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
    out: '',
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--quick') options.quick = true;
    else if (arg === '--no-emmett') options.emmett = false;
    else if (arg === '--list') options.list = true;
    else if (arg === '--only' && argv[i + 1]) options.only.push(...argv[++i]!.split(','));
    else if (arg === '--rounds' && Number(argv[i + 1]) >= 1) options.rounds = Number(argv[++i]);
    else if (arg === '--out' && argv[i + 1]?.endsWith('.json')) options.out = argv[++i]!;
    else {
      process.stderr.write(`unknown argument '${arg}'; see the top of bench/run.ts\n`);
      process.exit(2);
    }
  }
  // Quick: several short rounds rather than one long one, so that each ratio is the median of
  // several pairs taken in turns (one round let a quick run's ratios move by up to 2x).
  options.rounds ||= options.quick ? 4 : 3;
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

// Each ratio, with its pairs and spread, on the row whose figure is divided.
const rows = ratioRows(results);
for (const row of rows) {
  const subject = results.find((r) => r.scenario === row.scenario && r.impl === row.of)!;
  subject.ratios = [
    ...(subject.ratios ?? []),
    ...row.ratios.map(({ impl, metric, ratio, pairs, min, max, relativeIqr }) => ({
      vs: impl,
      metric,
      ratio: round(ratio),
      pairs: pairs.map((p) => round(p)),
      min: round(min),
      max: round(max),
      relativeIqr: round(relativeIqr),
    })),
  ];
}

const outFile = resolve(
  options.out || join(new URL('./results/', import.meta.url).pathname, 'latest.json'),
);
mkdirSync(dirname(outFile), { recursive: true });
writeFileSync(outFile, `${JSON.stringify(results, null, 2)}\n`);
const meta = {
  ...machine(services, startedAt),
  loadAverageAtEnd: loadavg().map((l) => Math.round(l * 100) / 100),
  durationSeconds: Math.round((performance.now() - started) / 1000),
  quick: options.quick,
  rounds: options.rounds,
  only: options.only,
};
writeFileSync(outFile.replace(/\.json$/, '.meta.json'), `${JSON.stringify(meta, null, 2)}\n`);

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
        (r.runs && r.runs.length > 1 ? r.runs.map(fmt).join(' / ') : ''),
    ]),
    [2, 3, 4, 5],
  ),
);
console.log(
  `\nTidemark's throughput divided by each baseline's (same scenario, same run): the median of the\nper-pair ratios (slices or rounds taken in turns), their range, and their IQR / median:\n`,
);
console.log(
  textTable(
    ['scenario', 'of', 'value', 'vs', 'ratio', 'pairs min–max', 'rel. IQR', 'pairs'],
    rows.flatMap((row) =>
      row.ratios.map((r) => [
        row.scenario,
        row.of,
        row.metric === 'p99' ? `p99 ${fmt(row.tidemark)} ms` : fmt(row.tidemark),
        r.impl,
        `${row.metric === 'p99' ? 'p99 ' : ''}${r.ratio.toFixed(2)}x`,
        spreadLabel(r) || 'unpaired',
        r.pairs.length > 0 ? `${(r.relativeIqr * 100).toFixed(0)}%` : '',
        String(r.pairs.length),
      ]),
    ),
    [2, 4, 6, 7],
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
process.stderr.write(`done in ${elapsed()}; results in ${outFile}\n`);
if (failures > 0) process.exitCode = 1;
