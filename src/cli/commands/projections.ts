/** `tidemark projections …`: status, rebuild, reset (the library's operations). */
import {
  InvalidArgumentError,
  ledgerMigrations,
  projectionStatus,
  rebuildProjection,
  resetProjection,
  type FeedKind,
} from '../../index.ts';
import {
  CliError,
  EXIT,
  arg,
  intOption,
  loadConfig,
  operations,
  print,
  printJson,
  projectionNamed,
  withStorage,
  type Command,
} from '../context.ts';
import { progressLine, table } from '../format.ts';

export function projectionCommands(usage: string): Record<string, Command> {
  return {
    'projections status': (ctx) =>
      withStorage(ctx, async (storage) => {
        const ops = await operations(ctx, storage);
        try {
          const config = await loadConfig(ctx);
          const statuses = (await projectionStatus(ops)).map((s) => {
            const { partitions, ...rest } = s;
            const definition = config.projections?.find((p) => p.name === s.name);
            return {
              ...rest,
              ...(ctx.json && partitions ? { partitions } : {}),
              ...(config.projections ? { deployedCodeVersion: definition?.version ?? null } : {}),
            };
          });
          if (ctx.json) printJson(ctx, statuses);
          else print(ctx, table(statuses));
          return EXIT.ok;
        } finally {
          await ops.close();
        }
      }),

    'projections rebuild': async (ctx) => {
      const definition = await projectionNamed(ctx, arg(ctx, 2, 'name', usage));
      const dropGraceMs = intOption(ctx, 'drop-after', 10_000)!;
      const from = ctx.options.from as string | undefined;
      if (from !== undefined && from !== 'store' && from !== 'kafka') {
        throw new CliError(`--from takes store or kafka, not '${from}'`, EXIT.usage);
      }
      return withStorage(ctx, async (storage) => {
        const ops = await operations(ctx, storage, from as FeedKind | undefined);
        const tty = process.stderr.isTTY === true;
        const started = Date.now();
        let last = 0;
        try {
          await storage.sink.migrate('projections', ledgerMigrations);
          const result = await rebuildProjection(ops, {
            definition,
            ...(from ? { from: from as FeedKind } : {}),
            dropGraceMs,
            progressIntervalMs: tty ? 200 : 2000,
            onStarted: (version, feed) =>
              ctx.err(
                `rebuilding ${definition.name} as version ${version} from ${feed === 'kafka' ? "Kafka's earliest offsets" : 'the store'}\n`,
              ),
            onProgress: ({ done, total }) => {
              const elapsed = (Date.now() - started) / 1000;
              const line = progressLine({
                done,
                total,
                perSecond: elapsed > 0 ? done / elapsed : 0,
              });
              if (tty) ctx.err(`\r${line}`);
              else if (Date.now() - last >= 2000 || done >= total) {
                ctx.err(`${line}\n`);
                last = Date.now();
              }
            },
            onSwitchedOver: (active) => {
              ctx.err(`${tty ? '\n' : ''}switched over: queries now read version ${active}\n`);
              // Queries that started on the old version get the grace period to finish.
              if (dropGraceMs > 0) ctx.err(`dropping the old version in ${dropGraceMs} ms\n`);
            },
          });
          const output = {
            ...result,
            // The rebuild reads and applies in bounded batches: memory stays flat whatever the log.
            peakRssMb: Math.round(process.resourceUsage().maxRSS / 102.4) / 10,
          };
          if (ctx.json) printJson(ctx, output);
          else
            print(
              ctx,
              `done: ${definition.name} v${result.version} active; dropped ${result.dropped.length ? result.dropped.map((v) => `v${v}`).join(', ') : 'nothing'}`,
            );
          return EXIT.ok;
        } catch (error) {
          if (error instanceof InvalidArgumentError) throw new CliError(error.message, EXIT.usage);
          throw new CliError((error as Error).message, EXIT.failed);
        } finally {
          await ops.close();
        }
      });
    },

    'projections reset': (ctx) =>
      withStorage(ctx, async ({ sink }) => {
        const name = arg(ctx, 2, 'name', usage);
        if (ctx.options.yes !== true) {
          throw new CliError(
            `reset drops every version of '${name}'; add --yes to confirm`,
            EXIT.usage,
          );
        }
        await sink.migrate('projections', ledgerMigrations);
        const dropped = await resetProjection(sink, name);
        if (dropped.length === 0)
          throw new CliError(`no projection '${name}' in this database`, EXIT.notFound);
        if (ctx.json) printJson(ctx, { projection: name, dropped });
        else
          print(ctx, `dropped ${name} versions ${dropped.join(', ')}; the next start rebuilds it`);
        return EXIT.ok;
      }),
  };
}
