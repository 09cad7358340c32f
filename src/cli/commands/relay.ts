/**
 * `tidemark relay status|rebase|parked|retry|skip` (Kafka mode) and `tidemark migrate`. The
 * relay operations are the library's (tidemark/kafka: inspectRelay, rebaseRelay,
 * retryRelayParked, skipRelayParked); these commands parse and print.
 */
import type { EventStore } from '../../index.ts';
import type * as Kafka from '../../kafka/index.ts';
import type { KafkaConnection, RelayOperationOptions } from '../../kafka/index.ts';
import { ledgerMigrations } from '../../index.ts';
import {
  CliError,
  EXIT,
  intOption,
  loadConfig,
  print,
  printJson,
  withStorage,
  type Command,
  type Context,
} from '../context.ts';
import { table } from '../format.ts';

/** The relay a command is about (name, progress topic), its connection, and the store. */
async function withRelay(
  ctx: Context,
  command: string,
  work: (relay: RelayOperationOptions & { name: string }, kafka: typeof Kafka) => Promise<number>,
): Promise<number> {
  const needs = `relay ${command} needs KAFKA_BROKERS`;
  if (!ctx.env.KAFKA_BROKERS) throw new CliError(needs, EXIT.usage);
  const kafka = await import('../../kafka/index.ts');
  const connection: KafkaConnection | undefined = kafka.kafkaConnectionFromEnv(ctx.env);
  if (!connection) throw new CliError(needs, EXIT.usage);
  const config = await loadConfig(ctx);
  const name = (ctx.options.name as string | undefined) ?? config.relay?.name ?? 'default';
  return withStorage(ctx, ({ store }: { store: EventStore }) =>
    work(
      {
        connection,
        store,
        name,
        ...(config.relay?.progressTopic ? { progressTopic: config.relay.progressTopic } : {}),
      },
      kafka,
    ),
  );
}

function streamOption(ctx: Context, command: string): string {
  const stream = ctx.options.stream;
  if (typeof stream !== 'string' || stream === '')
    throw new CliError(`relay ${command} needs --stream ID`, EXIT.usage);
  return stream;
}

const parkedColumns = [
  'streamId',
  'streamVersion',
  'position',
  'eventId',
  'type',
  'topic',
  'bytes',
  'limit',
  'parkedAt',
];

export function relayCommands(): Record<string, Command> {
  return {
    // Exit 1 when the relay would refuse this store's progress (other store, past the head).
    'relay status': (ctx) =>
      withRelay(ctx, 'status', async (relay, kafka) => {
        const status = await kafka.inspectRelay({ ...relay, timeoutMs: 15_000 });
        const { parked, partitions, ...row } = status;
        if (ctx.json) printJson(ctx, { ...status, parked: parked.length === 0 ? [] : parked });
        else {
          print(ctx, table([{ ...row, parked: parked.length }]));
          if (Object.keys(partitions).length > 0)
            print(
              ctx,
              `\npartitions recorded\n${table(Object.entries(partitions).map(([topic, count]) => ({ topic, partitions: count })))}`,
            );
          if (parked.length > 0)
            print(ctx, `\nparked (too big to publish)\n${table(parked, parkedColumns)}`);
        }
        return status.storeCheck === 'other_store' || status.storeCheck === 'past_head'
          ? EXIT.failed
          : EXIT.ok;
      }),

    'relay rebase': (ctx) =>
      withRelay(ctx, 'rebase', async (relay, kafka) => {
        const raw = ctx.options.to;
        const accept = ctx.options['accept-partitions'] === true;
        if (raw === undefined && !accept)
          throw new CliError(
            'relay rebase needs --to POSITION|head, or --accept-partitions',
            EXIT.usage,
          );
        const to = raw === undefined ? undefined : raw === 'head' ? 'head' : intOption(ctx, 'to');
        const next = await kafka.rebaseRelay({
          ...relay,
          ...(to !== undefined ? { to } : {}),
          acceptPartitions: accept,
        });
        if (ctx.json) printJson(ctx, { name: relay.name, ...next });
        else
          print(
            ctx,
            `relay ${relay.name} re-based: position ${next.position}, store ${next.storeId ?? '-'}, ` +
              `partitions ${JSON.stringify(next.partitions)}; a running instance was fenced: restart it`,
          );
        return EXIT.ok;
      }),

    'relay parked': (ctx) =>
      withRelay(ctx, 'parked', async (relay, kafka) => {
        const { parked } = await kafka.inspectRelay({ ...relay, timeoutMs: 15_000 });
        if (ctx.json) printJson(ctx, parked);
        else print(ctx, table(parked, parkedColumns));
        return EXIT.ok;
      }),

    'relay retry': (ctx) =>
      withRelay(ctx, 'retry', async (relay, kafka) => {
        const maxEventBytes = intOption(ctx, 'max-event-bytes');
        const result = await kafka.retryRelayParked({
          ...relay,
          streamId: streamOption(ctx, 'retry'),
          ...(maxEventBytes !== undefined ? { maxEventBytes } : {}),
        });
        return released(ctx, result);
      }),

    'relay skip': (ctx) =>
      withRelay(ctx, 'skip', async (relay, kafka) => {
        const result = await kafka.skipRelayParked({
          ...relay,
          streamId: streamOption(ctx, 'skip'),
        });
        return released(ctx, result);
      }),

    migrate: (ctx) =>
      withStorage(
        ctx,
        async ({ sink, kind, location }) => {
          await sink.migrate('projections', ledgerMigrations);
          const rows = await sink.query<{ component: string; version: number | string }>(
            'SELECT component, max(version) AS version FROM tm_migrations GROUP BY component ORDER BY component',
          );
          const schema = rows.map((r) => ({ component: r.component, version: Number(r.version) }));
          if (ctx.json) printJson(ctx, { database: location, kind, schema });
          else print(ctx, `${kind} ${location}\n${table(schema)}`);
          return EXIT.ok;
        },
        true,
      ),
  };
}

/** Prints what a retry or skip did; exit 1 when the stream is still parked. */
function released(
  ctx: Context,
  result: {
    published: number;
    parked: { position: number; bytes: number; limit: number } | undefined;
  },
): number {
  if (ctx.json) printJson(ctx, result);
  else if (result.parked)
    print(
      ctx,
      `published ${result.published}; still parked at position ${result.parked.position}: ` +
        `${result.parked.bytes} bytes, over the limit of ${result.parked.limit}`,
    );
  else print(ctx, `published ${result.published}; the stream is no longer parked`);
  return result.parked ? EXIT.failed : EXIT.ok;
}
