// The projection runner contract, store-fed, events and read models in PostgreSQL.
import { after, before, describe, it } from 'node:test';
import { projectionRunnerContract } from 'tidemark/testing';
import { postgresStorage, postgresTransient, storeFed } from '../support/feed-fixtures.ts';
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
    fixture: async () => storeFed(await postgresStorage(source), postgresTransient),
  },
);
