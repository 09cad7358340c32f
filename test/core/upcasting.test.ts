import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Upcasters, isTidemarkError, type StoredEvent } from 'tidemark';

const stored = (type: string, schemaVersion: number, data: unknown): StoredEvent => ({
  type,
  schemaVersion,
  data,
  metadata: {},
  eventId: 'e',
  streamId: 's',
  streamVersion: 1,
  position: 1,
  recordedAt: new Date(0),
});

describe('Upcasters', () => {
  const upcasters = new Upcasters([
    { type: 'A', fromVersion: 2, upcast: (d) => ({ ...(d as object), v3: true }) },
    { type: 'A', fromVersion: 1, upcast: (d) => ({ ...(d as object), v2: true }) },
  ]);

  it('knows the current version of each type', () => {
    assert.equal(upcasters.currentVersion('A'), 3);
    assert.equal(upcasters.currentVersion('B'), 1);
  });

  it('runs the chain from the stored version, in order, keeping the stored schema version', () => {
    const up = upcasters.upcast(stored('A', 1, { x: 1 }));
    assert.deepEqual(up.data, { x: 1, v2: true, v3: true });
    assert.equal(up.schemaVersion, 1);
    assert.deepEqual(upcasters.upcast(stored('A', 2, {})).data, { v3: true });
    const current = stored('A', 3, { y: 1 });
    assert.equal(upcasters.upcast(current), current);
  });

  it('refuses versions it cannot reach', () => {
    for (const version of [4, 0, 1.5]) {
      assert.throws(
        () => upcasters.upcast(stored('A', version, {})),
        (e) => isTidemarkError(e, 'upcast_failed'),
      );
    }
    assert.throws(
      () => upcasters.upcast(stored('B', 2, {})),
      (e) => isTidemarkError(e, 'upcast_failed'),
    );
  });

  it('wraps an upcaster that throws', () => {
    const failing = new Upcasters([
      {
        type: 'A',
        fromVersion: 1,
        upcast: () => {
          throw new Error('boom');
        },
      },
    ]);
    assert.throws(
      () => failing.upcast(stored('A', 1, {})),
      (e) => isTidemarkError(e, 'upcast_failed') && (e.cause as Error).message === 'boom',
    );
  });

  it('checks the chain at construction: starts at 1, no holes, no duplicates', () => {
    const up = () => ({});
    for (const list of [
      [{ type: 'A', fromVersion: 2, upcast: up }],
      [
        { type: 'A', fromVersion: 1, upcast: up },
        { type: 'A', fromVersion: 3, upcast: up },
      ],
      [
        { type: 'A', fromVersion: 1, upcast: up },
        { type: 'A', fromVersion: 1, upcast: up },
      ],
      [{ type: '', fromVersion: 1, upcast: up }],
      [{ type: 'A', fromVersion: 0, upcast: up }],
    ]) {
      assert.throws(
        () => new Upcasters(list),
        (e) => isTidemarkError(e, 'invalid_argument'),
      );
    }
  });
});
