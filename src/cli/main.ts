/**
 * The `tidemark` command: look into a store and operate its projections.
 *
 * It connects with the same settings as the service: DATABASE_URL (a SQLite path by default
 * ./data/tidemark.db, or postgres://…) and KAFKA_BROKERS. Projection commands need the
 * application's projection definitions: a config file (tidemark.config.ts, .mjs or .js in the
 * working directory, or --config) whose default export is `{ projections, upcasters? }`.
 *
 * Exit codes: 0 done; 1 the operation failed; 2 usage error (unknown command, bad option,
 * unknown projection); 3 not found (stream, parked event); 4 cannot reach the database.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import {
  InvalidArgumentError,
  ProjectionRunner,
  isTidemarkError,
  ledger,
  ledgerMigrations,
  openStorage,
  dropRetired,
  registerRebuild,
  resetProjection,
  sqlitePath,
  type ProjectionDefinition,
  type RecordedEvent,
  type Storage,
  type TidemarkConfig,
} from '../index.ts';
import { progressLine, table } from './format.ts';

export const EXIT = { ok: 0, failed: 1, usage: 2, notFound: 3, unavailable: 4 } as const;

class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number) {
    super(message);
    this.exitCode = exitCode;
  }
}

const usage = `tidemark: look into a Tidemark store and operate its projections

Usage: tidemark [options] <command>

Commands:
  streams list [--prefix P] [--after ID] [--limit N]   streams and their versions
  streams show <streamId> [--from V] [--limit N]       a stream's events
  events tail [--after POSITION] [--limit N] [--follow]
                                                       the global log (--follow: wait for more)
  projections status                                   versions, positions, lag, parked events
  projections rebuild <name> [--from store|kafka] [--drop-after MS]
                                                       build a new version beside the active one
                                                       (from the store, or from Kafka's earliest
                                                       offsets), switch over, drop the old
  projections reset <name> --yes                       drop every version (rebuilt from scratch
                                                       at the next start)
  dlq list [--projection NAME] [--stream ID] [--limit N]
                                                       parked (dead-letter) events
  dlq retry <projection> <streamId>                    apply a stream's parked events, in order
  dlq skip <projection> <eventId>                      drop one parked event
  relay status [--name NAME]                           what the Kafka relay has published, and
                                                       its backlog (needs KAFKA_BROKERS)
  migrate                                              create or upgrade the schema

Options:
  --database URL   the database (default: DATABASE_URL, else ./data/tidemark.db)
  --config FILE    the projections' config (default: ./tidemark.config.{ts,mjs,js})
  --json           print JSON for scripts instead of tables
  -h, --help       this text

Exit codes: 0 done, 1 failed, 2 usage error, 3 not found, 4 database unreachable.
`;

interface Context {
  json: boolean;
  databaseUrl: string;
  configPath: string | undefined;
  options: Record<string, string | boolean | undefined>;
  positionals: string[];
}

const print = (text: string) => process.stdout.write(`${text}\n`);
const printJson = (value: unknown) => process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);

function intOption(ctx: Context, name: string, fallback?: number): number | undefined {
  const raw = ctx.options[name];
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (typeof raw !== 'string' || !Number.isSafeInteger(value) || value < 0) {
    throw new CliError(`--${name} takes a non-negative integer, not '${String(raw)}'`, EXIT.usage);
  }
  return value;
}

function arg(ctx: Context, index: number, name: string): string {
  const value = ctx.positionals[index];
  if (!value) throw new CliError(`missing <${name}>\n\n${usage}`, EXIT.usage);
  return value;
}

async function loadConfig(ctx: Context): Promise<TidemarkConfig> {
  const candidates = ctx.configPath
    ? [resolve(ctx.configPath)]
    : ['tidemark.config.ts', 'tidemark.config.mjs', 'tidemark.config.js'].map((f) => resolve(f));
  const found = candidates.find((f) => existsSync(f));
  if (!found) {
    if (ctx.configPath) throw new CliError(`config file not found: ${ctx.configPath}`, EXIT.usage);
    return {};
  }
  const module = (await import(pathToFileURL(found).href)) as { default?: TidemarkConfig };
  return module.default ?? {};
}

async function projectionNamed(ctx: Context, name: string): Promise<ProjectionDefinition> {
  const config = await loadConfig(ctx);
  const definition = config.projections?.find((p) => p.name === name);
  if (!definition) {
    const known =
      config.projections?.map((p) => p.name).join(', ') || 'none (no config file found)';
    throw new CliError(`unknown projection '${name}'; known: ${known}`, EXIT.usage);
  }
  return definition;
}

async function open(ctx: Context, { create = false } = {}): Promise<Storage> {
  const path = sqlitePath(ctx.databaseUrl);
  if (path !== undefined && path !== ':memory:' && !create && !existsSync(path)) {
    throw new CliError(`no database at ${path} (set DATABASE_URL or --database)`, EXIT.unavailable);
  }
  const config = await loadConfig(ctx);
  return openStorage(ctx.databaseUrl, config.upcasters ? { upcasters: config.upcasters } : {});
}

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

async function withStorage<T>(
  ctx: Context,
  work: (storage: Storage) => Promise<T>,
  create = false,
): Promise<T> {
  const storage = await open(ctx, { create });
  try {
    return await work(storage);
  } finally {
    await storage.close();
  }
}

/** A rebuild in progress, whatever feeds it. */
interface Rebuild {
  start(): Promise<void>;
  whenCaughtUp(): Promise<boolean>;
  /** Events (or records) applied so far, and how many there are to apply. */
  progress(): Promise<{ done: number; total: number }>;
  stop(): Promise<void>;
}

