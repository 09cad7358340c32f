/**
 * `tidemark/postgres`: the PostgreSQL event store and read-model sink (driver: `pg`).
 */
export { PostgresEventStore, type PostgresEventStoreOptions } from './event-store.ts';
export {
  isConnectionError,
  isTransientPostgresError,
  type PostgresConnectionOptions,
} from './connection.ts';
export { eventStoreMigrations } from './schema.ts';
export type { AppliedMigration } from './migrations.ts';
export { PostgresProjectionSink, type PostgresProjectionSinkOptions } from './projection-sink.ts';
export { PostgresSqlExecutor } from './sql-executor.ts';
export {
  PostgresSubjectKeyStore,
  subjectKeyMigrations,
  type PostgresSubjectKeyStoreOptions,
} from './subject-key-store.ts';
