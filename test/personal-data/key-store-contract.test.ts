/** The subject key store contract on every key store that ships: memory, SQLite, PostgreSQL. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MemorySubjectKeyStore } from 'tidemark';
import { PostgresSubjectKeyStore } from 'tidemark/postgres';
import { SqliteDatabase, SqliteSubjectKeyStore } from 'tidemark/sqlite';
import { subjectKeyStoreContract } from 'tidemark/testing';
import { schemaSource, type SchemaSource } from '../support/pg-schemas.ts';
import { createTestDatabase } from '../support/services.ts';

const dir = mkdtempSync(join(tmpdir(), 'tidemark-key-store-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

subjectKeyStoreContract(
  { describe, it },
  {
    name: 'memory',
    fixture: async () => {
      const keys = new MemorySubjectKeyStore();
      return { keys, dispose: () => keys.close() };
    },
  },
);

subjectKeyStoreContract(
  { describe, it },
  {
    name: 'sqlite',
    fixture: async () => {
      const path = join(dir, `keys-${++n}.db`);
      const database = new SqliteDatabase(path);
      const keys = new SqliteSubjectKeyStore(database);
      const others: SqliteSubjectKeyStore[] = [];
      return {
        keys,
        reopen: async () => {
          const other = new SqliteSubjectKeyStore(path);
          others.push(other);
          return other;
        },
        dispose: async () => {
          for (const other of others) await other.close();
          await database.close();
        },
      };
    },
  },
);

let source: SchemaSource;
before(async () => {
  source = schemaSource(await createTestDatabase('key_store'));
});
after(() => source.drop());

subjectKeyStoreContract(
  { describe, it },
  {
    name: 'postgres',
    fixture: async () => {
      const schema = source.schema('keys');
      const open = () =>
        PostgresSubjectKeyStore.connect({ connectionString: source.db.url, schema });
      const keys = await open();
      const others: PostgresSubjectKeyStore[] = [];
      return {
        keys,
        reopen: async () => {
          const other = await open();
          others.push(other);
          return other;
        },
        dispose: async () => {
          for (const s of [keys, ...others]) await s.close();
          await source.sql(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
        },
      };
    },
  },
);