function storeRebuild(runner: ProjectionRunner, store: Storage['store']): Rebuild {
  return {
    start: () => runner.start(),
    whenCaughtUp: () => runner.whenCaughtUp(),
    stop: () => runner.stop(),
    async progress() {
      return {
        done: runner.position,
        total: Math.max(runner.position, await store.headPosition()),
      };
    },
  };
}

/** A rebuild from Kafka's earliest offsets, through a consumer group of its own. */
async function kafkaRebuilder(config: TidemarkConfig) {
  const { KafkaProjectionRunner, kafkaConnectionFromEnv } = await import('../kafka/index.ts');
  const connection = kafkaConnectionFromEnv(process.env);
  if (!connection) throw new CliError('a rebuild from Kafka needs KAFKA_BROKERS', EXIT.usage);
  const topics = config.kafka?.topics;
  if (!topics || topics.length === 0) {
    throw new CliError('a rebuild from Kafka needs kafka.topics in the config', EXIT.usage);
  }
  return async (
    definition: ProjectionDefinition,
    sink: Storage['sink'],
    version: number,
    dropGraceMs: number,
  ): Promise<Rebuild> => {
    const runner = new KafkaProjectionRunner({
      projection: definition,
      sink,
      connection,
      topics,
      version,
      dropGraceMs,
      ...(config.kafka?.groupPrefix ? { groupPrefix: config.kafka.groupPrefix } : {}),
      ...(config.upcasters ? { upcasters: config.upcasters } : {}),
    });
    let total = 0;
    return {
      start: () => runner.start(),
      whenCaughtUp: () => runner.whenCaughtUp(),
      stop: () => runner.stop(),
      async progress() {
        const status = await runner.status();
        const applied = status.partitions.reduce((sum, p) => sum + p.offset, 0);
        total = Math.max(
          total,
          status.partitions.reduce((sum, p) => sum + p.end, 0),
        );
        return { done: applied, total };
      },
    };
  };
}

