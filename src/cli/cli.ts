/**
 * The `tidemark` command: look into a store and operate its projections. Each command group
 * lives in commands/; the operations themselves are the library's (tidemark's
 * projectionStatus, rebuildProjection, retryParked, …), so a service or an admin page can call
 * them too.
 *
 * It connects with the same settings as the service: DATABASE_URL (a SQLite path by default
 * ./data/tidemark.db, or postgres://…) and KAFKA_BROKERS. Projection commands need the
 * application's projection definitions: a config file (tidemark.config.ts, .mjs or .js in the
 * working directory, or --config) whose default export is `{ projections, upcasters?, kafka? }`.
 *
 * Exit codes: 0 done; 1 the operation failed; 2 usage error (unknown command, bad option,
 * unknown projection); 3 not found (stream, parked event); 4 cannot reach the database.
 */
import { parseArgs } from 'node:util';
import { InvalidArgumentError, isTidemarkError } from '../index.ts';
import { archiveCommands } from './commands/archive.ts';
import { dlqCommands } from './commands/dlq.ts';
import { projectionCommands } from './commands/projections.ts';
import { relayCommands } from './commands/relay.ts';
import { streamCommands } from './commands/streams.ts';
import { subjectCommands } from './commands/subjects.ts';
import { CliError, EXIT, type Command, type Context } from './context.ts';

export { EXIT } from './context.ts';

const usage = `tidemark: look into a Tidemark store and operate its projections

Usage: tidemark [options] <command>

Commands:
  streams list [--prefix P] [--after ID] [--limit N]   streams and their versions
  streams show <streamId> [--from V] [--limit N]       a stream's events
  streams archive --older-than AGE [--dry-run] [--prefix P] [--segment-streams N]
                                                       move streams whose last event is older than
                                                       AGE (90d, 12h) and that the config's archive
                                                       policy accepts to the archive; shows
                                                       progress; Ctrl-C stops after the segment in
                                                       progress, a rerun goes on
  events tail [--after POSITION] [--limit N] [--follow]
                                                       the global log (--follow: wait for more)
  projections status                                   versions, feeds, lag, parked events
  projections rebuild <name> [--from store|kafka] [--drop-after MS]
                                                       build a new version beside the active one
                                                       (from the store, or from Kafka's earliest
                                                       offsets; default: the active version's
                                                       feed), switch over, drop the old
  projections reset <name> --yes                       drop every version (rebuilt from scratch
                                                       at the next start)
  dlq list [--projection NAME] [--stream ID] [--limit N]
                                                       parked (dead-letter) events
  dlq retry <projection> <streamId>                    apply a stream's parked events, in order
  dlq skip <projection> <eventId>                      drop one parked event
  relay status [--name NAME]                           what the Kafka relay has published, its
                                                       backlog, the store check, parked events
                                                       (needs KAFKA_BROKERS; exit 1 when the
                                                       relay would refuse this store)
  relay rebase [--name NAME] --to POSITION|head [--accept-partitions]
                                                       write new progress for this store (after a
                                                       refusal); fences a running relay
  relay parked [--name NAME]                           events too big to publish
  relay retry [--name NAME] --stream ID [--max-event-bytes B]
                                                       publish a parked stream (limit raised)
  relay skip [--name NAME] --stream ID                 drop its parked event, publish the rest
  subjects forget <subjectId>                          forget a data subject: delete its key (its
                                                       personal fields read as redacted everywhere)
                                                       and redact the read models (exit 3: unknown)
  migrate                                              create or upgrade the schema

Options:
  --database URL   the database (default: DATABASE_URL, else ./data/tidemark.db)
  --config FILE    the projections' config (default: ./tidemark.config.{ts,mjs,js})
  --archive DIR|s3://BUCKET/PREFIX
                   the archive of old streams (default: TIDEMARK_ARCHIVE_DIR, else the
                   config's archive.directory; S3: TIDEMARK_S3_ENDPOINT names an S3-compatible
                   server); commands read archived streams too
  --json           print JSON for scripts instead of tables
  -h, --help       this text

Exit codes: 0 done, 1 failed, 2 usage error, 3 not found, 4 database unreachable.
`;

const commands: Record<string, Command> = {
  ...streamCommands(usage),
  ...archiveCommands(usage),
  ...projectionCommands(usage),
  ...dlqCommands(usage),
  ...relayCommands(),
  ...subjectCommands(usage),
};

/**
 * Runs one command; resolves with its exit code. No side effect on import: the executable is
 * main.ts.
 */
export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        database: { type: 'string' },
        config: { type: 'string' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
        prefix: { type: 'string' },
        after: { type: 'string' },
        limit: { type: 'string' },
        from: { type: 'string' },
        follow: { type: 'boolean', default: false },
        projection: { type: 'string' },
        stream: { type: 'string' },
        yes: { type: 'boolean', default: false },
        'drop-after': { type: 'string' },
        name: { type: 'string' },
        to: { type: 'string' },
        'accept-partitions': { type: 'boolean', default: false },
        'max-event-bytes': { type: 'string' },
        archive: { type: 'string' },
        'older-than': { type: 'string' },
        'dry-run': { type: 'boolean', default: false },
        'segment-streams': { type: 'string' },
      },
    });
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n\n${usage}`);
    return EXIT.usage;
  }
  const { values, positionals } = parsed;
  if (values.help || positionals.length === 0) {
    (values.help ? process.stdout : process.stderr).write(usage);
    return values.help ? EXIT.ok : EXIT.usage;
  }
  const key = positionals[0] === 'migrate' ? 'migrate' : positionals.slice(0, 2).join(' ');
  const command = commands[key];
  if (!command) {
    process.stderr.write(`unknown command '${positionals.join(' ')}'\n\n${usage}`);
    return EXIT.usage;
  }
  const ctx: Context = {
    json: values.json === true,
    databaseUrl: values.database ?? (env.DATABASE_URL || './data/tidemark.db'),
    configPath: values.config ?? env.TIDEMARK_CONFIG,
    options: values,
    positionals,
    env,
    out: (text) => process.stdout.write(text),
    err: (text) => process.stderr.write(text),
  };
  try {
    return await command(ctx);
  } catch (error) {
    const code =
      error instanceof CliError
        ? error.exitCode
        : isTidemarkError(error, 'unavailable') || isTidemarkError(error, 'closed')
          ? EXIT.unavailable
          : isTidemarkError(error, 'stream_not_found')
            ? EXIT.notFound
            : error instanceof InvalidArgumentError
              ? EXIT.usage
              : EXIT.failed;
    process.stderr.write(`tidemark: ${(error as Error).message}\n`);
    return code;
  }
}
