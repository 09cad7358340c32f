/**
 * What every CLI command shares: parsed options, the config file, storage, the feeds, output.
 * Commands parse their arguments and print; the work itself is the library's.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  openStorage,
  segmentStoreAt,
  sqlitePath,
  storeFeed,
  type Feed,
  type FeedKind,
  type ProjectionDefinition,
  type ProjectionOperations,
  type Storage,
  type TidemarkConfig,
} from '../index.ts';

export const EXIT = { ok: 0, failed: 1, usage: 2, notFound: 3, unavailable: 4 } as const;

/** An error with the exit code it ends the command with. */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number) {
    super(message);
    this.exitCode = exitCode;
  }
}

export interface Context {
  json: boolean;
  databaseUrl: string;
  configPath: string | undefined;
  options: Record<string, string | boolean | undefined>;
  positionals: string[];
  env: NodeJS.ProcessEnv;
  out: (text: string) => void;
  err: (text: string) => void;
}

export type Command = (ctx: Context) => Promise<number>;

export const print = (ctx: Context, text: string) => ctx.out(`${text}\n`);
export const printJson = (ctx: Context, value: unknown) =>
  ctx.out(`${JSON.stringify(value, null, 2)}\n`);

export function intOption(ctx: Context, name: string, fallback?: number): number | undefined {
  const raw = ctx.options[name];
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (typeof raw !== 'string' || !Number.isSafeInteger(value) || value < 0) {
    throw new CliError(`--${name} takes a non-negative integer, not '${String(raw)}'`, EXIT.usage);
  }
  return value;
}

export function arg(ctx: Context, index: number, name: string, usage: string): string {
  const value = ctx.positionals[index];
  if (!value) throw new CliError(`missing <${name}>\n\n${usage}`, EXIT.usage);
  return value;
}

const configs = new Map<string, Promise<TidemarkConfig>>();

const TYPESCRIPT = /\.[mc]?ts$/;

/**
 * Whether this Node loads TypeScript by stripping types: Node 22.18+ and 23.6+ do by default,
 * unless started with --no-experimental-strip-types; older ones throw ERR_UNKNOWN_FILE_EXTENSION.
 */
const stripsTypes = (): boolean =>
  Boolean((process.features as { typescript?: string | false }).typescript);

/**
 * The application's config file (--config or TIDEMARK_CONFIG, else tidemark.config.ts, .mjs or
 * .js in the working directory); {} when none. A TypeScript config on a Node that cannot strip
 * types is a usage error that says what to do, not Node's bare "Unknown file extension".
 */
export function loadConfig(ctx: Context): Promise<TidemarkConfig> {
  const candidates = ctx.configPath
    ? [resolve(ctx.configPath)]
    : ['tidemark.config.ts', 'tidemark.config.mjs', 'tidemark.config.js'].map((f) => resolve(f));
  const present = candidates.filter((f) => existsSync(f));
  // Without type stripping, a JavaScript config beside the TypeScript one is the one to load.
  const found = stripsTypes()
    ? present[0]
    : (present.find((f) => !TYPESCRIPT.test(f)) ?? present[0]);
  if (!found) {
    if (ctx.configPath) throw new CliError(`config file not found: ${ctx.configPath}`, EXIT.usage);
    return Promise.resolve({});
  }
  if (TYPESCRIPT.test(found) && !stripsTypes()) {
    throw new CliError(
      `${ctx.configPath ?? 'tidemark.config.ts'} is TypeScript, and this Node (${process.version}) ` +
        'does not strip types (Node 22.18+ or 24 does, unless --no-experimental-strip-types); ' +
        'run tidemark on such a Node, or give a JavaScript config with --config or ' +
        'TIDEMARK_CONFIG (a build compiles one; see docs/cli.md)',
      EXIT.usage,
    );
  }
  let config = configs.get(found);
  if (!config) {
    config = import(pathToFileURL(found).href).then(
      (module: { default?: TidemarkConfig }) => module.default ?? {},
    );
    configs.set(found, config);
  }
  return config;
}

export async function projectionNamed(ctx: Context, name: string): Promise<ProjectionDefinition> {
  const config = await loadConfig(ctx);
  const definition = config.projections?.find((p) => p.name === name);
  if (!definition) {
    const known =
      config.projections?.map((p) => p.name).join(', ') || 'none (no config file found)';
    throw new CliError(`unknown projection '${name}'; known: ${known}`, EXIT.usage);
  }
  return definition;
}

