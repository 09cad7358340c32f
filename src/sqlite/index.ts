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
