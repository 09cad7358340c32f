/**
 * The protecting store is a store like any other: the whole event store contract passes through
 * it (over SQLite, the embedded default), with a declaration that seals a field of the contract's
 * own event type, so every read path also goes through sealing and opening.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { definePersonalData, protectPersonalData, type FullEventStore } from 'tidemark';
import { SqliteDatabase, SqliteEventStore, SqliteSubjectKeyStore } from 'tidemark/sqlite';
import { eventStoreContract } from 'tidemark/testing';

const dir = mkdtempSync(join(tmpdir(), 'tidemark-protected-contract-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

// The contract appends events of many types; these two carry a personal field when their data
// has `secret` (and a subject in `who`), which the contract's plain data never has: it must
// behave exactly as without the wrapper.
const personalData = definePersonalData({
  Counted: { subject: 'who', fields: ['secret'] },
  Upcast: { subject: 'who', fields: ['secret'] },
});

eventStoreContract(
  { describe, it },
  {
    name: 'sqlite, protected (protectPersonalData)',
    fixture: async () => {
      const database = new SqliteDatabase(join(dir, `store-${++n}.db`));
      const keys = new SqliteSubjectKeyStore(database);
      const inner = new SqliteEventStore(database);
      const store = protectPersonalData(inner, { personalData, keys });
      const others: FullEventStore[] = [];
      return {
        store,
        reopen: async ({ upcasters }) => {
          const other = new SqliteEventStore(database, upcasters ? { upcasters } : {});
          others.push(other);
          return protectPersonalData(other, { personalData, keys });
        },
        dispose: async () => {
          for (const s of [inner, ...others]) await s.close();
          await database.close();
        },
      };
    },
  },
);