async function open(ctx: Context, create: boolean): Promise<Storage> {
  const path = sqlitePath(ctx.databaseUrl);
  if (path !== undefined && path !== ':memory:' && !create && !existsSync(path)) {
    throw new CliError(`no database at ${path} (set DATABASE_URL or --database)`, EXIT.unavailable);
  }
  const config = await loadConfig(ctx);
  const location = archiveDirectoryOf(ctx, config);
  return openStorage(ctx.databaseUrl, {
    ...(config.upcasters ? { upcasters: config.upcasters } : {}),
    ...(config.personalData ? { personalData: config.personalData } : {}),
    ...(location !== undefined ? { archive: await segmentStoreAt(location, ctx.env) } : {}),
  });
}

/**
 * The archive: `--archive DIR|s3://BUCKET/PREFIX`, else TIDEMARK_ARCHIVE_DIR, else the config's.
 * With one, every command reads archived streams too (docs/retention.md).
 */
export function archiveDirectoryOf(ctx: Context, config: TidemarkConfig): string | undefined {
  const option = ctx.options.archive;
  if (typeof option === 'string' && option !== '') return option;
  return ctx.env.TIDEMARK_ARCHIVE_DIR || config.archive?.directory;
}

/** Runs `work` with the storage the context names, and closes it after. */
export async function withStorage<T>(
  ctx: Context,
  work: (storage: Storage) => Promise<T>,
  create = false,
): Promise<T> {
  const storage = await open(ctx, create);
  try {
    return await work(storage);
  } finally {
    await storage.close();
  }
}

/**
 * The feeds this invocation can reach: the store's log always, Kafka when KAFKA_BROKERS is set
 * and the config names the topics. `required`: fail with a usage error when that one is missing.
 */
export async function feeds(
  ctx: Context,
  storage: Storage,
  required?: FeedKind,
): Promise<Partial<Record<FeedKind, Feed>>> {
  const result: Partial<Record<FeedKind, Feed>> = { store: storeFeed(storage.store) };
  const config = await loadConfig(ctx);
  if (!ctx.env.KAFKA_BROKERS) {
    // Kafka's client is an optional dependency: load it only when Kafka is configured.
    if (required === 'kafka') {
      throw new CliError('Kafka-fed projections need KAFKA_BROKERS', EXIT.usage);
    }
    return result;
  }
  const { EventTopics, kafkaConnectionFromEnv, kafkaFeed } = await import('../kafka/index.ts');
  const connection = kafkaConnectionFromEnv(ctx.env);
  const topics = config.kafka?.topics;
  if (connection && topics && topics.length > 0) {
    result.kafka = kafkaFeed({
      connection,
      topics,
      ...(config.kafka?.groupPrefix ? { groupPrefix: config.kafka.groupPrefix } : {}),
      ...(config.kafka?.sources ? { sources: config.kafka.sources } : {}),
      ...(storage.store.personalData ? { personalData: storage.store.personalData } : {}),
      // What retention dropped is filled from the store (docs/retention.md).
      ...(config.kafka?.categories
        ? {
            backfill: {
              store: storage.store,
              topics: new EventTopics({ categories: config.kafka.categories }),
            },
          }
        : {}),
    });
  } else if (required === 'kafka') {
    throw new CliError(
      connection
        ? 'Kafka-fed projections need kafka.topics in the config'
        : 'Kafka-fed projections need KAFKA_BROKERS',
      EXIT.usage,
    );
  }
  return result;
}

/** The operations context of the library, for this invocation. */
export async function operations(
  ctx: Context,
  storage: Storage,
  required?: FeedKind,
): Promise<ProjectionOperations & { close(): Promise<void> }> {
  const config = await loadConfig(ctx);
  const found = await feeds(ctx, storage, required);
  return {
    sink: storage.sink,
    feeds: found,
    ...(config.upcasters ? { upcasters: config.upcasters } : {}),
    ...(storage.store.personalData ? { personalData: storage.store.personalData } : {}),
    close: async () => {
      for (const feed of Object.values(found)) await feed.close?.();
    },
  };
}
