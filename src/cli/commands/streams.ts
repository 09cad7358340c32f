/** `tidemark streams …` and `tidemark events tail`: look into the store. */
import type { RecordedEvent } from '../../index.ts';
import {
  CliError,
  EXIT,
  arg,
  intOption,
  print,
  printJson,
  withStorage,
  type Command,
  type Context,
} from '../context.ts';
import { table } from '../format.ts';

function eventRow(e: RecordedEvent) {
  return {
    position: e.position,
    streamId: e.streamId,
    version: e.streamVersion,
    type: e.type,
    recordedAt: e.recordedAt,
    data: e.data,
  };
}

export function streamCommands(usage: string): Record<string, Command> {
  return {
    'streams list': (ctx) =>
      withStorage(ctx, async ({ store }) => {
        const prefix = ctx.options.prefix as string | undefined;
        const after = ctx.options.after as string | undefined;
        const streams = await store.listStreams({
          limit: intOption(ctx, 'limit', 100)!,
          ...(prefix ? { prefix } : {}),
          ...(after ? { after } : {}),
        });
        if (ctx.json) printJson(ctx, streams);
        else print(ctx, table(streams, ['streamId', 'version', 'position', 'updatedAt']));
        return EXIT.ok;
      }),

    'streams show': (ctx) =>
      withStorage(ctx, async ({ store }) => {
        const streamId = arg(ctx, 2, 'streamId', usage);
        const events = await store.readStream(streamId, {
          fromVersion: intOption(ctx, 'from', 1)! || 1,
          maxCount: intOption(ctx, 'limit', 1000)! || 1,
        });
        if (events.length === 0 && (await store.streamVersion(streamId)) === 0) {
          throw new CliError(`no stream '${streamId}'`, EXIT.notFound);
        }
        if (ctx.json) printJson(ctx, events);
        else
          print(
            ctx,
            table(events.map(eventRow), ['version', 'position', 'type', 'recordedAt', 'data']),
          );
        return EXIT.ok;
      }),

    'events tail': (ctx) => withStorage(ctx, (storage) => tail(ctx, storage.store)),
  };
}

async function tail(
  ctx: Context,
  store: Parameters<Parameters<typeof withStorage>[1]>[0]['store'],
) {
  const limit = intOption(ctx, 'limit', 100)!;
  // Listen for the interrupt from the start: it may come before the first batch is out.
  const stop = new AbortController();
  if (ctx.options.follow) {
    process.once('SIGINT', () => stop.abort());
    process.once('SIGTERM', () => stop.abort());
  }
  let after =
    intOption(ctx, 'after', undefined) ?? Math.max(0, (await store.headPosition()) - limit);
  const show = (events: RecordedEvent[]) => {
    for (const e of events) {
      if (ctx.json) ctx.out(`${JSON.stringify(e)}\n`);
      else
        print(
          ctx,
          `${e.position}\t${e.streamId}@${e.streamVersion}\t${e.type}\t${JSON.stringify(e.data)}`,
        );
    }
  };
  let events = await store.readAll({ after, maxCount: Math.max(1, limit) });
  show(events);
  if (events.length > 0) after = events[events.length - 1]!.position;
  if (!ctx.options.follow) return EXIT.ok;
  while (!stop.signal.aborted) {
    events = await store.readAll({ after, maxCount: 1000 });
    if (events.length > 0) {
      show(events);
      after = events[events.length - 1]!.position;
      continue;
    }
    await new Promise<void>((done) => {
      const timer = setTimeout(finish, 1000);
      const unsubscribe = store.onAppended(finish);
      stop.signal.addEventListener('abort', finish, { once: true });
      function finish() {
        clearTimeout(timer);
        unsubscribe();
        done();
      }
    });
  }
  return EXIT.ok;
}
