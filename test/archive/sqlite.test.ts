// The archive suite against a real SQLite file.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteDatabase, SqliteEventStore, SqliteProjectionSink } from 'tidemark/sqlite';
import { archiveSuite } from './suite.ts';

archiveSuite('SQLite', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tidemark-archive-db-'));
  const database = new SqliteDatabase(join(dir, 'db.sqlite'));
  const clock = { now: new Date() };
  return {
    store: new SqliteEventStore(database, { now: () => clock.now }),
    sink: new SqliteProjectionSink(database),
    clock,
    close: async () => {
      await database.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});
