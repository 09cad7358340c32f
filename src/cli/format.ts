/** Output for people: aligned tables and a progress bar. */

export function table(rows: readonly object[], columns?: readonly string[]): string {
  if (rows.length === 0) return '(none)';
  const keys = columns ?? Object.keys(rows[0]!);
  const cells = rows.map((row) => keys.map((k) => cell((row as Record<string, unknown>)[k])));
  const widths = keys.map((k, i) => Math.max(k.length, ...cells.map((c) => c[i]!.length)));
  const line = (values: string[]) =>
    values
      .map((v, i) => v.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(keys.map((k) => k.toUpperCase())), ...cells.map(line)].join('\n');
}

function cell(value: unknown): string {
  if (value === undefined || value === null) return '-';
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

export function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  if (seconds < 60) return `${Math.ceil(seconds)}s`;
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds % 60);
  if (m < 60) return `${m}m${String(s).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

export interface Progress {
  done: number;
  total: number;
  perSecond: number;
}

/** `[#########-----------]  45%  90,000/200,000 events  12,345 ev/s  ETA 9s` */
export function progressLine(progress: Progress, width = 24): string {
  const fraction = progress.total > 0 ? Math.min(1, progress.done / progress.total) : 1;
  const filled = Math.round(fraction * width);
  const eta =
    progress.perSecond > 0 ? (progress.total - progress.done) / progress.perSecond : Infinity;
  const n = (x: number) => Math.round(x).toLocaleString('en-US');
  return (
    `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${String(Math.floor(fraction * 100)).padStart(3)}%  ` +
    `${n(progress.done)}/${n(progress.total)} events  ${n(progress.perSecond)} ev/s  ` +
    `ETA ${progress.done >= progress.total ? '0s' : duration(eta)}`
  );
}
