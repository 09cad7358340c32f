/**
 * A measured implementation in a process of its own (see lib.ts):
 *
 *   node bench/child.ts call  <module> <export> <json args>
 *     calls the export, prints one result line on stdout (other output is ignored), exits;
 *   node bench/child.ts serve <module> <export> <json args>
 *     the export returns a Workload; the parent then sends `run` and `close` messages (IPC).
 *
 * Exits when done, whatever handles the measured code left open.
 */
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  RESULT_PREFIX,
  Skip,
  root,
  runSlice,
  type FromChild,
  type ToChild,
  type Workload,
} from './lib.ts';

const [mode, module, exportName, json] = process.argv.slice(2);

async function call(): Promise<unknown> {
  if (!module || !exportName)
    throw new Error('usage: child.ts call|serve <module> <export> <json>');
  const path = isAbsolute(module) ? module : resolve(root, module);
  const loaded = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
  const fn = loaded[exportName];
  if (typeof fn !== 'function') throw new Error(`${module} has no function ${exportName}`);
  return (fn as (args: unknown) => Promise<unknown>)(JSON.parse(json ?? 'null'));
}

const describe = (error: unknown) =>
  error instanceof Skip
    ? error.message
    : error instanceof Error
      ? (error.stack ?? error.message)
      : String(error);

function send(message: FromChild): Promise<void> {
  return new Promise((done) => process.send!(message, undefined, undefined, () => done()));
}

if (mode === 'serve') {
  let workload: Workload;
  try {
    workload = (await call()) as Workload;
  } catch (error) {
    await send({ type: 'failed', skip: error instanceof Skip, message: describe(error) });
    process.exit(1);
  }
  process.on('message', (message: ToChild) => {
    void (async () => {
      try {
        if (message.type === 'run') {
          const ran = await runSlice(workload, message.from, message.count, message.concurrency);
          await send({ type: 'ran', ...ran });
        } else {
          await workload.close?.();
          const peakRssMb = Math.round((process.resourceUsage().maxRSS / 1024) * 10) / 10;
          await send({
            type: 'closed',
            peakRssMb,
            ...(workload.notes ? { notes: workload.notes } : {}),
          });
          process.exit(0);
        }
      } catch (error) {
        await send({ type: 'failed', skip: false, message: describe(error) });
        process.exit(1);
      }
    })();
  });
  await send({ type: 'ready' });
} else {
  try {
    const value = await call();
    process.stdout.write(`\n${RESULT_PREFIX}${JSON.stringify({ ok: true, value })}\n`, () =>
      process.exit(0),
    );
  } catch (error) {
    const answer = { ok: false, skip: error instanceof Skip, message: describe(error) };
    process.stdout.write(`\n${RESULT_PREFIX}${JSON.stringify(answer)}\n`, () => process.exit(1));
  }
}
