/**
 * The event store contract: one suite, run against every adapter. An adapter is done when it
 * passes. It uses `node:assert` only, and takes `describe`/`it` from the caller's test runner
 * (node:test, Vitest and Jest all fit).
 */
import assert from 'node:assert/strict';
import {
  ANY,
  NO_STREAM,
  STREAM_EXISTS,
  Upcasters,
  isTidemarkError,
  type ErrorCode,
  type FullEventStore,
  type NewEvent,
  type RecordedEvent,
} from '../core/index.ts';

export interface TestApi {
  describe: (name: string, fn: () => void) => unknown;
  it: (name: string, fn: () => Promise<void>) => unknown;
}

export interface EventStoreFixture {
  /** A fresh, empty store. */
  store: FullEventStore;
  /** Another store over the same data, with other options; the fixture closes it. */
  reopen(options: { upcasters?: Upcasters }): Promise<FullEventStore>;
  /** Closes the stores and frees what the fixture holds. */
  dispose(): Promise<void>;
}

export interface EventStoreContractOptions {
  /** Shown in test names, e.g. `sqlite`. */
  name: string;
  /** Makes a fresh fixture; called once per test. */
  fixture: () => Promise<EventStoreFixture>;
}

type AnyEvent = RecordedEvent;

function ev(type: string, data: unknown = {}, metadata?: Record<string, unknown>): NewEvent {
  return metadata ? { type, data, metadata } : { type, data };
}

/** Awaits `promise` and asserts it fails with a Tidemark error of `code`. */
export async function assertFailsWith(
  promise: Promise<unknown>,
  code: ErrorCode,
): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    assert.ok(isTidemarkError(error, code), `expected a '${code}' error, got ${String(error)}`);
    return error;
  }
  assert.fail(`expected a '${code}' error, but the call succeeded`);
}

