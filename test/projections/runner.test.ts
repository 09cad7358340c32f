import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { SqliteDatabase, SqliteEventStore, SqliteProjectionSink } from 'tidemark/sqlite';
import { runnerScenarios } from './runner-suite.ts';

const dir = mkdtempSync(join(tmpdir(), 'tidemark-runner-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

runnerScenarios({
  name: 'sqlite',
  async setup() {
    const database = new SqliteDatabase(join(dir, `db-${++n}.sqlite`));
    const store = new SqliteEventStore(database);
    const sink = new SqliteProjectionSink(database);
    return { store, sink, close: () => database.close() };
  },
  transientError: () => Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' }),
});