const commands: Record<string, (ctx: Context) => Promise<number>> = {
  'streams list': (ctx) =>
    withStorage(ctx, async ({ store }) => {
      const prefix = ctx.options.prefix as string | undefined;
      const after = ctx.options.after as string | undefined;
      const streams = await store.listStreams({
        limit: intOption(ctx, 'limit', 100)!,
        ...(prefix ? { prefix } : {}),
        ...(after ? { after } : {}),
      });
      if (ctx.json) printJson(streams);
      else print(table(streams, ['streamId', 'version', 'position', 'updatedAt']));
      return EXIT.ok;
    }),

  'streams show': (ctx) =>
    withStorage(ctx, async ({ store }) => {
      const streamId = arg(ctx, 2, 'streamId');
      const events = await store.readStream(streamId, {
        fromVersion: intOption(ctx, 'from', 1)! || 1,
        maxCount: intOption(ctx, 'limit', 1000)! || 1,
      });
      if (events.length === 0 && (await store.streamVersion(streamId)) === 0) {
        throw new CliError(`no stream '${streamId}'`, EXIT.notFound);
      }
      if (ctx.json) printJson(events);
      else
        print(table(events.map(eventRow), ['version', 'position', 'type', 'recordedAt', 'data']));
      return EXIT.ok;
    }),

  'events tail': (ctx) =>
    withStorage(ctx, async ({ store }) => {
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
          if (ctx.json) process.stdout.write(`${JSON.stringify(e)}\n`);
          else
            print(
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
    }),

  'projections status': (ctx) =>
    withStorage(ctx, async ({ store, sink }) => {
      await sink.migrate('projections', ledgerMigrations);
      const head = await store.headPosition();
      const rows = await ledger.projections(sink);
      const config = await loadConfig(ctx);
      const statuses = await Promise.all(
        rows.map(async (row) => {
          const parked = await ledger.parkedCount(sink, row.name, row.version);
          const lagEvents = Math.max(0, head - row.position);
          let lagSeconds = 0;
          if (lagEvents > 0) {
            const [next] = await store.readAll({ after: row.position, maxCount: 1 });
            if (next) lagSeconds = Math.round((Date.now() - next.recordedAt.getTime()) / 100) / 10;
          }
          const definition = config.projections?.find((p) => p.name === row.name);
          return {
            name: row.name,
            version: row.version,
            codeVersion: row.codeVersion,
            state: row.state,
            position: row.position,
            head,
            lagEvents,
            lagSeconds,
            parked,
            ...(config.projections ? { deployedCodeVersion: definition?.version ?? null } : {}),
          };
        }),
      );
      if (ctx.json) printJson(statuses);
      else print(table(statuses));
      return EXIT.ok;
    }),

  'projections rebuild': async (ctx) => {
    const definition = await projectionNamed(ctx, arg(ctx, 2, 'name'));
    const dropAfterMs = intOption(ctx, 'drop-after', 10_000)!;
    const from = (ctx.options.from as string | undefined) ?? 'store';
    if (from !== 'store' && from !== 'kafka') {
      throw new CliError(`--from takes store or kafka, not '${from}'`, EXIT.usage);
    }
    const config = await loadConfig(ctx);
    return withStorage(ctx, async ({ store, sink }) => {
      await sink.migrate('projections', ledgerMigrations);
      const runner = from === 'kafka' ? await kafkaRebuilder(config) : undefined;
      // The versions there before: after the switch-over and the grace period, those retired
      // are dropped (by this process, or by the runner's own timer).
      const earlier = (await ledger.projections(sink, definition.name)).map((r) => r.version);
      const row = await registerRebuild(sink, definition);
      const rebuild: Rebuild = runner
        ? await runner(definition, sink, row.version, dropAfterMs)
        : storeRebuild(
            new ProjectionRunner({
              projection: definition,
              store,
              sink,
              version: row.version,
              dropGraceMs: dropAfterMs,
            }),
            store,
          );
      const tty = process.stderr.isTTY === true;
      process.stderr.write(
        `rebuilding ${definition.name} as version ${row.version} from ${from === 'kafka' ? "Kafka's earliest offsets" : 'the store'}\n`,
      );
      const started = Date.now();
      let last = 0;
      const report = async (final = false) => {
        const { done, total } = await rebuild.progress();
        const elapsed = (Date.now() - started) / 1000;
        const line = progressLine({
          done,
          total: Math.max(total, done),
          perSecond: elapsed > 0 ? done / elapsed : 0,
        });
        if (tty) process.stderr.write(`\r${line}${final ? '\n' : ''}`);
        else if (final || Date.now() - last >= 2000) {
          process.stderr.write(`${line}\n`);
          last = Date.now();
        }
      };
      await rebuild.start();
      const ticker = setInterval(() => void report(), tty ? 200 : 2000);
      const caughtUp = await rebuild.whenCaughtUp();
      clearInterval(ticker);
      await report(true);
      if (!caughtUp) {
        await rebuild.stop();
        throw new CliError('the rebuild stopped before it caught up', EXIT.failed);
      }
      const buildSeconds = (Date.now() - started) / 1000;
      const active = await ledger.activeVersion(sink, definition.name);
      process.stderr.write(`switched over: queries now read version ${active}\n`);
      // Queries that started on the old version get the grace period to finish.
      if (dropAfterMs > 0) process.stderr.write(`dropping the old version in ${dropAfterMs} ms\n`);
      await new Promise((done) => setTimeout(done, dropAfterMs));
      await dropRetired(sink, definition.name, dropAfterMs);
      const { done: events } = await rebuild.progress();
      await rebuild.stop();
      const left = new Set((await ledger.projections(sink, definition.name)).map((r) => r.version));
      const dropped = earlier.filter((v) => !left.has(v));
      const result = {
        projection: definition.name,
        version: row.version,
        from,
        events,
        /** From the start to the switch-over (the drop's grace period not counted). */
        seconds: buildSeconds,
        dropped,
        // The rebuild reads and applies in bounded batches: memory stays flat whatever the log.
        peakRssMb: Math.round(process.resourceUsage().maxRSS / 102.4) / 10,
      };
      if (ctx.json) printJson(result);
      else
        print(
          `done: ${definition.name} v${row.version} active; dropped ${dropped.length ? dropped.map((v) => `v${v}`).join(', ') : 'nothing'}`,
        );
      return EXIT.ok;
    });
  },

  'projections reset': (ctx) =>
    withStorage(ctx, async ({ sink }) => {
      const name = arg(ctx, 2, 'name');
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
      if (ctx.json) printJson({ projection: name, dropped });
      else print(`dropped ${name} versions ${dropped.join(', ')}; the next start rebuilds it`);
      return EXIT.ok;
    }),

  'dlq list': (ctx) =>
    withStorage(ctx, async ({ sink }) => {
      await sink.migrate('projections', ledgerMigrations);
      const projection = ctx.options.projection as string | undefined;
      const stream = ctx.options.stream as string | undefined;
      const parked = await ledger.parked(sink, {
        limit: intOption(ctx, 'limit', 100)!,
        ...(projection ? { name: projection } : {}),
        ...(stream ? { streamId: stream } : {}),
      });
      if (ctx.json) printJson(parked);
      else
        print(
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
    const definition = await projectionNamed(ctx, arg(ctx, 2, 'projection'));
    const streamId = arg(ctx, 3, 'streamId');
    return withStorage(ctx, async ({ store, sink }) => {
      await sink.migrate('projections', ledgerMigrations);
      const versions = await parkedVersions(sink, definition.name, { streamId });
      if (versions.length === 0)
        throw new CliError(
          `no parked events of '${streamId}' in ${definition.name}`,
          EXIT.notFound,
        );
      let applied = 0;
      for (const version of versions) {
        const runner = new ProjectionRunner({ projection: definition, store, sink, version });
        await runner.start();
        try {
          applied += await runner.applier.retryParked(streamId);
        } catch (error) {
          throw new CliError(
            `the retry failed, the events stay parked: ${(error as Error).message}`,
            EXIT.failed,
          );
        } finally {
          await runner.stop();
        }
      }
      if (ctx.json) printJson({ projection: definition.name, streamId, applied });
      else print(`applied ${applied} parked event(s) of ${streamId} to ${definition.name}`);
      return EXIT.ok;
    });
  },

  'dlq skip': (ctx) =>
    withStorage(ctx, async ({ sink }) => {
      const name = arg(ctx, 2, 'projection');
      const eventId = arg(ctx, 3, 'eventId');
      await sink.migrate('projections', ledgerMigrations);
      const versions = await parkedVersions(sink, name, { eventId });
      if (versions.length === 0)
        throw new CliError(`no parked event ${eventId} in ${name}`, EXIT.notFound);
      await sink.transaction(async (sql) => {
        for (const version of versions) await ledger.unpark(sql, name, version, eventId);
      });
      if (ctx.json) printJson({ projection: name, eventId, skipped: true });
      else
        print(
          `skipped ${eventId} in ${name}; retry its stream to apply the events parked behind it`,
        );
      return EXIT.ok;
    }),

  'relay status': async (ctx) => {
    const { kafkaConnectionFromEnv, readRelayProgress } = await import('../kafka/index.ts');
    const connection = kafkaConnectionFromEnv(process.env);
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
      if (ctx.json) printJson(status);
      else print(table([status]));
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
        if (ctx.json) printJson({ database: location, kind, schema });
        else print(`${kind} ${location}\n${table(schema)}`);
        return EXIT.ok;
      },
      true,
    ),
};

async function parkedVersions(
  sink: Storage['sink'],
  name: string,
  filter: { streamId?: string; eventId?: string },
): Promise<number[]> {
  const parked = await ledger.parked(sink, {
    name,
    ...(filter.streamId ? { streamId: filter.streamId } : {}),
    limit: 100_000,
  });
  const matching = filter.eventId
    ? parked.filter((p) => p.event.eventId === filter.eventId)
    : parked;
  return [...new Set(matching.map((p) => p.version))];
}

export async function main(argv: string[]): Promise<number> {
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
    databaseUrl: values.database ?? (process.env.DATABASE_URL || './data/tidemark.db'),
    configPath: values.config ?? process.env.TIDEMARK_CONFIG,
    options: values,
    positionals,
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

process.exitCode = await main(process.argv.slice(2));
