/**
 * V8 heap settings of the Orders service. `main.ts` applies them before anything else it does,
 * so they hold however Node was started (`npm start`, `npm run start:dist`, or `node
 * dist-examples/orders/src/main.js`).
 *
 * Old-generation growth: after each full collection V8 lets the old generation grow to the live
 * size times a factor it picks from its GC and allocation speeds, up to 4x for a small heap. At a
 * few thousand requests a second it picks a large one: the service's live heap is about 20 MB,
 * yet the old generation reached 45 to 80 MB before the next full collection, and the process
 * 160 to 190 MB resident. A fixed factor of 1.5 (`--heap-growing-percent=50`) held it at 135 to
 * 150 MB with no throughput cost we could measure (docs/benchmarks.md). V8 reads the flag at
 * every collection, so setting it here, after start, takes effect. The young generation's size
 * is fixed at start and cannot be set this way: the npm scripts pass `--max-semi-space-size`.
 */
import { setFlagsFromString } from 'node:v8';

/** The growth of V8's old generation after a full collection, in percent (a factor of 1.5). */
export const HEAP_GROWING_PERCENT = 50;

/**
 * The V8 flag this module sets, or `undefined` when the operator chose a growth of their own on
 * Node's command line (their choice wins).
 */
export function heapGrowingFlag(execArgv: readonly string[]): string | undefined {
  const chosen = execArgv.some(
    (arg) => arg.startsWith('--heap-growing-percent') || arg.startsWith('--heap_growing_percent'),
  );
  return chosen ? undefined : `--heap-growing-percent=${HEAP_GROWING_PERCENT}`;
}

/** Sets the flag of {@link heapGrowingFlag} for this process; returns it (or `undefined`). */
export function applyHeapSettings(
  execArgv: readonly string[] = process.execArgv,
): string | undefined {
  const flag = heapGrowingFlag(execArgv);
  if (flag) setFlagsFromString(flag);
  return flag;
}
