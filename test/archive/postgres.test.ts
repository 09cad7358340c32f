// The archive suite against a real PostgreSQL database (a schema per test).
import { after, before } from 'node:test';
import { PostgresEventStore, PostgresProjectionSink } from 'tidemark/postgres';
import { schemaSource, type SchemaSource } from '../support/pg-schemas.ts';
import { createTestDatabase } from '../support/services.ts';
import { archiveSuite } from './suite.ts';

let source: SchemaSource;
before(async () => {
  source = schemaSource(await createTestDatabase('archive'));
});
after(() => source.drop());

archiveSuite('PostgreSQL', async (label) => {
  const schema = source.schema(label);
  const clock = { now: new Date() };
  const options = { connectionString: source.db.url, schema, poolSize: 4 };
  const store = await PostgresEventStore.connect({ ...options, now: () => clock.now });
  const sink = await PostgresProjectionSink.connect(options);
  return {
    store,
    sink,
    clock,
    close: async () => {
      await sink.close();
      await store.close();
    },
  };
});
