/**
 * Benchmark helpers: run an operation many times (optionally with many in flight), record each
 * latency, and report throughput, p50/p99 and the process's peak resident memory.
 */
export interface Result {
  scenario: string;
  impl: string;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  peakRssMb: number;
  /** What one op is (e.g. "1 append of 10 events"), for the table. */
  unit?: string;
  notes?: string;
}

export interface MeasureOptions {
  /** Total operations (after warm-up). */
  ops: number;
  /** Operations in flight at once. Default 1. */
  concurrency?: number;
  /** Operations run first and not measured. Default ops/10. */
  warmup?: number;
  /** Events (or messages) per op, to report events/s instead of ops/s. Default 1. */
  itemsPerOp?: number;
  unit?: string;
}

let peakRss = 0;
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage.rss());
}, 20);
sampler.unref();

export function resetPeakRss(): void {
  peakRss = process.memoryUsage.rss();
}

export function currentPeakRssMb(): number {
  peakRss = Math.max(peakRss, process.memoryUsage.rss());
  return Math.round((peakRss / 1024 / 1024) * 10) / 10;
}

export function percentile(sorted: Float64Array | number[], p: number): number {
  if (sorted.length === 0) return 0;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index]!;
}

const round = (n: number, digits = 3) => Math.round(n * 10 ** digits) / 10 ** digits;

/** Runs `op(i)` `ops` times, `concurrency` at a time; `i` counts from 0 over warm-up and run. */
export async function measure(
  scenario: string,
  impl: string,
  op: (i: number) => Promise<unknown> | unknown,
  options: MeasureOptions,
): Promise<Result> {
  const { ops, concurrency = 1, itemsPerOp = 1 } = options;
  const warmup = options.warmup ?? Math.ceil(ops / 10);
  let counter = 0;
  const runPhase = async (count: number, latencies: Float64Array | undefined) => {
    let next = 0;
    const worker = async () => {
      for (;;) {
        const mine = next++;
        if (mine >= count) return;
        const i = counter++;
        const start = performance.now();
        await op(i);
        if (latencies) latencies[mine] = performance.now() - start;
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
  };
  await runPhase(warmup, undefined);
  resetPeakRss();
  const latencies = new Float64Array(ops);
  const start = performance.now();
  await runPhase(ops, latencies);
  const elapsed = performance.now() - start;
  latencies.sort();
  return {
    scenario,
    impl,
    opsPerSec: round((ops * itemsPerOp) / (elapsed / 1000), 1),
    p50Ms: round(percentile(latencies, 50)),
    p99Ms: round(percentile(latencies, 99)),
    peakRssMb: currentPeakRssMb(),
    ...(options.unit ? { unit: options.unit } : {}),
  };
}
