/**
 * The race forgetting has on PostgreSQL (where a projection's transaction and the key store's
 * are different connections): a batch opens a field with the key, the key is deleted and the
 * read models redacted, then the batch commits the plaintext. Provoked step by step with
 * signals: the projection's handler holds inside its transaction until the key is gone. Without
 * `settle` the plaintext survives (the race is real); with it, forgetting waits for the batch
 * and the read model ends redacted.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  ProjectionRunner,
  ReadModels,
  defineProjection,
  definePersonalData,
  forgetSubject,
  isRedactedField,
  openStorage,
  type Storage,
  type SubjectKeyStore,
} from 'tidemark';
import { createTestDatabase, type TestDatabase } from '../support/services.ts';

const personalData = definePersonalData({ Registered: { subject: 'who', fields: ['email'] } });

/** A promise and its resolver. */
function signal<T = void>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

describe('personal data: forgetting while a projection batch is in flight (PostgreSQL)', () => {
  let db: TestDatabase;
  let storage: Storage;
  before(async () => {
    db = await createTestDatabase('forget_race');
    storage = await openStorage(db.url, { personalData });
  });
  after(async () => {
    await storage?.close();
    await db?.drop();
  });

  async function race(name: string, settle: boolean): Promise<unknown> {
    const tableName = name.replace('-', '_');
    const entered = signal();
    const release = signal();
    const projection = defineProjection({
      name,
      version: 1,
      handles: ['Registered'],
      tables: [tableName],
      init: async ({ sql, table }) => {
        await sql.execute(`CREATE TABLE ${table(tableName)} (who TEXT PRIMARY KEY, email TEXT)`);
      },
      apply: async (event, { sql, table }) => {
        const data = event.data as { who: string; email: unknown };
        if (data.who === `${name}-p`) {
          entered.resolve();
          await release.promise;
        }
        await sql.execute(`INSERT INTO ${table(tableName)} (who, email) VALUES ($1, $2)`, [
          data.who,
          JSON.stringify(data.email),
        ]);
      },
      forget: async ({ subject }, { sql, table }) => {
        await sql.execute(`UPDATE ${table(tableName)} SET email = $1 WHERE who = $2`, [
          JSON.stringify({ $personal: 'redacted', subject }),
          subject,
        ]);
      },
    });
    const runner = new ProjectionRunner({ projection, store: storage.store, sink: storage.sink });
    await runner.start();
    try {
      const who = `${name}-p`;
      await storage.store.appendToStream(`person-${who}`, [
        { type: 'Registered', data: { who, email: `${who}@example.org` } },
      ]);
      await entered.promise; // the batch has opened the field with the key and holds
      const keyGone = signal();
      // The real key store, with a signal once the key is deleted.
      const real = storage.subjectKeys;
      const keys: SubjectKeyStore = {
        readKeys: (s) => real.readKeys(s),
        createKey: (s, id, k) => real.createKey(s, id, k),
        linkStream: (s, id) => real.linkStream(s, id),
        subjectsOf: (id) => real.subjectsOf(id),
        streamsOf: (s) => real.streamsOf(s),
        forget: async (subject) => {
          const outcome = await real.forget(subject);
          keyGone.resolve();
          return outcome;
        },
      };
      const readModels = new ReadModels({ sink: storage.sink, projections: [projection] });
      const forgetting = forgetSubject(who, {
        keys,
        sink: storage.sink,
        projections: [projection],
        ...(settle
          ? {
              settle: {
                store: storage.store,
                waitFor: (token, names, timeoutMs) => readModels.waitFor(token, names, timeoutMs),
                timeoutMs: 30_000,
              },
            }
          : {}),
      });
      await keyGone.promise;
      if (!settle) await forgetting; // the redaction ran before the batch commits
      release.resolve();
      const result = await forgetting;
      if (settle) assert.equal(result.settled, true);
      assert.ok(await runner.whenCaughtUp(30_000));
      const [row] = await storage.sink.query<{ email: string }>(
        `SELECT email FROM ${tableName}_v1 WHERE who = $1`,
        [who],
      );
      return JSON.parse(row!.email);
    } finally {
      await runner.stop();
    }
  }

  it('without settle, a batch in flight commits the plaintext after the redaction', async () => {
    const email = await race('race-a', false);
    assert.equal(email, 'race-a-p@example.org');
  });

  it('with settle, forgetting waits for the batch, and the read model ends redacted', async () => {
    const email = await race('race-b', true);
    assert.ok(isRedactedField(email), JSON.stringify(email));
  });
});
