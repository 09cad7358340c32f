/**
 * Opens the event store and the read-model sink a database URL names, loading only the driver
 * it needs (better-sqlite3 and pg are optional peer dependencies).
 *
 * - a file path, `sqlite:<path>`, `sqlite://<path>` or `sqlite::memory:`: one SQLite file holding
 *   events and read models, one writer for both (group commit);
 * - `postgres://…` or `postgresql://…`: PostgreSQL, events and read models in the same database.
 */
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import {
  InvalidArgumentError,
  silentLogger,
  type FullEventStore,
  type Logger,
  type PersonalData,
  type ProjectionSink,
  type SubjectKeyStore,
  type Upcasters,
  type ArchivalTables,
  type SegmentStore,
} from './core/index.ts';
import { protectPersonalData } from './personal-data/protected-store.ts';
import { ArchiveAwareStore, type ArchivableStore } from './archive/archive-aware-store.ts';
import { DirectoryArchive } from './archive/segments.ts';

export interface Storage {
  kind: 'sqlite' | 'postgres';
  /** Where it is, without credentials (for logs). */
  location: string;
  /** The store; with `personalData`, the protecting wrapper over it (docs/personal-data.md). */
  store: FullEventStore;
  sink: ProjectionSink;
  /** Subject keys, in the same database (tables `tm_subject_keys`, `tm_subject_streams`). */
  subjectKeys: SubjectKeyStore;
  /** With `archiveDirectory`: the hot store's archive index and the segment files. */
  archive?: { tables: ArchivalTables; segments: SegmentStore };
  close(): Promise<void>;
}

export interface OpenStorageOptions {
  upcasters?: Upcasters;
  /** The personal fields to seal: `store` is then wrapped by `protectPersonalData`. */
  personalData?: PersonalData;
  logger?: Logger;
  /** SQLite: create the file's folder when missing. Default true. */
  createDirectory?: boolean;
  /**
   * The archive's directory of segment files (docs/retention.md). With it, `store` is an
   * {@link ArchiveAwareStore}: archived streams are read from there too.
   */
  archiveDirectory?: string;
  /** The archive's segments in another store (an `S3Archive`, say); wins over `archiveDirectory`. */
  archive?: SegmentStore;
}

/** The storage with its store made archive-aware, when an archive directory is given. */
function withArchive(storage: Storage, options: OpenStorageOptions): Storage {
  const directory = options.archiveDirectory;
  if (directory === undefined && options.archive === undefined) return storage;
  const hot = storage.store as ArchivableStore;
  const segments = options.archive ?? new DirectoryArchive(directory!);
  const store = new ArchiveAwareStore(hot, segments);
  return { ...storage, store, archive: { tables: store.tables, segments } };
}

const POSTGRES_URL = /^postgres(ql)?:\/\//i;

/** The SQLite file a URL names, or undefined when it names PostgreSQL. */
export function sqlitePath(url: string): string | undefined {
  if (POSTGRES_URL.test(url)) return undefined;
  if (url.startsWith('sqlite://')) return url.slice('sqlite://'.length) || ':memory:';
  if (url.startsWith('sqlite:')) return url.slice('sqlite:'.length) || ':memory:';
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
    throw new InvalidArgumentError(
      'databaseUrl',
      `unsupported database URL scheme '${url.split(':')[0]}:'`,
    );
  }
  if (url === '') throw new InvalidArgumentError('databaseUrl', 'is empty');
  return url;
}

/** A URL without its password, for logs. */
export function redactUrl(url: string): string {
  return url.replace(/^(postgres(?:ql)?:\/\/[^:/@]+):[^@]*@/i, '$1:***@');
}

export async function openStorage(
  databaseUrl: string,
  options: OpenStorageOptions = {},
): Promise<Storage> {
  const logger = options.logger ?? silentLogger;
  const path = sqlitePath(databaseUrl);
  if (path === undefined) {
    const { PostgresEventStore, PostgresProjectionSink } = await import('./postgres/index.ts');
    const store = await PostgresEventStore.connect({
      connectionString: databaseUrl,
      logger,
      ...(options.upcasters ? { upcasters: options.upcasters } : {}),
    });
    let sink: ProjectionSink & { close(): Promise<void> };
    try {
      sink = await PostgresProjectionSink.connect({ connectionString: databaseUrl, logger });
    } catch (error) {
      await store.close();
      throw error;
    }
    let subjectKeys: SubjectKeyStore & { close(): Promise<void> };
    try {
      const { PostgresSubjectKeyStore } = await import('./postgres/index.ts');
      subjectKeys = await PostgresSubjectKeyStore.connect({
        connectionString: databaseUrl,
        logger,
      });
    } catch (error) {
      await store.close();
      await sink.close();
      throw error;
    }
    const location = redactUrl(databaseUrl);
    logger.info({ database: location }, 'storage: PostgreSQL');
    return sealed(
      withArchive(
        {
          kind: 'postgres',
          location,
          store,
          sink,
          subjectKeys,
          close: async () => {
            await store.close();
            await sink.close();
            await subjectKeys.close();
          },
        },
        options,
      ),
      options.personalData,
    );
  }
  const { SqliteDatabase, SqliteEventStore, SqliteProjectionSink, SqliteSubjectKeyStore } =
    await import('./sqlite/index.ts');
  if (path !== ':memory:' && options.createDirectory !== false)
    mkdirSync(dirname(resolve(path)), { recursive: true });
  const database = new SqliteDatabase(path);
  const store = new SqliteEventStore(
    database,
    options.upcasters ? { upcasters: options.upcasters } : {},
  );
  const sink = new SqliteProjectionSink(database);
  const subjectKeys = new SqliteSubjectKeyStore(database);
  logger.info({ database: path }, 'storage: SQLite');
  return sealed(
    withArchive(
      {
        kind: 'sqlite',
        location: path,
        store,
        sink,
        subjectKeys,
        close: async () => {
          await store.close();
          await database.close();
        },
      },
      options,
    ),
    options.personalData,
  );
}

/**
 * With `personalData`, the store seals personal fields. The protecting wrapper is outermost:
 * events read from the archive open like the hot store's, and the archiver, which reads the hot
 * store itself, copies them sealed.
 */
function sealed(storage: Storage, personalData: PersonalData | undefined): Storage {
  if (!personalData) return storage;
  const keys = storage.subjectKeys;
  return { ...storage, store: protectPersonalData(storage.store, { personalData, keys }) };
}
