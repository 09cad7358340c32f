// The projection runner contract, store-fed, events and read models in PostgreSQL.
import { after, before, describe, it } from 'node:test';
import { PostgresEventStore, PostgresProjectionSink } from 'tidemark/postgres';
import { projectionRunnerContract } from 'tidemark/testing';
import { postgresTransient, storeFed } from '../support/feed-fixtures.ts';
import { schemaSource, type SchemaSource } from '../support/pg-schemas.ts';
import { createTestDatabase } from '../support/services.ts';

let source: SchemaSource;
before(async () => {
  source = schemaSource(await createTestDatabase('contract'));
});
after(() => source.drop());

projectionRunnerContract(
  { describe, it },
  {
    name: 'store-fed × postgres',
    fixture: async () => {
      const schema = source.schema('contract');
      const options = { connectionString: source.db.url, schema, poolSize: 4 };
      const store = await PostgresEventStore.connect(options);
      const sink = await PostgresProjectionSink.connect(options);
      return storeFed(
        {
          store,
          sink,
          close: async () => {
            await sink.close();
            await store.close();
            await source.sql(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
          },
        },
        postgresTransient,
      );
    },
  },
);
