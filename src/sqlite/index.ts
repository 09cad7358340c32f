export {
  SqliteDatabase,
  type Migration,
  type SqliteDatabaseOptions,
  type SqliteSynchronous,
} from './database.ts';
export {
  SqliteEventStore,
  eventStoreMigrations,
  type SqliteEventStoreOptions,
} from './event-store.ts';
export { SqliteProjectionSink, type SqliteProjectionSinkOptions } from './projection-sink.ts';
export { SqliteSqlExecutor, compilePlaceholders } from './sql-executor.ts';
export { SqliteSubjectKeyStore, subjectKeyMigrations } from './subject-key-store.ts';
