/**
 * Benchmark helpers: run an operation many times (optionally with many in flight), record each
 * latency, and report throughput, p50/p99 and the process's peak resident memory; run a
 * measurement in a process of its own; alternate implementations over rounds; find the local
 * services.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

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
  /** opsPerSec of every round, when the scenario ran several (the result is the median one). */
  runs?: number[];
  /** Set when this implementation (or the whole scenario, impl `*`) could not run here: why. */
  skipped?: string;
  /** Set when it ran and failed: the error. */
  error?: string;
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

export const root = fileURLToPath(new URL('../', import.meta.url));

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

export const round = (n: number, digits = 3) => Math.round(n * 10 ** digits) / 10 ** digits;

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

/**
 * Times a catch-up: `tick()` is called once per event applied (by the projection's own handler,
 * whoever runs it); every `every` ticks the time since the previous mark is recorded. Gives
 * events/s over the whole run and p50/p99 of the time per `every` events.
 */
export function catchUpClock(total: number, every = 1000, stallMs = 30_000) {
  let count = 0;
  let started = 0;
  let last = 0;
  let seen = 0;
  const spans: number[] = [];
  let resolveDone!: () => void;
  let rejectDone!: (error: Error) => void;
  const done = new Promise<void>((resolve, reject) => {
    resolveDone = resolve;
    rejectDone = reject;
  });
  // Fail clearly instead of hanging when events stop coming: a gap-safe PostgreSQL reader waits
  // while a long transaction runs anywhere on the server, and a reader that skipped events
  // never reaches the total.
  const watchdog = setInterval(() => {
    if (count === seen && started > 0) {
      rejectDone(
        new Error(
          `catch-up stalled: ${count} of ${total} events applied, none in the last ${stallMs / 1000} s`,
        ),
      );
    }
    seen = count;
  }, stallMs);
  watchdog.unref();
  void done.then(
    () => clearInterval(watchdog),
    () => clearInterval(watchdog),
  );
  return {
    start() {
      resetPeakRss();
      started = last = performance.now();
    },
    tick() {
      count++;
      if (count % every === 0 || count === total) {
        const now = performance.now();
        spans.push(now - last);
        last = now;
      }
      if (count === total) resolveDone();
    },
    /** Resolves once `total` events have been applied. */
    done,
    get count() {
      return count;
    },
    result(scenario: string, impl: string, unit: string): Result {
      const elapsed = last - started;
      spans.sort((a, b) => a - b);
      return {
        scenario,
        impl,
        opsPerSec: round(count / (elapsed / 1000), 1),
        p50Ms: round(percentile(spans, 50)),
        p99Ms: round(percentile(spans, 99)),
        peakRssMb: currentPeakRssMb(),
        unit,
      };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Progress

export function progress(message: string): void {
  process.stderr.write(`  ${message}\n`);
}

// ---------------------------------------------------------------------------------------------
// Services

/** A scenario (or one implementation of it) that cannot run on this machine now. */
export class Skip extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'Skip';
  }
}

/** The PostgreSQL the bench uses (the runner resolves and checks it, see run.ts). */
export function benchDatabaseUrl(): string | undefined {
  const url = process.env.TIDEMARK_BENCH_DATABASE_URL ?? process.env.DATABASE_URL;
  return url && /^postgres(ql)?:\/\//.test(url) ? url : undefined;
}

/**
 * Deletes the topics a measurement made, so that every run starts from the same broker (topics
 * left by earlier runs piled up to 1,672 partition directories over a few sessions, and a
 * broker's work grows with its partitions). Failures are reported, not thrown: the result
 * stands either way.
 */
export async function deleteTopics(brokers: string, names: readonly string[]): Promise<void> {
  const { KafkaAdmin, kafkaConnectionFromEnv } = await import('../src/kafka/internal.ts');
  const admin = new KafkaAdmin(kafkaConnectionFromEnv({ KAFKA_BROKERS: brokers })!);
  try {
    for (const name of names) await admin.deleteTopic(name, { ifExists: true });
  } catch (error) {
    process.stderr.write(`could not delete topics ${names.join(', ')}: ${String(error)}\n`);
  } finally {
    await admin.close();
  }
}

export function requireDatabaseUrl(): string {
  const url = benchDatabaseUrl();
  if (!url) {
    throw new Skip(
      'PostgreSQL missing: start it with `npm run services:up` or set TIDEMARK_BENCH_DATABASE_URL',
    );
  }
  return url;
}

// ---------------------------------------------------------------------------------------------
// Isolation and alternation

export const emmettDir = fileURLToPath(new URL('./emmett/', import.meta.url));

/** Why the Emmett peer cannot run, or undefined when it can. */
export function emmettMissing(): string | undefined {
  if (process.env.TIDEMARK_BENCH_EMMETT === '0') return 'Emmett disabled (--no-emmett)';
  if (!existsSync(`${emmettDir}node_modules/@event-driven-io/emmett-sqlite/package.json`)) {
    return 'Emmett not installed: node bench/emmett/install.mjs';
  }
  return undefined;
}

const childScript = fileURLToPath(new URL('./child.ts', import.meta.url));

function spawnChild(mode: 'call' | 'serve', module: string, exportName: string, args: unknown) {
  return spawn(
    process.execPath,
    ['--conditions=tidemark-source', childScript, mode, module, exportName, JSON.stringify(args)],
    { cwd: root, env: process.env, stdio: ['ignore', 'pipe', 'inherit', 'ipc'] },
  );
}

/**
 * Runs `exportName(args)` of a bench module in a new Node process and resolves with what it
 * returns. Every measured implementation gets a fresh process: its own heap, JIT and resident
 * memory (so peak RSS is its own), and its own copy of its driver (Emmett's differ from ours).
 */
export function runChild<T>(
  module: string,
  exportName: string,
  args: unknown,
  options: { timeoutMs?: number } = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 300_000;
  return new Promise<T>((resolve, reject) => {
    const child = spawnChild('call', module, exportName, args);
    let out = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => (out += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      const line = out.split('\n').find((l) => l.startsWith(RESULT_PREFIX));
      if (!line) {
        const why =
          signal === 'SIGKILL' ? `timed out after ${timeoutMs} ms` : `exit ${code ?? signal}`;
        reject(new Error(`${module} ${exportName}: ${why}, no result\n${out.slice(-2000)}`));
        return;
      }
      const answer = JSON.parse(line.slice(RESULT_PREFIX.length)) as
        { ok: true; value: T } | { ok: false; skip?: boolean; message: string };
      if (answer.ok) resolve(answer.value);
      else reject(answer.skip ? new Skip(answer.message) : new Error(answer.message));
    });
  });
}

