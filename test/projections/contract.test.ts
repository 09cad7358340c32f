// The projection runner contract, store-fed into SQLite (PostgreSQL: test/postgres, Kafka:
// test/kafka/runner-contract.test.ts).
import { describe, it } from 'node:test';
import { projectionRunnerContract } from 'tidemark/testing';
import { sqliteStorage, sqliteTransient, storeFed } from '../support/feed-fixtures.ts';

projectionRunnerContract(
  { describe, it },
  {
    name: 'store-fed × sqlite',
    fixture: async () => storeFed(sqliteStorage(), sqliteTransient),
  },
);
