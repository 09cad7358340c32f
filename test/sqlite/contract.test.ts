import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { SqliteDatabase, SqliteEventStore } from 'tidemark/sqlite';
import { eventStoreContract } from 'tidemark/testing';

const dir = mkdtempSync(join(tmpdir(), 'tidemark-sqlite-contract-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

for (const mode of ['file', 'memory'] as const) {
  eventStoreContract(
    { describe, it },
    {
      name: `sqlite (${mode})`,
      fixture: async () => {
        const database = new SqliteDatabase(
          mode === 'file' ? join(dir, `store-${++n}.db`) : ':memory:',
        );
        const store = new SqliteEventStore(database);
        const others: SqliteEventStore[] = [];
        return {
          store,
          reopen: async ({ upcasters }) => {
            const other = new SqliteEventStore(database, upcasters ? { upcasters } : {});
            others.push(other);
            return other;
          },
          dispose: async () => {
            for (const s of [store, ...others]) await s.close();
            await database.close();
          },
        };
      },
    },
  );
}
