/**
 * A small Prometheus registry: counters, gauges (set, or read at scrape time) and histograms,
 * rendered in the text exposition format (version 0.0.4). No global state: each service owns one.
 *
 * Exposition grammar used below, per metric:
 *   # HELP <name> <help text, \ and newline escaped>
 *   # TYPE <name> counter|gauge|histogram
 *   <name>{<label>="<value, \ " and newline escaped>",...} <number>
 * Histograms add <name>_bucket{le="..."} (cumulative), <name>_sum and <name>_count.
 */

type Labels = Record<string, string | number>;

const escapeHelp = (text: string) => text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
const escapeLabel = (text: string) =>
  text.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

function labelKey(labels: Labels | undefined): string {
  if (!labels) return '';
  const keys = Object.keys(labels).sort();
  if (keys.length === 0) return '';
  return `{${keys.map((k) => `${k}="${escapeLabel(String(labels[k]))}"`).join(',')}}`;
}

function formatNumber(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

interface Metric {
  readonly name: string;
  render(): Promise<string[]> | string[];
}

export class Counter implements Metric {
  readonly #values = new Map<string, number>();
  readonly name: string;
  readonly help: string;
  constructor(name: string, help: string) {
    this.name = name;
    this.help = help;
  }
  inc(labels?: Labels, by = 1): void {
    const key = labelKey(labels);
    this.#values.set(key, (this.#values.get(key) ?? 0) + by);
  }
  get(labels?: Labels): number {
    return this.#values.get(labelKey(labels)) ?? 0;
  }
  render(): string[] {
    const lines = [`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} counter`];
    for (const [key, value] of this.#values)
      lines.push(`${this.name}${key} ${formatNumber(value)}`);
    return lines;
  }
}

export type GaugeSample = { labels?: Labels; value: number };

export class Gauge implements Metric {
  readonly #values = new Map<string, number>();
  readonly name: string;
  readonly help: string;
  /** Read at scrape time; its samples are shown beside the set ones. */
  readonly collect: (() => Promise<GaugeSample[]> | GaugeSample[]) | undefined;
  constructor(name: string, help: string, collect?: () => Promise<GaugeSample[]> | GaugeSample[]) {
    this.name = name;
    this.help = help;
    this.collect = collect;
  }
  set(value: number, labels?: Labels): void {
    this.#values.set(labelKey(labels), value);
  }
  async render(): Promise<string[]> {
    const lines = [`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} gauge`];
    const values = new Map(this.#values);
    if (this.collect)
      for (const sample of await this.collect()) values.set(labelKey(sample.labels), sample.value);
    for (const [key, value] of values) lines.push(`${this.name}${key} ${formatNumber(value)}`);
    return lines;
  }
}

export class Histogram implements Metric {
  readonly #series = new Map<
    string,
    { labels: Labels | undefined; counts: number[]; sum: number; count: number }
  >();
  readonly name: string;
  readonly help: string;
  /** Upper bounds, ascending; +Inf is implied. */
  readonly buckets: readonly number[];
  constructor(
    name: string,
    help: string,
    buckets: readonly number[] = [
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
    ],
  ) {
    this.name = name;
    this.help = help;
    this.buckets = buckets;
  }
  observe(value: number, labels?: Labels): void {
    const key = labelKey(labels);
    let series = this.#series.get(key);
    if (!series) {
      series = { labels, counts: new Array(this.buckets.length).fill(0), sum: 0, count: 0 };
      this.#series.set(key, series);
    }
    for (let i = 0; i < this.buckets.length; i++)
      if (value <= this.buckets[i]!) series.counts[i]!++;
    series.sum += value;
    series.count++;
  }
  render(): string[] {
    const lines = [`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} histogram`];
    for (const series of this.#series.values()) {
      this.buckets.forEach((bound, i) => {
        lines.push(
          `${this.name}_bucket${labelKey({ ...series.labels, le: formatNumber(bound) })} ${series.counts[i]}`,
        );
      });
      lines.push(
        `${this.name}_bucket${labelKey({ ...series.labels, le: '+Inf' })} ${series.count}`,
      );
      lines.push(`${this.name}_sum${labelKey(series.labels)} ${formatNumber(series.sum)}`);
      lines.push(`${this.name}_count${labelKey(series.labels)} ${series.count}`);
    }
    return lines;
  }
}

/** The metrics of one service. */
export class MetricsRegistry {
  readonly #metrics = new Map<string, Metric>();

  #add<M extends Metric>(metric: M): M {
    if (!NAME.test(metric.name)) throw new Error(`invalid metric name '${metric.name}'`);
    const existing = this.#metrics.get(metric.name);
    if (existing) return existing as M;
    this.#metrics.set(metric.name, metric);
    return metric;
  }

  counter(name: string, help: string): Counter {
    return this.#add(new Counter(name, help));
  }

  gauge(name: string, help: string, collect?: () => Promise<GaugeSample[]> | GaugeSample[]): Gauge {
    return this.#add(new Gauge(name, help, collect));
  }

  histogram(name: string, help: string, buckets?: readonly number[]): Histogram {
    return this.#add(new Histogram(name, help, buckets));
  }

  /** The exposition text. A collector that fails is left out rather than failing the scrape. */
  async render(): Promise<string> {
    const parts: string[] = [];
    for (const metric of this.#metrics.values()) {
      try {
        parts.push(...(await metric.render()));
      } catch {
        // A gauge whose source is down: skip it this time.
      }
    }
    return `${parts.join('\n')}\n`;
  }
}

/** Content type of the exposition format. */
export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
