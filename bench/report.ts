/**
 * Turns a results file into the benchmark page:
 *
 *   node bench/report.ts [results.json]
 *
 * Reads bench/results/latest.json (or the given file) and its `.meta.json` beside it; writes
 * docs/benchmarks.svg (Tidemark's throughput as a multiple of each baseline's, log scale) and
 * rewrites the generated part of docs/benchmarks.md, between its `generated` markers; the rest
 * of the page is prose kept by hand.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Result } from './lib.ts';
import { root } from './lib.ts';
import { fmt, ratioRows, targetRows } from './summary.ts';

const START = '<!-- generated: results (bench/report.ts) -->';
const END = '<!-- end of generated results -->';

interface Meta {
  date: string;
  cpu: string;
  cores: number;
  memoryGb: number;
  os: string;
  node: string;
  loadAverageAtStart: number[];
  loadAverageAtEnd: number[];
  durationSeconds: number;
  quick: boolean;
  rounds: number;
  versions: Record<string, string | undefined>;
}

const escapeXml = (s: string) =>
  s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');

/**
 * A horizontal bar per (scenario, baseline): Tidemark's ratio on a log2 scale, from the 1x line;
 * each scenario's name on a line of its own above its bars.
 */
export function ratioChart(results: readonly Result[], title: string): string {
  const groups = ratioRows(results);
  const lines: ({ kind: 'title'; text: string } | { kind: 'bar'; impl: string; ratio: number })[] =
    groups.flatMap((g) => [
      { kind: 'title' as const, text: g.scenario },
      ...g.ratios.map((r) => ({ kind: 'bar' as const, impl: r.impl, ratio: r.ratio })),
    ]);
  const width = 900;
  const left = 250;
  const right = 70;
  const top = 60;
  const rowHeight = 19;
  const height = top + lines.length * rowHeight + 40;
  const ratios = groups.flatMap((g) => g.ratios.map((r) => r.ratio));
  const minExp = Math.floor(Math.log2(Math.min(0.25, ...ratios)));
  const maxExp = Math.ceil(Math.log2(Math.max(4, ...ratios)));
  const x = (ratio: number) =>
    left + ((Math.log2(ratio) - minExp) / (maxExp - minExp)) * (width - left - right);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="12" y="22" font-size="15" font-weight="600">${escapeXml(title)}</text>`,
    `<text x="12" y="40" fill="#555">Tidemark's throughput as a multiple of each baseline's, same scenario, same run. Log scale; right of 1x: Tidemark is faster.</text>`,
  ];
  const bottom = height - 30;
  for (let e = minExp; e <= maxExp; e++) {
    const ratio = 2 ** e;
    const px = x(ratio).toFixed(1);
    parts.push(
      `<line x1="${px}" y1="${top - 6}" x2="${px}" y2="${bottom}" stroke="${e === 0 ? '#333' : '#e2e2e2'}" stroke-width="${e === 0 ? 1.5 : 1}"/>`,
      `<text x="${px}" y="${bottom + 16}" text-anchor="middle" fill="#555">${ratio >= 1 ? ratio : `1/${1 / ratio}`}x</text>`,
    );
  }
  lines.forEach((line, i) => {
    const y = top + i * rowHeight;
    if (line.kind === 'title') {
      parts.push(`<text x="12" y="${y + 14}" font-weight="600">${escapeXml(line.text)}</text>`);
      return;
    }
    const x0 = x(1);
    const x1 = x(line.ratio);
    const color = line.impl.startsWith('emmett')
      ? '#6a51a3'
      : line.ratio >= 1
        ? '#2b8a3e'
        : '#e8590c';
    parts.push(
      `<text x="${left - 8}" y="${y + 14}" text-anchor="end" fill="#444">vs ${escapeXml(line.impl)}</text>`,
      `<rect x="${Math.min(x0, x1).toFixed(1)}" y="${y + 4}" width="${Math.max(1, Math.abs(x1 - x0)).toFixed(1)}" height="${rowHeight - 7}" fill="${color}" opacity="0.85"/>`,
      `<text x="${(Math.max(x0, x1) + 4).toFixed(1)}" y="${y + 14}">${line.ratio.toFixed(2)}x</text>`,
    );
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

const cell = (s: string) => s.replaceAll('|', '\\|');

export function markdown(results: readonly Result[], meta: Meta | undefined): string {
  const lines: string[] = [START, ''];
  if (meta) {
    const v = meta.versions;
    lines.push(
      `Run of ${meta.date.slice(0, 16).replace('T', ' ')} UTC, ${meta.quick ? 'quick' : 'full'} (${meta.rounds} round${meta.rounds > 1 ? 's' : ''}), ${Math.round(meta.durationSeconds / 60)} minutes.`,
      '',
      '| machine | |',
      '| --- | --- |',
      `| CPU | ${meta.cores} cores, ${cell(meta.cpu)} (shared with other work: load average ${meta.loadAverageAtStart[0]} at start, ${meta.loadAverageAtEnd[0]} at the end) |`,
      `| memory | ${meta.memoryGb} GB |`,
      `| OS | ${cell(meta.os)} |`,
      `| Node.js | ${meta.node} |`,
      `| SQLite | ${v.sqlite} (better-sqlite3 ${v['better-sqlite3']}); Emmett's node-sqlite3: ${v['sqlite (emmett, node-sqlite3)'] ?? 'n/a'} |`,
      `| PostgreSQL | ${v.postgresql ?? 'not available'} (pg ${v.pg}) |`,
      `| Kafka | ${v.kafka ?? 'not available'} (@platformatic/kafka ${v['@platformatic/kafka']}) |`,
      `| Emmett | emmett ${v['@event-driven-io/emmett'] ?? 'n/a'}, emmett-sqlite ${v['@event-driven-io/emmett-sqlite'] ?? 'n/a'}, emmett-postgresql ${v['@event-driven-io/emmett-postgresql'] ?? 'n/a'} |`,
      '',
    );
  }
  lines.push(
    '### Ratios',
    '',
    "Tidemark's throughput divided by each baseline's, same scenario, same run: the median of the " +
      'ratios of the slices or rounds that ran side by side, and in brackets the lowest and ' +
      'highest of them (how noisy the ratio was).',
    '',
    '| scenario | Tidemark | ratio to each baseline |',
    '| --- | ---: | --- |',
  );
  for (const row of ratioRows(results)) {
    lines.push(
      `| ${cell(row.scenario)} | ${fmt(row.tidemark)} | ${row.ratios.map((r) => `**${r.ratio.toFixed(2)}x** ${cell(r.impl)}${r.pairs > 1 ? ` (${r.min.toFixed(2)} to ${r.max.toFixed(2)})` : ''}`).join(', ')} |`,
    );
  }
  lines.push(
    '',
    '![ratios](benchmarks.svg)',
    '',
    '### Targets',
    '',
    '| target | measured | |',
    '| --- | --- | --- |',
  );
  for (const t of targetRows(results)) {
    lines.push(
      `| ${cell(t.target)} | ${cell(t.measured)} | ${t.met === undefined ? '' : t.met ? 'met' : '**missed**'} |`,
    );
  }
  lines.push(
    '',
    '### All results',
    '',
    'ops/s is events/s for appends and catch-up, loads/s, commands/s; p50/p99 per operation (catch-up: per 1000 events); RSS: peak resident memory of the process that did the work.',
    '',
    '| scenario | impl | ops/s | p50 ms | p99 ms | RSS MB | per slice or round |',
    '| --- | --- | ---: | ---: | ---: | ---: | --- |',
  );
  for (const r of results) {
    const status = r.skipped
      ? `skipped: ${r.skipped}`
      : r.error
        ? `failed: ${r.error.split('\n')[0]}`
        : '';
    lines.push(
      `| ${cell(r.scenario)} | ${cell(r.impl)} | ${status ? '-' : fmt(r.opsPerSec)} | ${status ? '-' : r.p50Ms} | ${status ? '-' : r.p99Ms} | ${status ? '-' : r.peakRssMb} | ${cell(status || [r.runs && r.runs.length > 1 ? r.runs.map(fmt).join(' / ') : '', r.notes ?? ''].filter(Boolean).join('; '))} |`,
    );
  }
  lines.push('', END);
  return lines.join('\n');
}

const file = process.argv[2] ?? join(root, 'bench/results/latest.json');
const results = JSON.parse(readFileSync(file, 'utf8')) as Result[];
const metaFile = file.replace(/\.json$/, '.meta.json');
const meta = existsSync(metaFile)
  ? (JSON.parse(readFileSync(metaFile, 'utf8')) as Meta)
  : undefined;

writeFileSync(
  join(root, 'docs/benchmarks.svg'),
  ratioChart(
    results,
    `Tidemark vs raw drivers and Emmett${meta ? ` (${meta.cores} cores, ${meta.node})` : ''}`,
  ),
);
const page = join(root, 'docs/benchmarks.md');
const generated = markdown(results, meta);
const current = existsSync(page)
  ? readFileSync(page, 'utf8')
  : `# Benchmarks\n\n${START}\n${END}\n`;
const from = current.indexOf(START);
const to = current.indexOf(END);
const next =
  from >= 0 && to > from
    ? `${current.slice(0, from)}${generated}${current.slice(to + END.length)}`
    : `${current.trimEnd()}\n\n${generated}\n`;
writeFileSync(page, next);
process.stderr.write(`wrote docs/benchmarks.md and docs/benchmarks.svg from ${file}\n`);