/** Registers the whole contract suite with the given test API. */
export function eventStoreContract(test: TestApi, options: EventStoreContractOptions): void {
  const { describe, it } = test;
  const withStore =
    (fn: (store: FullEventStore, fixture: EventStoreFixture) => Promise<void>) => async () => {
      const fixture = await options.fixture();
      try {
        await fn(fixture.store, fixture);
      } finally {
        await fixture.dispose();
      }
    };

  describe(`event store contract: ${options.name}`, () => {
    describe('append and read', () => {
      it(
        'records events with ids, versions, positions, schema version, metadata and time',
        withStore(async (store) => {
          const before = Date.now();
          const result = await store.appendToStream('order-1', [
            ev(
              'OrderCreated',
              { customerId: 'c1' },
              { correlationId: 'corr-1', causationId: 'cmd-1' },
            ),
            { type: 'ItemAdded', data: { sku: 'A', quantity: 2 }, eventId: 'my-own-id' },
          ]);
          assert.equal(result.nextExpectedVersion, 2);
          assert.equal(result.events.length, 2);
          assert.equal(result.position, result.events[1]!.position);
          const read = await store.readStream('order-1');
          assert.deepEqual(read, result.events);
          const [created, added] = read as [AnyEvent, AnyEvent];
          assert.equal(created.type, 'OrderCreated');
          assert.deepEqual(created.data, { customerId: 'c1' });
          assert.equal(created.metadata.correlationId, 'corr-1');
          assert.equal(created.metadata.causationId, 'cmd-1');
          assert.equal(created.streamId, 'order-1');
          assert.equal(created.streamVersion, 1);
          assert.equal(added.streamVersion, 2);
          assert.equal(added.eventId, 'my-own-id');
          assert.match(created.eventId, /^[0-9a-f-]{36}$/);
          assert.ok(added.position > created.position);
          assert.equal(created.schemaVersion, 1);
          assert.ok(created.recordedAt instanceof Date);
          assert.ok(
            created.recordedAt.getTime() >= before - 1000 &&
              created.recordedAt.getTime() <= Date.now() + 1000,
          );
          assert.equal(await store.streamVersion('order-1'), 2);
          assert.equal(await store.streamVersion('order-unknown'), 0);
          assert.deepEqual(await store.readStream('order-unknown'), []);
        }),
      );

      it(
        'hands out copies: changing what was read or appended changes nothing stored',
        withStore(async (store) => {
          const data = { lines: [{ sku: 'A' }] };
          await store.appendToStream('s', [ev('E', data)]);
          data.lines[0]!.sku = 'changed';
          const [first] = await store.readStream('s');
          (first!.data as typeof data).lines.push({ sku: 'B' });
          const [again] = await store.readStream('s');
          assert.deepEqual(again!.data, { lines: [{ sku: 'A' }] });
        }),
      );

      it(
        'appends many events atomically with consecutive versions and increasing positions',
        withStore(async (store) => {
          const events = Array.from({ length: 25 }, (_, i) => ev('Counted', { i }));
          const result = await store.appendToStream('counter', events, {
            expectedVersion: NO_STREAM,
          });
          assert.equal(result.nextExpectedVersion, 25);
          const read = await store.readStream('counter');
          assert.deepEqual(
            read.map((e) => e.streamVersion),
            Array.from({ length: 25 }, (_, i) => i + 1),
          );
          for (let i = 1; i < read.length; i++)
            assert.ok(read[i]!.position > read[i - 1]!.position);
          assert.deepEqual(
            read.map((e) => (e.data as { i: number }).i),
            Array.from({ length: 25 }, (_, i) => i),
          );
        }),
      );

      it(
        'reads a stream forwards and backwards, within versions, up to a count',
        withStore(async (store) => {
          await store.appendToStream(
            's',
            Array.from({ length: 10 }, (_, i) => ev('E', { i: i + 1 })),
          );
          const versions = (events: AnyEvent[]) => events.map((e) => e.streamVersion);
          assert.deepEqual(
            versions(await store.readStream('s', { fromVersion: 4, toVersion: 6 })),
            [4, 5, 6],
          );
          assert.deepEqual(versions(await store.readStream('s', { fromVersion: 8 })), [8, 9, 10]);
          assert.deepEqual(versions(await store.readStream('s', { maxCount: 2 })), [1, 2]);
          assert.deepEqual(
            versions(await store.readStream('s', { direction: 'backwards', maxCount: 3 })),
            [10, 9, 8],
          );
          assert.deepEqual(
            versions(
              await store.readStream('s', { direction: 'backwards', fromVersion: 2, toVersion: 4 }),
            ),
            [4, 3, 2],
          );
          assert.deepEqual(versions(await store.readStream('s', { fromVersion: 11 })), []);
        }),
      );
    });

    describe('expected versions', () => {
      const cases: { name: string; setup: number; expected: unknown; ok: boolean }[] = [
        { name: 'NO_STREAM on a new stream', setup: 0, expected: NO_STREAM, ok: true },
        { name: 'NO_STREAM on an existing stream', setup: 2, expected: NO_STREAM, ok: false },
        { name: 'STREAM_EXISTS on a new stream', setup: 0, expected: STREAM_EXISTS, ok: false },
        {
          name: 'STREAM_EXISTS on an existing stream',
          setup: 2,
          expected: STREAM_EXISTS,
          ok: true,
        },
        { name: 'ANY on a new stream', setup: 0, expected: ANY, ok: true },
        { name: 'ANY on an existing stream', setup: 2, expected: ANY, ok: true },
        { name: 'no expectation on an existing stream', setup: 2, expected: undefined, ok: true },
        { name: '0 on a new stream', setup: 0, expected: 0, ok: true },
        { name: 'the current version', setup: 2, expected: 2, ok: true },
        { name: 'a version behind', setup: 2, expected: 1, ok: false },
        { name: 'a version ahead', setup: 2, expected: 3, ok: false },
        { name: 'a number on a new stream', setup: 0, expected: 1, ok: false },
      ];
      for (const c of cases) {
        it(
          `${c.name}: ${c.ok ? 'appends' : 'fails and writes nothing'}`,
          withStore(async (store) => {
            if (c.setup > 0)
              await store.appendToStream(
                's',
                Array.from({ length: c.setup }, () => ev('E')),
              );
            const head = await store.headPosition();
            const attempt = store.appendToStream('s', [ev('X')], {
              expectedVersion: c.expected as never,
            });
            if (c.ok) {
              const result = await attempt;
              assert.equal(result.nextExpectedVersion, c.setup + 1);
            } else {
              const error = (await assertFailsWith(attempt, 'wrong_expected_version')) as {
                streamId: string;
                actual: number;
                retryable: boolean;
              };
              assert.equal(error.streamId, 's');
              assert.equal(error.actual, c.setup);
              assert.equal(error.retryable, true);
              assert.equal(await store.streamVersion('s'), c.setup);
              assert.equal(await store.headPosition(), head);
            }
          }),
        );
      }

      it(
        '50 concurrent appends at one expected version: exactly one wins, versions have no gaps',
        withStore(async (store) => {
          await store.appendToStream('hot', [ev('Created')]);
          const attempts = await Promise.allSettled(
            Array.from({ length: 50 }, (_, i) =>
              store.appendToStream('hot', [ev('Touched', { by: i })], { expectedVersion: 1 }),
            ),
          );
          const won = attempts.filter((a) => a.status === 'fulfilled');
          const lost = attempts.filter((a) => a.status === 'rejected');
          assert.equal(won.length, 1);
          assert.equal(lost.length, 49);
          for (const loss of lost) {
            assert.ok(
              isTidemarkError((loss as PromiseRejectedResult).reason, 'wrong_expected_version'),
            );
          }
          // Then 50 writers that each retry on conflict: every version taken exactly once.
          const writers = Array.from({ length: 50 }, async (_, i) => {
            for (;;) {
              const version = await store.streamVersion('hot');
              try {
                return await store.appendToStream('hot', [ev('Touched', { by: i })], {
                  expectedVersion: version,
                });
              } catch (error) {
                if (!isTidemarkError(error, 'wrong_expected_version')) throw error;
              }
            }
          });
          const results = await Promise.all(writers);
          const versions = results.map((r) => r.nextExpectedVersion).sort((a, b) => a - b);
          assert.deepEqual(
            versions,
            Array.from({ length: 50 }, (_, i) => i + 3),
          );
          const stream = await store.readStream('hot');
          assert.deepEqual(
            stream.map((e) => e.streamVersion),
            Array.from({ length: 52 }, (_, i) => i + 1),
          );
        }),
      );
    });

    describe('the global log', () => {
      it(
        'orders events of all streams by position, and batch reads cover it exactly once',
        withStore(async (store) => {
          const appended: AnyEvent[] = [];
          for (let round = 0; round < 20; round++) {
            const results = await Promise.all(
              ['a', 'b', 'c'].map((s) =>
                store.appendToStream(`stream-${s}`, [ev('E', { round }), ev('E', { round })]),
              ),
            );
            for (const r of results) appended.push(...r.events);
          }
          const all: AnyEvent[] = [];
          for (let after = 0; ;) {
            const batch = await store.readAll({ after, maxCount: 7 });
            if (batch.length === 0) break;
            assert.ok(batch.length <= 7);
            all.push(...batch);
            after = batch[batch.length - 1]!.position;
          }
          assert.equal(all.length, 120);
          for (let i = 1; i < all.length; i++) assert.ok(all[i]!.position > all[i - 1]!.position);
          assert.deepEqual(
            new Set(all.map((e) => e.eventId)),
            new Set(appended.map((e) => e.eventId)),
          );
          for (const s of ['a', 'b', 'c']) {
            const versions = all
              .filter((e) => e.streamId === `stream-${s}`)
              .map((e) => e.streamVersion);
            assert.deepEqual(
              versions,
              Array.from({ length: 40 }, (_, i) => i + 1),
            );
          }
          assert.equal(await store.headPosition(), all[all.length - 1]!.position);
          assert.deepEqual(await store.readAll({ after: all[all.length - 1]!.position }), []);
          const fromMiddle = await store.readAll({ after: all[59]!.position, maxCount: 1000 });
          assert.equal(fromMiddle.length, 60);
          assert.equal(fromMiddle[0]!.eventId, all[60]!.eventId);
        }),
      );

      it(
        'starts empty',
        withStore(async (store) => {
          assert.equal(await store.headPosition(), 0);
          assert.deepEqual(await store.readAll(), []);
          assert.deepEqual(await store.listStreams(), []);
        }),
      );

      it(
        'announces appends to listeners',
        withStore(async (store) => {
          const heard = new Promise<number>((resolve) => {
            const stop = store.onAppended((position) => {
              stop();
              resolve(position);
            });
          });
          const result = await store.appendToStream('s', [ev('E')]);
          const position = await heard;
          assert.ok(position > 0 && position <= result.position);
        }),
      );

      it(
        'lists streams by id, with a prefix and keyset pages',
        withStore(async (store) => {
          for (const id of ['order-2', 'order-1', 'customer-1', 'order-3']) {
            await store.appendToStream(id, [ev('E'), ev('E')]);
          }
          await store.appendToStream('order-1', [ev('E')]);
          const all = await store.listStreams();
          assert.deepEqual(
            all.map((s) => s.streamId),
            ['customer-1', 'order-1', 'order-2', 'order-3'],
          );
          const order1 = all.find((s) => s.streamId === 'order-1')!;
          assert.equal(order1.version, 3);
          assert.equal(order1.position, await store.headPosition());
          assert.ok(order1.updatedAt instanceof Date);
          const page1 = await store.listStreams({ prefix: 'order-', limit: 2 });
          assert.deepEqual(
            page1.map((s) => s.streamId),
            ['order-1', 'order-2'],
          );
          const page2 = await store.listStreams({ prefix: 'order-', limit: 2, after: 'order-2' });
          assert.deepEqual(
            page2.map((s) => s.streamId),
            ['order-3'],
          );
        }),
      );
    });

    describe('upcasting', () => {
      it(
        'applies upcasters on every read, and writes new events at the current schema version',
        withStore(async (store, fixture) => {
          await store.appendToStream('order-1', [
            ev('ItemAdded', { sku: 'A', qty: 2 }),
            ev('Other', { x: 1 }),
          ]);
          const upcasters = new Upcasters([
            {
              type: 'ItemAdded',
              fromVersion: 1,
              upcast: (d) => ({ ...(d as object), priceCents: 0 }),
            },
            {
              type: 'ItemAdded',
              fromVersion: 2,
              upcast: (d) => {
                const { qty, ...rest } = d as { qty: number };
                return { ...rest, quantity: qty };
              },
            },
          ]);
          const upcasting = await fixture.reopen({ upcasters });
          const expected = { sku: 'A', quantity: 2, priceCents: 0 };
          const [fromStream, other] = await upcasting.readStream('order-1');
          assert.deepEqual(fromStream!.data, expected);
          assert.equal(fromStream!.schemaVersion, 1);
          assert.deepEqual(other!.data, { x: 1 });
          const [fromLog] = await upcasting.readAll();
          assert.deepEqual(fromLog!.data, expected);
          const [backwards] = await upcasting.readStream('order-1', {
            direction: 'backwards',
            toVersion: 1,
          });
          assert.deepEqual(backwards!.data, expected);
          const written = await upcasting.appendToStream('order-1', [
            ev('ItemAdded', { sku: 'B', quantity: 1, priceCents: 5 }),
          ]);
          assert.equal(written.events[0]!.schemaVersion, 3);
          const [latest] = await upcasting.readStream('order-1', { fromVersion: 3 });
          assert.equal(latest!.schemaVersion, 3);
          assert.deepEqual(latest!.data, { sku: 'B', quantity: 1, priceCents: 5 });
          // A reader that knows only v1 refuses v3 events instead of misreading them.
          await assertFailsWith(store.readStream('order-1'), 'upcast_failed');
        }),
      );
    });

    describe('snapshots', () => {
      it(
        'stores and reads snapshots; an older one never replaces a newer one of the same state version',
        withStore(async (store) => {
          assert.equal(await store.readSnapshot('order-1'), undefined);
          await store.writeSnapshot({
            streamId: 'order-1',
            streamVersion: 10,
            stateVersion: 1,
            state: { n: 10 },
          });
          const read = await store.readSnapshot('order-1');
          assert.equal(read?.streamVersion, 10);
          assert.equal(read?.stateVersion, 1);
          assert.deepEqual(read?.state, { n: 10 });
          assert.ok(read?.takenAt instanceof Date);
          await store.writeSnapshot({
            streamId: 'order-1',
            streamVersion: 5,
            stateVersion: 1,
            state: { n: 5 },
          });
          assert.equal((await store.readSnapshot('order-1'))?.streamVersion, 10);
          await store.writeSnapshot({
            streamId: 'order-1',
            streamVersion: 20,
            stateVersion: 1,
            state: { n: 20 },
          });
          assert.deepEqual((await store.readSnapshot('order-1'))?.state, { n: 20 });
          // A new state version replaces the old snapshot whatever its stream version.
          await store.writeSnapshot({
            streamId: 'order-1',
            streamVersion: 3,
            stateVersion: 2,
            state: { m: 3 },
          });
          const replaced = await store.readSnapshot('order-1');
          assert.equal(replaced?.stateVersion, 2);
          assert.deepEqual(replaced?.state, { m: 3 });
        }),
      );

      it(
        'reads snapshot and tail together (when the store offers it) as the two reads would',
        withStore(async (store) => {
          const together = store.readFromSnapshot?.bind(store);
          if (!together) return; // optional: the command handler then reads them one by one
          const separately = async (streamId: string, stateVersion: number) => {
            const snapshot = await store.readSnapshot(streamId);
            const from = snapshot?.stateVersion === stateVersion ? snapshot.streamVersion + 1 : 1;
            return { snapshot, events: await store.readStream(streamId, { fromVersion: from }) };
          };
          const same = async (streamId: string, stateVersion: number) => {
            const got = await together(streamId, stateVersion);
            const want = await separately(streamId, stateVersion);
            assert.deepEqual(
              { ...got, snapshot: got.snapshot && { ...got.snapshot, takenAt: undefined } },
              { ...want, snapshot: want.snapshot && { ...want.snapshot, takenAt: undefined } },
            );
            assert.equal(got.snapshot?.takenAt.getTime(), want.snapshot?.takenAt.getTime());
            return got;
          };
          // No stream at all; a stream without a snapshot.
          assert.deepEqual(await same('s-none', 1), { snapshot: undefined, events: [] });
          await store.appendToStream('s-1', [
            { type: 'E', data: { n: 1 } },
            { type: 'E', data: { n: 2 } },
            { type: 'E', data: { n: 3 } },
          ]);
          assert.equal((await same('s-1', 1)).events.length, 3);
          // A snapshot of this state version: the events after it.
          await store.writeSnapshot({
            streamId: 's-1',
            streamVersion: 2,
            stateVersion: 1,
            state: {},
          });
          assert.deepEqual(
            (await same('s-1', 1)).events.map((e) => e.streamVersion),
            [3],
          );
          // At the head: the snapshot and no events.
          await store.writeSnapshot({
            streamId: 's-1',
            streamVersion: 3,
            stateVersion: 1,
            state: {},
          });
          const atHead = await same('s-1', 1);
          assert.equal(atHead.snapshot?.streamVersion, 3);
          assert.deepEqual(atHead.events, []);
          // A snapshot of another state version: given back, but every event comes with it.
          assert.equal((await same('s-1', 2)).events.length, 3);
        }),
      );
    });

    describe('idempotency records', () => {
      it(
        'claims a key once, reports a pending claim, stores the response, releases on failure',
        withStore(async (store) => {
          assert.deepEqual(await store.claimIdempotencyKey('k1', 'fp-1', 60_000), {
            outcome: 'claimed',
          });
          assert.deepEqual(await store.claimIdempotencyKey('k1', 'fp-2', 60_000), {
            outcome: 'pending',
            fingerprint: 'fp-1',
          });
          await store.completeIdempotencyKey('k1', { status: 201, body: { ok: true } });
          assert.deepEqual(await store.claimIdempotencyKey('k1', 'fp-1', 60_000), {
            outcome: 'completed',
            fingerprint: 'fp-1',
            response: { status: 201, body: { ok: true } },
          });
          assert.deepEqual(await store.claimIdempotencyKey('k2', 'fp', 60_000), {
            outcome: 'claimed',
          });
          await store.releaseIdempotencyKey('k2');
          assert.deepEqual(await store.claimIdempotencyKey('k2', 'fp', 60_000), {
            outcome: 'claimed',
          });
          // A claim older than the lease is taken over (its holder is presumed dead), and says so:
          // that holder may have appended before it died.
          assert.deepEqual(await store.claimIdempotencyKey('k2', 'fp', 0), {
            outcome: 'claimed',
            takenOver: true,
          });
          // A completed record is never released.
          await store.releaseIdempotencyKey('k1');
          assert.equal(
            (await store.claimIdempotencyKey('k1', 'fp-1', 60_000)).outcome,
            'completed',
          );
        }),
      );

      it(
        'lets exactly one of many concurrent claims of a key win',
        withStore(async (store) => {
          const claims = await Promise.all(
            Array.from({ length: 20 }, () => store.claimIdempotencyKey('same', 'fp', 60_000)),
          );
          assert.equal(claims.filter((c) => c.outcome === 'claimed').length, 1);
          assert.equal(claims.filter((c) => c.outcome === 'pending').length, 19);
        }),
      );
    });

    describe('payloads and ids', () => {
      it(
        'keeps large payloads and Unicode intact',
        withStore(async (store) => {
          const big = {
            text: 'x'.repeat(2 * 1024 * 1024),
            nested: Array.from({ length: 1000 }, (_, i) => ({ i })),
          };
          const ids = [
            'order-ñandú',
            '注文-42',
            'stream-😀-🚀',
            'e\u0301-combining',
            'spaces and/slashes:colons',
          ];
          for (const id of ids) {
            await store.appendToStream(id, [
              ev('Big', id === ids[0] ? big : { id, emoji: '🎉', rtl: 'שלום' }),
            ]);
          }
          const [read] = await store.readStream(ids[0]!);
          assert.deepEqual(read!.data, big);
          for (const id of ids.slice(1)) {
            const [e] = await store.readStream(id);
            assert.equal(e!.streamId, id);
            assert.deepEqual(e!.data, { id, emoji: '🎉', rtl: 'שלום' });
          }
          const listed = (await store.listStreams()).map((s) => s.streamId).sort();
          assert.deepEqual(listed, [...ids].sort());
        }),
      );
    });

    describe('bad input: a typed error, and nothing written', () => {
      const bad: {
        name: string;
        code: ErrorCode;
        call: (store: FullEventStore) => Promise<unknown>;
      }[] = [
        {
          name: 'an empty stream id',
          code: 'invalid_argument',
          call: (s) => s.appendToStream('', [ev('E')]),
        },
        {
          name: 'a stream id that is not a string',
          code: 'invalid_argument',
          call: (s) => s.appendToStream(42 as never, [ev('E')]),
        },
        {
          name: 'a lone surrogate in the stream id',
          code: 'invalid_argument',
          call: (s) => s.appendToStream('bad-\ud800', [ev('E')]),
        },
        { name: 'no events', code: 'invalid_argument', call: (s) => s.appendToStream('s', []) },
        {
          name: 'an event without a type',
          code: 'invalid_argument',
          call: (s) => s.appendToStream('s', [{ data: {} } as never]),
        },
        {
          name: 'data with a BigInt',
          code: 'serialization_failed',
          call: (s) => s.appendToStream('s', [ev('E'), ev('E', { n: 10n })]),
        },
        {
          name: 'data with a cycle',
          code: 'serialization_failed',
          call: (s) => {
            const cyclic: Record<string, unknown> = {};
            cyclic.self = cyclic;
            return s.appendToStream('s', [ev('E', cyclic)]);
          },
        },
        {
          name: 'undefined data',
          code: 'serialization_failed',
          call: (s) => s.appendToStream('s', [{ type: 'E', data: undefined }]),
        },
        {
          name: 'metadata that is not an object',
          code: 'invalid_argument',
          call: (s) => s.appendToStream('s', [{ type: 'E', data: {}, metadata: 'x' as never }]),
        },
        ...(['nope', -1, 1.5, null, {}, '1'] as unknown[]).map((value) => ({
          name: `the expected version ${JSON.stringify(value)}`,
          code: 'invalid_argument' as const,
          call: (s: FullEventStore) =>
            s.appendToStream('s', [ev('E')], { expectedVersion: value as never }),
        })),
        {
          name: 'an event id used twice in one append',
          code: 'duplicate_event_id',
          call: (s) =>
            s.appendToStream('s', [
              { type: 'E', data: {}, eventId: 'dup' },
              { type: 'E', data: {}, eventId: 'dup' },
            ]),
        },
        {
          name: 'an event id already stored',
          code: 'duplicate_event_id',
          call: (s) =>
            s.appendToStream('s', [ev('E'), { type: 'E', data: {}, eventId: 'seed-event' }]),
        },
        {
          name: 'an empty stream id on read',
          code: 'invalid_argument',
          call: (s) => s.readStream(''),
        },
        {
          name: 'a negative read position',
          code: 'invalid_argument',
          call: (s) => s.readAll({ after: -1 }),
        },
        {
          name: 'a zero batch size',
          code: 'invalid_argument',
          call: (s) => s.readAll({ maxCount: 0 }),
        },
        {
          name: 'an unknown read direction',
          code: 'invalid_argument',
          call: (s) => s.readStream('s', { direction: 'sideways' as never }),
        },
      ];
      for (const c of bad) {
        it(
          c.name,
          withStore(async (store) => {
            await store.appendToStream('seed', [{ type: 'Seed', data: {}, eventId: 'seed-event' }]);
            const head = await store.headPosition();
            await assertFailsWith(c.call(store), c.code);
            assert.equal(await store.headPosition(), head);
            assert.equal(await store.streamVersion('s'), 0);
            assert.deepEqual(
              (await store.listStreams()).map((s) => s.streamId),
              ['seed'],
            );
          }),
        );
      }

      it(
        'refuses calls after close',
        withStore(async (store) => {
          await store.close();
          await assertFailsWith(store.appendToStream('s', [ev('E')]), 'closed');
          await assertFailsWith(store.readAll(), 'closed');
        }),
      );
    });
  });
}
