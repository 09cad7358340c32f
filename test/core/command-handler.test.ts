import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  BusinessRuleError,
  CommandHandler,
  NO_STREAM,
  STREAM_EXISTS,
  isTidemarkError,
  type Decider,
  type Event,
  type EventStore,
} from 'tidemark';
import { MemoryEventStore } from 'tidemark/memory';
import { assertFailsWith } from 'tidemark/testing';
import { withFaults } from '../support/faults.ts';

type CounterEvent =
  { type: 'Opened'; data: { limit: number } } | { type: 'Incremented'; data: { by: number } };
type CounterCommand =
  | { type: 'Open'; data: { limit: number } }
  | { type: 'Increment'; data: { by: number } }
  | { type: 'Touch'; data: Record<string, never> };
interface CounterState {
  opened: boolean;
  limit: number;
  value: number;
}

const counter: Decider<CounterState, CounterCommand, CounterEvent> = {
  initialState: () => ({ opened: false, limit: 0, value: 0 }),
  evolve: (state, event) => {
    switch (event.type) {
      case 'Opened':
        return { ...state, opened: true, limit: event.data.limit };
      case 'Incremented':
        return { ...state, value: state.value + event.data.by };
      default: {
        const unknown: never = event;
        return unknown;
      }
    }
  },
  decide: (command, state) => {
    switch (command.type) {
      case 'Open':
        if (state.opened)
          throw new BusinessRuleError('already_open', 'the counter is already open');
        return { type: 'Opened', data: { limit: command.data.limit } };
      case 'Increment':
        if (!state.opened) throw new BusinessRuleError('not_open', 'open the counter first');
        if (state.value + command.data.by > state.limit) {
          throw new BusinessRuleError('limit_reached', 'the counter would pass its limit');
        }
        return [{ type: 'Incremented', data: { by: command.data.by } }];
      case 'Touch':
        return [];
      default: {
        const unknown: never = command;
        return unknown;
      }
    }
  },
};

const open = (limit = 1000): CounterCommand => ({ type: 'Open', data: { limit } });
const inc = (by = 1): CounterCommand => ({ type: 'Increment', data: { by } });

