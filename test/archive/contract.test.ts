/**
 * The store contract suite against the archive-aware store (over SQLite and over PostgreSQL):
 * with nothing archived it must behave exactly like the store it wraps.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ArchiveAwareStore, DirectoryArchive } from 'tidemark';
import { PostgresEventStore } from 'tidemark/postgres';
import { SqliteDatabase, SqliteEventStore } from 'tidemark/sqlite';
import { eventStoreContract } from 'tidemark/testing';
import { schemaSource, type SchemaSource } from '../support/pg-schemas.ts';
import { createTestDatabase } from '../support/services.ts';

const dir = mkdtempSync(join(tmpdir(), 'tidemark-archive-contract-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
let source: SchemaSource;
before(async () => {
  source = schemaSource(await createTestDatabase('archive_contract'));
});
after(() => source.drop());

eventStoreContract(
  { describe, it },
  {
    name: 'archive-aware (sqlite)',
    fixture: async () => {
      const database = new SqliteDatabase(join(dir, `store-${++n}.db`));
      const segments = new DirectoryArchive(join(dir, `archive-${n}`));
      const store = new ArchiveAwareStore(new SqliteEventStore(database), segments);
      const others: ArchiveAwareStore[] = [];
      return {
        store,
        reopen: async ({ upcasters }) => {
          const hot = new SqliteEventStore(database, upcasters ? { upcasters } : {});
          const other = new ArchiveAwareStore(hot, segments);
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

eventStoreContract(
  { describe, it },
  {
    name: 'archive-aware (postgres)',
    fixture: async () => {
      const options = {
        connectionString: source.db.url,
        schema: source.schema('contract'),
        poolSize: 4,
      };
      const segments = new DirectoryArchive(join(dir, `archive-${++n}`));
      const store = new ArchiveAwareStore(await PostgresEventStore.connect(options), segments);
      const others: ArchiveAwareStore[] = [];
      return {
        store,
        reopen: async ({ upcasters }) => {
          const hot = await PostgresEventStore.connect({
            ...options,
            ...(upcasters ? { upcasters } : {}),
          });
          const other = new ArchiveAwareStore(hot, segments);
          others.push(other);
          return other;
        },
        dispose: async () => {
          for (const s of [store, ...others]) await s.close();
        },
      };
    },
  },
);
