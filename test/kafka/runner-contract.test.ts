// The projection runner contract, Kafka-fed, into SQLite and into PostgreSQL (the events are
// appended to a store and published by a relay, as in production).
import { after, before, describe, it } from 'node:test';
import { projectionRunnerContract } from 'tidemark/testing';
import {
  kafkaFed,
  postgresStorage,
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
    fixture: async () => kafkaFed(await postgresStorage(source), postgresTransient),
  },
);