describe('CommandHandler', () => {
  it('loads, decides, appends, and returns events, version, position and state', async () => {
    const store = new MemoryEventStore();
    const handler = new CommandHandler({ decider: counter, store });
    const first = await handler.handle('counter-1', open(), { metadata: { correlationId: 'c-1' } });
    assert.equal(first.nextExpectedVersion, 1);
    assert.equal(first.events.length, 1);
    assert.equal(first.events[0]!.type, 'Opened');
    assert.equal(first.events[0]!.metadata.correlationId, 'c-1');
    assert.equal(first.position, first.events[0]!.position);
    const second = await handler.handle('counter-1', inc(5));
    assert.equal(second.nextExpectedVersion, 2);
    assert.deepEqual(second.state, { opened: true, limit: 1000, value: 5 });
    assert.deepEqual((await handler.load('counter-1')).state, second.state);
  });

  it('appends nothing when the decision is to do nothing', async () => {
    const store = new MemoryEventStore();
    const handler = new CommandHandler({ decider: counter, store });
    await handler.handle('c', open());
    const result = await handler.handle('c', { type: 'Touch', data: {} });
    assert.deepEqual(result.events, []);
    assert.equal(result.nextExpectedVersion, 1);
    assert.equal(result.position, undefined);
    assert.equal(await store.headPosition(), 1);
  });

  it('lets business rule errors through and writes nothing', async () => {
    const store = new MemoryEventStore();
    const handler = new CommandHandler({ decider: counter, store });
    const error = await assertFailsWith(handler.handle('c', inc()), 'business_rule_violated');
    assert.equal((error as BusinessRuleError).rule, 'not_open');
    assert.equal(await store.headPosition(), 0);
  });

  it('fails a pinned version that does not match, without deciding', async () => {
    const store = new MemoryEventStore();
    const handler = new CommandHandler({ decider: counter, store });
    await handler.handle('c', open());
    await handler.handle('c', inc());
    const error = await assertFailsWith(
      handler.handle('c', inc(), { expectedVersion: 1 }),
      'wrong_expected_version',
    );
    assert.equal((error as { actual: number }).actual, 2);
    assert.equal(await store.streamVersion('c'), 2);
    const ok = await handler.handle('c', inc(), { expectedVersion: 2 });
    assert.equal(ok.nextExpectedVersion, 3);
  });

  it('reports a missing stream when the caller pins a version or STREAM_EXISTS', async () => {
    const store = new MemoryEventStore();
    const handler = new CommandHandler({ decider: counter, store });
    await assertFailsWith(handler.handle('c', inc(), { expectedVersion: 3 }), 'stream_not_found');
    await assertFailsWith(
      handler.handle('c', inc(), { expectedVersion: STREAM_EXISTS }),
      'stream_not_found',
    );
    const created = await handler.handle('c', open(), { expectedVersion: NO_STREAM });
    assert.equal(created.nextExpectedVersion, 1);
    await assertFailsWith(
      handler.handle('c', open(), { expectedVersion: NO_STREAM }),
      'wrong_expected_version',
    );
  });

  it('runs the commands of one stream one at a time in a process: no conflicts, no retries', async () => {
    const store = new MemoryEventStore();
    let appends = 0;
    const counted = withFaults<EventStore>(store, {
      appendToStream: ((...args: Parameters<EventStore['appendToStream']>) => {
        appends++;
        return store.appendToStream(...args);
      }) as EventStore['appendToStream'],
    });
    const handler = new CommandHandler({ decider: counter, store: counted, maxRetries: 0 });
    await handler.handle('c', open(1000));
    const results = await Promise.all(
      Array.from({ length: 30 }, () => handler.handle('c', inc(1))),
    );
    assert.deepEqual(
      results.map((r) => r.nextExpectedVersion),
      Array.from({ length: 30 }, (_, i) => i + 2),
    );
    assert.equal(appends, 31);
  });

  it('decides again on fresh state after losing a race to another writer, when the version is not pinned', async () => {
    const store = new MemoryEventStore();
    // Two handlers on one store: two processes, as far as the store can tell.
    const handler = new CommandHandler({ decider: counter, store, maxRetries: 100 });
    const other = new CommandHandler({ decider: counter, store, maxRetries: 100 });
    await handler.handle('c', open(1000));
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) => (i % 2 === 0 ? handler : other).handle('c', inc(2))),
    );
    assert.deepEqual(
      results.map((r) => r.nextExpectedVersion).sort((a, b) => a - b),
      Array.from({ length: 30 }, (_, i) => i + 2),
    );
    assert.equal((await handler.load('c')).state.value, 60);
  });

  it('re-checks the rules on retry: a limit is never passed by racing commands', async () => {
    const store = new MemoryEventStore();
    const handlers = [1, 2, 3].map(
      () => new CommandHandler({ decider: counter, store, maxRetries: 100 }),
    );
    const handler = handlers[0]!;
    await handler.handle('c', open(10));
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) => handlers[i % 3]!.handle('c', inc(1))),
    );
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 10);
    for (const r of results) {
      if (r.status === 'rejected')
        assert.equal((r.reason as BusinessRuleError).rule, 'limit_reached');
    }
    assert.equal((await handler.load('c')).state.value, 10);
  });

  it('gives up with the conflict after maxRetries, and does not retry a pinned version', async () => {
    const store = new MemoryEventStore();
    let appends = 0;
    // A store whose every append loses a race: injects the fault, everything else is real.
    const losing: EventStore = withFaults<EventStore>(store, {
      appendToStream: async () => {
        appends++;
        await store.appendToStream('c', [{ type: 'Incremented', data: { by: 0 } }]);
        return store.appendToStream('c', [{ type: 'Incremented', data: { by: 0 } }], {
          expectedVersion: 0,
        });
      },
    } as Partial<EventStore>);
    await new CommandHandler({ decider: counter, store }).handle('c', open());
    const handler = new CommandHandler({ decider: counter, store: losing, maxRetries: 3 });
    await assertFailsWith(handler.handle('c', inc()), 'wrong_expected_version');
    assert.equal(appends, 4);
    appends = 0;
    const version = await store.streamVersion('c');
    await assertFailsWith(
      handler.handle('c', inc(), { expectedVersion: version }),
      'wrong_expected_version',
    );
    assert.equal(appends, 1);
  });

  describe('snapshots', () => {
    it('snapshots every N events and loads from snapshot plus tail', async () => {
      const store = new MemoryEventStore();
      const policy = { store, every: 10, stateVersion: 1 };
      const handler = new CommandHandler({ decider: counter, store, snapshots: policy });
      await handler.handle('c', open());
      for (let i = 0; i < 24; i++) await handler.handle('c', inc());
      const snapshot = await store.readSnapshot('c');
      assert.equal(snapshot?.streamVersion, 20);
      assert.deepEqual(snapshot?.state, { opened: true, limit: 1000, value: 19 });
      const loaded = await handler.load('c');
      assert.equal(loaded.fromSnapshot, 20);
      assert.equal(loaded.version, 25);
      assert.equal(loaded.state.value, 24);
    });

    it('ignores a snapshot of another state version instead of misreading it', async () => {
      const store = new MemoryEventStore();
      const handler = new CommandHandler({ decider: counter, store });
      await handler.handle('c', open());
      for (let i = 0; i < 5; i++) await handler.handle('c', inc());
      // A snapshot from an older state shape: same stream, same version, different layout.
      await store.writeSnapshot({
        streamId: 'c',
        streamVersion: 6,
        stateVersion: 1,
        state: { count: 'five' },
      });
      const v2 = new CommandHandler({
        decider: counter,
        store,
        snapshots: { store, every: 100, stateVersion: 2 },
      });
      const loaded = await v2.load('c');
      assert.equal(loaded.fromSnapshot, undefined);
      assert.deepEqual(loaded.state, { opened: true, limit: 1000, value: 5 });
    });

    it('reads snapshot and tail in one call when the store offers it and keeps the snapshots', async () => {
      const calls: string[] = [];
      class Combined extends MemoryEventStore {
        override async readSnapshot(streamId: string) {
          calls.push('readSnapshot');
          return super.readSnapshot(streamId);
        }
        async readFromSnapshot<E extends Event = Event>(streamId: string, stateVersion: number) {
          calls.push('readFromSnapshot');
          const snapshot = await super.readSnapshot(streamId);
          const from = snapshot?.stateVersion === stateVersion ? snapshot.streamVersion + 1 : 1;
          return { snapshot, events: await this.readStream<E>(streamId, { fromVersion: from }) };
        }
      }
      const store = new Combined();
      const handler = new CommandHandler({
        decider: counter,
        store,
        snapshots: { store, every: 2, stateVersion: 1 },
      });
      await handler.handle('c', open());
      await handler.handle('c', inc(2));
      await handler.handle('c', inc(3));
      calls.length = 0;
      const loaded = await handler.load('c');
      assert.deepEqual(calls, ['readFromSnapshot']);
      assert.equal(loaded.fromSnapshot, 2);
      assert.deepEqual(loaded.state, { opened: true, limit: 1000, value: 5 });
      assert.equal(loaded.version, 3);
      // A snapshot store other than the event store: two reads, as before.
      const other = new MemoryEventStore();
      const apart = new CommandHandler({
        decider: counter,
        store,
        snapshots: { store: other, every: 2, stateVersion: 1 },
      });
      calls.length = 0;
      assert.deepEqual((await apart.load('c')).state, { opened: true, limit: 1000, value: 5 });
      assert.deepEqual(calls, []);
    });

    it('uses toSnapshot and fromSnapshot, and a failed snapshot write does not fail the command', async () => {
      const store = new MemoryEventStore();
      const failing = withFaults(store, {
        writeSnapshot: async () => {
          throw new Error('disk full');
        },
      });
      const warnings: unknown[] = [];
      const handler = new CommandHandler({
        decider: counter,
        store,
        snapshots: { store: failing, every: 1, stateVersion: 1 },
        logger: { debug() {}, info() {}, warn: (o) => warnings.push(o), error() {} },
      });
      const result = await handler.handle('c', open());
      assert.equal(result.nextExpectedVersion, 1);
      assert.equal(warnings.length, 1);

      const packed = new CommandHandler({
        decider: counter,
        store,
        snapshots: {
          store,
          every: 2,
          stateVersion: 1,
          toSnapshot: (s) => [s.opened, s.limit, s.value],
          fromSnapshot: (d) => {
            const [opened, limit, value] = d as [boolean, number, number];
            return { opened, limit, value };
          },
        },
      });
      await packed.handle('c', inc(3));
      assert.deepEqual((await store.readSnapshot('c'))?.state, [true, 1000, 3]);
      assert.deepEqual((await packed.load('c')).state, { opened: true, limit: 1000, value: 3 });
    });
  });

  it('checks its options once, at construction', () => {
    const store = new MemoryEventStore();
    for (const bad of [
      { decider: {} as never, store },
      { decider: counter, store, maxRetries: -1 },
      { decider: counter, store, snapshots: { store, every: 0, stateVersion: 1 } },
      { decider: counter, store, snapshots: { store, every: 10, stateVersion: 0 } },
    ]) {
      assert.throws(
        () => new CommandHandler(bad as never),
        (e) => isTidemarkError(e, 'invalid_argument'),
      );
    }
  });
});
