/** `tidemark relay status` (Kafka mode) and `tidemark migrate`. */
import { ledgerMigrations } from '../../index.ts';
import {
  CliError,
  EXIT,
  loadConfig,
  print,
  printJson,
  withStorage,
  type Command,
} from '../context.ts';
import { table } from '../format.ts';

export function relayCommands(): Record<string, Command> {
  return {
    'relay status': async (ctx) => {
      if (!ctx.env.KAFKA_BROKERS)
        throw new CliError('relay status needs KAFKA_BROKERS', EXIT.usage);
      const { kafkaConnectionFromEnv, readRelayProgress } = await import('../../kafka/index.ts');
      const connection = kafkaConnectionFromEnv(ctx.env);
      if (!connection) throw new CliError('relay status needs KAFKA_BROKERS', EXIT.usage);
      const config = await loadConfig(ctx);
      const name = (ctx.options.name as string | undefined) ?? config.relay?.name ?? 'default';
      const transactionalId = `tidemark-relay-${name}`;
      return withStorage(ctx, async ({ store }) => {
        const head = await store.headPosition();
        const position = await readRelayProgress(connection, {
          transactionalId,
          ...(config.relay?.progressTopic ? { progressTopic: config.relay.progressTopic } : {}),
          timeoutMs: 15_000,
        });
        const status = {
          name,
          transactionalId,
          published: position,
          head,
          backlog: Math.max(0, head - position),
        };
        if (ctx.json) printJson(ctx, status);
        else print(ctx, table([status]));
        return EXIT.ok;
      });
    },

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
