// The projection runner contract, Kafka-fed, into SQLite and into PostgreSQL (the events are
// appended to a store and published by a relay, as in production).
import { after, before, describe, it } from 'node:test';
import { PostgresEventStore, PostgresProjectionSink } from 'tidemark/postgres';
import { projectionRunnerContract } from 'tidemark/testing';
import {
  kafkaFed,
  postgresTransient,
  sqliteStorage,
  sqliteTransient,
} from '../support/feed-fixtures.ts';
import { schemaSource, type SchemaSource } from '../support/pg-schemas.ts';
import { createTestDatabase, kafkaConnection } from '../support/services.ts';

let source: SchemaSource;
before(async () => {
  kafkaConnection();
  source = schemaSource(await createTestDatabase('kafka_contract'));
});
after(() => source.drop());

projectionRunnerContract(
  { describe, it },
  {
    name: 'kafka-fed × sqlite',
    fixture: () => kafkaFed(sqliteStorage(), sqliteTransient),
  },
);

projectionRunnerContract(
  { describe, it },
  {
    name: 'kafka-fed × postgres',
    fixture: async () => {
      const schema = source.schema('contract');
      const options = { connectionString: source.db.url, schema, poolSize: 4 };
      const store = await PostgresEventStore.connect(options);
      const sink = await PostgresProjectionSink.connect(options);
      return kafkaFed(
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