/** What a measured implementation sets up in its process: one operation, and its teardown. */
export interface Workload {
  op: (i: number) => unknown;
  close?: () => unknown;
  /** Said in the result (for example a driver setting found at run time). */
  notes?: string;
}

/** Messages between the bench and a serving child (child.ts `serve`). */
export type ToChild =
  { type: 'run'; from: number; count: number; concurrency: number } | { type: 'close' };
export type FromChild =
  | { type: 'ready' }
  | { type: 'ran'; elapsedMs: number; latencies: number[] }
  | { type: 'closed'; peakRssMb: number; notes?: string }
  | { type: 'failed'; skip: boolean; message: string };

/** Runs ops `from … from+count-1` of a workload, `concurrency` in flight; times each. */
export async function runSlice(
  workload: Workload,
  from: number,
  count: number,
  concurrency: number,
): Promise<{ elapsedMs: number; latencies: number[] }> {
  const latencies = new Array<number>(count);
  let next = 0;
  const worker = async () => {
    for (;;) {
      const mine = next++;
      if (mine >= count) return;
      const start = performance.now();
      await workload.op(from + mine);
      latencies[mine] = performance.now() - start;
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return { elapsedMs: performance.now() - start, latencies };
}

/** A workload in a process of its own, driven slice by slice. */
class ServedWorkload {
  readonly #child: ReturnType<typeof spawnChild>;
  #pending: ((message: FromChild) => void) | undefined;
  #exit: Promise<string>;

  constructor(module: string, exportName: string, args: unknown) {
    this.#child = spawnChild('serve', module, exportName, args);
    this.#child.stdout!.resume(); // drivers may print; nobody reads it
    this.#child.on('message', (message: FromChild) => {
      const pending = this.#pending;
      this.#pending = undefined;
      pending?.(message);
    });
    this.#exit = new Promise((resolve) =>
      this.#child.on('exit', (code, signal) => {
        const why = `worker exited (${code ?? signal})`;
        this.#pending?.({ type: 'failed', skip: false, message: why });
        resolve(why);
      }),
    );
  }

  #next(): Promise<FromChild> {
    return new Promise((resolve) => (this.#pending = resolve));
  }

  async expect<T extends FromChild['type']>(
    type: T,
    send?: ToChild,
  ): Promise<Extract<FromChild, { type: T }>> {
    const answer = this.#next();
    if (send) this.#child.send(send);
    const message = await answer;
    if (message.type === 'failed')
      throw message.skip ? new Skip(message.message) : new Error(message.message);
    if (message.type !== type) throw new Error(`expected ${type}, got ${message.type}`);
    return message as Extract<FromChild, { type: T }>;
  }

  async kill(): Promise<void> {
    if (this.#child.exitCode === null && this.#child.signalCode === null)
      this.#child.kill('SIGKILL');
    await this.#exit;
  }
}

/**
 * A workload run in this process, driven like a served one (for scenarios whose implementations
 * share one process, such as the PostgreSQL appends: peak RSS is then the process's, shared).
 */
class LocalWorkload {
  readonly #workload: Promise<Workload>;
  #closed: Promise<unknown> | undefined;

  constructor(make: () => Promise<Workload>) {
    this.#workload = make();
    this.#workload.catch(() => {}); // reported by the first expect()
  }

  async expect<T extends FromChild['type']>(
    type: T,
    send?: ToChild,
  ): Promise<Extract<FromChild, { type: T }>> {
    const workload = await this.#workload;
    let answer: FromChild = { type: 'ready' };
    if (send?.type === 'run') {
      answer = {
        type: 'ran',
        ...(await runSlice(workload, send.from, send.count, send.concurrency)),
      };
    } else if (send?.type === 'close') {
      await (this.#closed ??= Promise.resolve(workload.close?.()));
      answer = {
        type: 'closed',
        peakRssMb: currentPeakRssMb(),
        ...(workload.notes ? { notes: workload.notes } : {}),
      };
    }
    if (answer.type !== type) throw new Error(`expected ${type}, got ${answer.type}`);
    return answer as Extract<FromChild, { type: T }>;
  }

  /** Closes the workload once, whether `close` was asked already or not. */
  async kill(): Promise<void> {
    const workload = await this.#workload.catch(() => undefined);
    await (this.#closed ??= Promise.resolve(workload?.close?.())).catch(() => {});
  }
}

export interface SlicedCase {
  impl: string;
  module: string;
  fn: string;
  args: unknown;
  /** Set to run the workload in this process instead (module, fn and args are then unused). */
  local?: () => Promise<Workload>;
  /** Set when this implementation cannot run here (e.g. Emmett not installed): why. */
  skip?: string;
}

export interface InterleaveOptions {
  unit: string;
  /** Measured ops per implementation, over all slices. */
  ops: number;
  /** How many slices the ops are cut into. */
  slices: number;
  concurrency?: number;
  itemsPerOp?: number;
  /** Unmeasured ops first. Default ops/10. */
  warmup?: number;
}

/**
 * Measures several implementations side by side: each in a process of its own, set up once,
 * then run slice by slice, taking turns (A B C, B C A, …), so load from elsewhere on a shared
 * machine falls on all of them alike. Throughput is total work over total time in slices;
 * p50/p99 over every op; `runs` keeps each slice's rate (the spread shows the noise).
 */
export async function interleave(
  scenario: string,
  cases: readonly SlicedCase[],
  options: InterleaveOptions,
): Promise<Result[]> {
  const { ops, slices, concurrency = 1, itemsPerOp = 1, unit } = options;
  const warmup = options.warmup ?? Math.ceil(ops / 10);
  const perSlice = Math.ceil(ops / slices);
  const live = new Map<
    string,
    {
      worker: ServedWorkload | LocalWorkload;
      next: number;
      elapsed: number;
      latencies: number[];
      rates: number[];
    }
  >();
  const out = new Map<string, Result>();
  const fail = (impl: string, error: unknown) => {
    out.set(impl, failedResult(scenario, impl, error));
    progress(
      `  ${impl} ${error instanceof Skip ? 'skipped' : 'FAILED'}: ${(error as Error).message.split('\n')[0]}`,
    );
  };
  progress(`${scenario}: ${cases.map((c) => c.impl).join(', ')} in turns, ${slices} slices`);
  for (const c of cases) {
    if (c.skip) {
      fail(c.impl, new Skip(c.skip));
      continue;
    }
    const worker = c.local
      ? new LocalWorkload(c.local)
      : new ServedWorkload(c.module, c.fn, c.args);
    try {
      await worker.expect('ready');
      await worker.expect('ran', { type: 'run', from: 0, count: warmup, concurrency });
      live.set(c.impl, { worker, next: warmup, elapsed: 0, latencies: [], rates: [] });
    } catch (error) {
      fail(c.impl, error);
      await worker.kill();
    }
  }
  const order = cases.filter((c) => live.has(c.impl));
  for (let s = 0; s < slices; s++) {
    for (let k = 0; k < order.length; k++) {
      const c = order[(k + s) % order.length]!;
      const state = live.get(c.impl);
      if (!state) continue;
      const count = Math.min(perSlice, ops - s * perSlice);
      if (count <= 0) continue;
      try {
        const ran = await state.worker.expect('ran', {
          type: 'run',
          from: state.next,
          count,
          concurrency,
        });
        state.next += count;
        state.elapsed += ran.elapsedMs;
        for (const l of ran.latencies) state.latencies.push(l);
        state.rates.push(round((count * itemsPerOp) / (ran.elapsedMs / 1000), 1));
      } catch (error) {
        fail(c.impl, error);
        live.delete(c.impl);
        await state.worker.kill();
      }
    }
  }
  for (const [impl, state] of live) {
    try {
      const closed = await state.worker.expect('closed', { type: 'close' });
      const latencies = Float64Array.from(state.latencies).sort();
      out.set(impl, {
        scenario,
        impl,
        opsPerSec: round((latencies.length * itemsPerOp) / (state.elapsed / 1000), 1),
        p50Ms: round(percentile(latencies, 50)),
        p99Ms: round(percentile(latencies, 99)),
        peakRssMb: closed.peakRssMb,
        unit,
        runs: state.rates,
        ...(closed.notes ? { notes: closed.notes } : {}),
      });
    } catch (error) {
      fail(impl, error);
    } finally {
      await state.worker.kill();
    }
  }
  return cases.map((c) => out.get(c.impl)!);
}

export const RESULT_PREFIX = '@@bench-result ';

export interface Case {
  impl: string;
  run: () => Promise<Result>;
}

/**
 * Runs every case `rounds` times, the order rotating each round (so drift on a shared machine
 * hits all of them), and keeps each case's median round by throughput. A case that throws
 * {@link Skip} is reported as skipped; one that fails, as failed; the others go on.
 */
export async function alternate(
  scenario: string,
  rounds: number,
  cases: readonly Case[],
): Promise<Result[]> {
  const byImpl = new Map<string, Result[]>(cases.map((c) => [c.impl, []]));
  const broken = new Map<string, Result>();
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < cases.length; k++) {
      const c = cases[(k + r) % cases.length]!;
      if (broken.has(c.impl)) continue;
      progress(`${scenario} · ${c.impl}${rounds > 1 ? ` (round ${r + 1}/${rounds})` : ''}`);
      try {
        byImpl.get(c.impl)!.push(await c.run());
      } catch (error) {
        broken.set(c.impl, failedResult(scenario, c.impl, error));
        progress(`  ${error instanceof Skip ? 'skipped' : 'FAILED'}: ${(error as Error).message}`);
      }
    }
  }
  return cases.map((c) => broken.get(c.impl) ?? median(byImpl.get(c.impl)!));
}

export function failedResult(scenario: string, impl: string, error: unknown): Result {
  const message = error instanceof Error ? error.message : String(error);
  return {
    scenario,
    impl,
    opsPerSec: 0,
    p50Ms: 0,
    p99Ms: 0,
    peakRssMb: 0,
    ...(error instanceof Skip ? { skipped: message } : { error: message.slice(0, 500) }),
  };
}

function median(results: Result[]): Result {
  const sorted = [...results].sort((a, b) => a.opsPerSec - b.opsPerSec);
  const middle = sorted[Math.floor((sorted.length - 1) / 2)]!;
  return { ...middle, runs: results.map((r) => r.opsPerSec) };
}
