/** The sealing model's edges, on the memory adapters: declarations, tampering, lost keys, snapshots. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  MemorySubjectKeyStore,
  definePersonalData,
  forgetSubject,
  isEncryptedField,
  protectPersonalData,
} from 'tidemark';
import { MemoryEventStore } from 'tidemark/memory';
import { assertFailsWith } from 'tidemark/testing';

const personalData = definePersonalData({
  Registered: { subject: 'personId', fields: ['email'] },
  Moved: { subject: (data) => data.who, fields: ['address'] },
});

function setup() {
  const inner = new MemoryEventStore();
  const keys = new MemorySubjectKeyStore();
  return { inner, keys, store: protectPersonalData(inner, { personalData, keys }) };
}

describe('personal data: declarations and sealing', () => {
  it('refuses declarations that cannot work', () => {
    for (const spec of [
      { A: { subject: 'id', fields: [] } },
      { A: { subject: 'email', fields: ['email'] } },
      { A: { subject: 42, fields: ['email'] } },
      { A: { subject: 'id', fields: [''] } },
    ]) {
      assert.throws(
        () => definePersonalData(spec as never),
        (e: { code?: string }) => e.code === 'invalid_argument',
      );
    }
  });

  it('finds the subject through a function too, and seals only declared fields', async () => {
    const { store, inner } = setup();
    await store.appendToStream('p-1', [
      { type: 'Moved', data: { who: 'p-1', address: { city: 'Ghent' }, floor: 2 } },
    ]);
    const [raw] = await inner.readAll({ upcast: false });
    const data = raw!.data as Record<string, unknown>;
    assert.ok(isEncryptedField(data.address));
    assert.equal(data.floor, 2);
    assert.deepEqual((await store.readStream('p-1'))[0]!.data, {
      who: 'p-1',
      address: { city: 'Ghent' },
      floor: 2,
    });
  });

  it('a tampered envelope fails loudly (storage_error), never reads as something else', async () => {
    const { inner, keys } = setup();
    const store = protectPersonalData(inner, { personalData, keys });
    await store.appendToStream('p-1', [
      { type: 'Registered', data: { personId: 'p-1', email: 'a@b.c' } },
    ]);
    const [raw] = await inner.readAll({ upcast: false });
    const sealed = (raw!.data as { email: Record<string, string> }).email;
    const flipped = Buffer.from(sealed.ciphertext!, 'base64');
    flipped[0] = flipped[0]! ^ 1;
    // The same envelope, one bit changed, appended as stored data (already sealed: kept as is).
    await store.appendToStream('p-2', [
      {
        type: 'Registered',
        data: { personId: 'p-1', email: { ...sealed, ciphertext: flipped.toString('base64') } },
      },
    ]);
    await assertFailsWith(store.readStream('p-2'), 'storage_error');
    // Another subject's name on the envelope: the subject is authenticated data.
    await store.appendToStream('p-3', [
      { type: 'Registered', data: { personId: 'p-3', email: 'x@y.z' } },
    ]);
    await store.appendToStream('p-4', [
      { type: 'Registered', data: { personId: 'p-1', email: { ...sealed, subject: 'p-3' } } },
    ]);
    await assertFailsWith(store.readStream('p-4'), 'storage_error');
  });

  it('a key store that never heard of the subject is a storage_error, not a redaction', async () => {
    const { inner, store } = setup();
    await store.appendToStream('p-1', [
      { type: 'Registered', data: { personId: 'p-1', email: 'a@b.c' } },
    ]);
    const elsewhere = protectPersonalData(inner, {
      personalData,
      keys: new MemorySubjectKeyStore(),
    });
    await assertFailsWith(elsewhere.readStream('p-1'), 'storage_error');
  });

  it('seals snapshots of streams holding personal data; a forgotten subject ends them', async () => {
    const { inner, store, keys } = setup();
    await store.appendToStream('p-1', [
      { type: 'Registered', data: { personId: 'p-1', email: 'a@b.c' } },
    ]);
    await store.writeSnapshot({
      streamId: 'p-1',
      streamVersion: 1,
      stateVersion: 1,
      state: { email: 'a@b.c' },
    });
    await store.writeSnapshot({
      streamId: 'other',
      streamVersion: 1,
      stateVersion: 1,
      state: { n: 1 },
    });
    const stored = await inner.readSnapshot('p-1');
    assert.ok(isEncryptedField(stored!.state));
    assert.deepEqual((await inner.readSnapshot('other'))!.state, { n: 1 });
    assert.deepEqual((await store.readSnapshot('p-1'))!.state, { email: 'a@b.c' });
    const together = await store.readFromSnapshot('p-1', 1);
    assert.deepEqual(together.snapshot!.state, { email: 'a@b.c' });

    await forgetSubject('p-1', { keys });
    assert.equal(await store.readSnapshot('p-1'), undefined);
    const folded = await store.readFromSnapshot('p-1', 1);
    assert.equal(folded.snapshot, undefined);
    assert.equal(folded.events.length, 1, 'the whole stream is read instead');
    await store.writeSnapshot({ streamId: 'p-1', streamVersion: 2, stateVersion: 1, state: {} });
    assert.equal((await inner.readSnapshot('p-1'))!.streamVersion, 1, 'nothing new written');
  });
});
