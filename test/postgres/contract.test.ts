import { after, before, describe, it } from 'node:test';
import type { FullEventStore } from 'tidemark';
import { PostgresEventStore, type PostgresEventStoreOptions } from 'tidemark/postgres';
import { eventStoreContract } from 'tidemark/testing';
import { schemaSource, type SchemaSource } from '../support/pg-schemas.ts';
import { createTestDatabase } from '../support/services.ts';

let source: SchemaSource;
before(async () => {
  source = schemaSource(await createTestDatabase('contract'));
});
after(() => source.drop());

eventStoreContract(
  { describe, it },
  {
    name: 'postgres',
    fixture: async () => {
      // Each test gets a schema of its own in the file's database.
      const schema = source.schema('contract');
      const open = (options: Partial<PostgresEventStoreOptions>) =>
        PostgresEventStore.connect({
          connectionString: source.db.url,
          schema,
          poolSize: 5,
          ...options,
        });
      const store = await open({});
      const others: FullEventStore[] = [];
      return {
        store,
        reopen: async ({ upcasters }) => {
          const other = await open(upcasters ? { upcasters } : {});
          others.push(other);
          return other;
        },
        dispose: async () => {
          for (const s of [store, ...others]) await s.close();
          await source.sql(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
        },
      };
    },
  },
);
