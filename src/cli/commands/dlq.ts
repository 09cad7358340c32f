/** `tidemark dlq …`: parked (dead-letter) events, listed, retried, skipped. */
import { listParked, retryParked, skipParked } from '../../index.ts';
import {
  CliError,
  EXIT,
  arg,
  intOption,
  loadConfig,
  print,
  printJson,
  projectionNamed,
  withStorage,
  type Command,
} from '../context.ts';
import { table } from '../format.ts';

export function dlqCommands(usage: string): Record<string, Command> {
  return {
    'dlq list': (ctx) =>
      withStorage(ctx, async ({ sink }) => {
        const projection = ctx.options.projection as string | undefined;
        const stream = ctx.options.stream as string | undefined;
        const parked = await listParked(
          { sink },
          {
            limit: intOption(ctx, 'limit', 100)!,
            ...(projection ? { name: projection } : {}),
            ...(stream ? { streamId: stream } : {}),
          },
        );
        if (ctx.json) printJson(ctx, parked);
        else
          print(
            ctx,
            table(
              parked.map((p) => ({
                projection: `${p.projection} v${p.version}`,
                streamId: p.event.streamId,
                version: p.event.streamVersion,
                eventId: p.event.eventId,
                type: p.event.type,
                attempts: p.attempts,
                error: p.error,
              })),
            ),
          );
        return EXIT.ok;
      }),

    'dlq retry': async (ctx) => {
      const definition = await projectionNamed(ctx, arg(ctx, 2, 'projection', usage));
      const streamId = arg(ctx, 3, 'streamId', usage);
      const config = await loadConfig(ctx);
      return withStorage(ctx, async ({ sink }) => {
        let applied: number;
        try {
          applied = await retryParked(
            { sink, feeds: {}, ...(config.upcasters ? { upcasters: config.upcasters } : {}) },
            definition,
            streamId,
          );
        } catch (error) {
          throw new CliError(
            `the retry failed, the events stay parked: ${(error as Error).message}`,
            EXIT.failed,
          );
        }
        if (applied === 0)
          throw new CliError(
            `no parked events of '${streamId}' in ${definition.name}`,
            EXIT.notFound,
          );
        if (ctx.json) printJson(ctx, { projection: definition.name, streamId, applied });
        else print(ctx, `applied ${applied} parked event(s) of ${streamId} to ${definition.name}`);
        return EXIT.ok;
      });
    },

    'dlq skip': (ctx) =>
      withStorage(ctx, async ({ sink }) => {
        const name = arg(ctx, 2, 'projection', usage);
        const eventId = arg(ctx, 3, 'eventId', usage);
        const versions = await skipParked({ sink }, name, eventId);
        if (versions.length === 0)
          throw new CliError(`no parked event ${eventId} in ${name}`, EXIT.notFound);
        if (ctx.json) printJson(ctx, { projection: name, eventId, skipped: true });
        else
          print(
            ctx,
            `skipped ${eventId} in ${name}; retry its stream to apply the events parked behind it`,
          );
        return EXIT.ok;
      }),
  };
}
