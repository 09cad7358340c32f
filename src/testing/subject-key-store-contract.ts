/**
 * The subject key store contract: one suite for every key store (memory, SQLite, PostgreSQL, or
 * a user's own over a KMS). It checks the port itself, then the whole model over it: sealing on
 * append, opening on read, forgetting with its typed errors.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import {
  definePersonalData,
  isEncryptedField,
  isRedactedField,
  type SubjectKeyStore,
} from '../core/index.ts';
import { MemoryEventStore } from '../memory/index.ts';
import { forgetSubject } from '../personal-data/forget.ts';
import { protectPersonalData } from '../personal-data/protected-store.ts';
import { assertFailsWith, type TestApi } from './event-store-contract.ts';

export interface SubjectKeyStoreFixture {
  /** A fresh, empty key store. */
  keys: SubjectKeyStore;
  /** Another key store over the same data (a second process, say); the fixture closes it. */
  reopen?(): Promise<SubjectKeyStore>;
  dispose(): Promise<void>;
}

export interface SubjectKeyStoreContractOptions {
  name: string;
  fixture: () => Promise<SubjectKeyStoreFixture>;
}

const newKey = () => ({ keyId: randomUUID(), key: randomBytes(32) });

/** Registers the key store contract suite with the given test API. */
export function subjectKeyStoreContract(
  test: TestApi,
  options: SubjectKeyStoreContractOptions,
): void {
  const { describe, it } = test;
  const withKeys =
    (fn: (keys: SubjectKeyStore, fixture: SubjectKeyStoreFixture) => Promise<void>) => async () => {
      const fixture = await options.fixture();
      try {
        await fn(fixture.keys, fixture);
      } finally {
        await fixture.dispose();
      }
    };

  describe(`subject key store contract: ${options.name}`, () => {
    it(
      'knows nothing of a subject never seen',
      withKeys(async (keys) => {
        assert.equal((await keys.readKeys(['nobody'])).size, 0);
        assert.deepEqual(await keys.streamsOf('nobody'), []);
        assert.deepEqual(await keys.subjectsOf('stream-x'), []);
        assert.equal(await keys.forget('nobody'), 'unknown');
        assert.equal((await keys.readKeys([])).size, 0);
      }),
    );

    it(
      'keeps the first key of a subject: a second or concurrent create gets the same one',
      withKeys(async (keys, fixture) => {
        const first = newKey();
        const made = await keys.createKey('s-1', first.keyId, first.key);
        assert.equal(made.keyId, first.keyId);
        assert.deepEqual(Buffer.from(made.key!), first.key);
        assert.equal(made.forgottenAt, undefined);
        const second = newKey();
        const again = await keys.createKey('s-1', second.keyId, second.key);
        assert.equal(again.keyId, first.keyId);
        assert.deepEqual(Buffer.from(again.key!), first.key);
        const racing = await Promise.all(
          [newKey(), newKey(), newKey()].map((k) => keys.createKey('s-2', k.keyId, k.key)),
        );
        assert.equal(new Set(racing.map((k) => k.keyId)).size, 1);
        const read = await keys.readKeys(['s-1', 's-2', 's-3']);
        assert.deepEqual([...read.keys()].sort(), ['s-1', 's-2']);
        assert.deepEqual(Buffer.from(read.get('s-1')!.key!), first.key);
        if (fixture.reopen) {
          const other = await fixture.reopen();
          const seen = await other.readKeys(['s-1']);
          assert.deepEqual(Buffer.from(seen.get('s-1')!.key!), first.key);
        }
      }),
    );

    it(
      'links streams to subjects, idempotently, both ways',
      withKeys(async (keys) => {
        await keys.linkStream('s-1', 'order-1');
        await keys.linkStream('s-1', 'order-1');
        await keys.linkStream('s-1', 'order-2');
        await keys.linkStream('s-2', 'order-2');
        assert.deepEqual(await keys.streamsOf('s-1'), ['order-1', 'order-2']);
        assert.deepEqual((await keys.subjectsOf('order-2')).sort(), ['s-1', 's-2']);
        assert.deepEqual(await keys.subjectsOf('order-1'), ['s-1']);
      }),
    );

    it(
      'forgets a key for good: a tombstone without key material, which a create does not replace',
      withKeys(async (keys, fixture) => {
        const k = newKey();
        await keys.createKey('s-1', k.keyId, k.key);
        await keys.createKey('s-keep', newKey().keyId, randomBytes(32));
        assert.equal(await keys.forget('s-1'), 'forgotten');
        assert.equal(await keys.forget('s-1'), 'already_forgotten');
        const read = (await keys.readKeys(['s-1'])).get('s-1')!;
        assert.equal(read.key, undefined);
        assert.ok(read.forgottenAt instanceof Date);
        assert.equal(read.keyId, k.keyId);
        const retried = await keys.createKey('s-1', newKey().keyId, randomBytes(32));
        assert.equal(retried.key, undefined, 'a forgotten subject gets no new key');
        assert.ok((await keys.readKeys(['s-keep'])).get('s-keep')!.key);
        if (fixture.reopen) {
          const other = await fixture.reopen();
          assert.equal((await other.readKeys(['s-1'])).get('s-1')!.key, undefined);
        }
        await keys.scrub?.();
      }),
    );

    it(
      'over a protected store: sealed at rest, open while the key exists, redacted once forgotten',
      withKeys(async (keys) => {
        const inner = new MemoryEventStore();
        const store = protectPersonalData(inner, {
          personalData: definePersonalData({
            Registered: { subject: 'personId', fields: ['email', 'name'] },
          }),
          keys,
        });
        const data = { personId: 'p-1', email: 'ann@example.org', name: 'Ann', plan: 'basic' };
        const appended = await store.appendToStream('person-1', [{ type: 'Registered', data }]);
        assert.deepEqual(appended.events[0]!.data, data, 'the caller gets back what it gave');
        const [raw] = await store.readAll({ upcast: false });
        const stored = raw!.data as Record<string, unknown>;
        assert.ok(isEncryptedField(stored.email));
        assert.ok(isEncryptedField(stored.name));
        assert.equal(stored.plan, 'basic');
        assert.equal(JSON.stringify(stored).includes('ann@example.org'), false);
        assert.deepEqual((await store.readStream('person-1'))[0]!.data, data);
        assert.deepEqual(await keys.streamsOf('p-1'), ['person-1']);

        await assertFailsWith(forgetSubject('p-9', { keys }), 'unknown_subject');
        await assertFailsWith(forgetSubject('', { keys }), 'invalid_argument');
        const result = await forgetSubject('p-1', { keys });
        assert.deepEqual(result.streamIds, ['person-1']);
        await assertFailsWith(forgetSubject('p-1', { keys }), 'subject_forgotten');

        const [after] = await store.readStream('person-1');
        const read = after!.data as Record<string, unknown>;
        assert.ok(isRedactedField(read.email));
        assert.deepEqual(read.name, { $personal: 'redacted', subject: 'p-1' });
        assert.equal(read.plan, 'basic');
        // New personal data for the forgotten subject: refused, nothing written.
        await assertFailsWith(
          store.appendToStream('person-1', [{ type: 'Registered', data }]),
          'subject_forgotten',
        );
        assert.equal(await store.streamVersion('person-1'), 1);
        // Personal fields missing: nothing to seal, so it is allowed.
        await store.appendToStream('person-1', [
          { type: 'Registered', data: { personId: 'p-1', plan: 'pro' } },
        ]);
        assert.equal(await store.streamVersion('person-1'), 2);
        // A personal field without a subject is bad input.
        await assertFailsWith(
          store.appendToStream('person-2', [{ type: 'Registered', data: { email: 'x@y.z' } }]),
          'invalid_argument',
        );
        assert.equal(await store.streamVersion('person-2'), 0);
      }),
    );
  });
}
