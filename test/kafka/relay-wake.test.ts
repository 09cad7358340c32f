// How the relay learns of new events: an append announced while it reads the store (or while a
// transaction commits) is published without waiting for the poll interval, and read while the
// previous transaction commits. The poll interval here is an hour, so only the append's
// notification can get an event published within the test's time.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Event, Logger, ReadAllOptions, RecordedEvent } from 'tidemark';
import { MemoryEventStore } from 'tidemark/memory';
import {
  EventTopics,
  KafkaAdmin,
  KafkaReader,
  KafkaRelay,
  decodeEvent,
} from '../../src/kafka/internal.ts';
import { kafkaConnection, uniqueName, uniqueTopic } from '../support/services.ts';

const TEST = { timeout: 90_000 };
const AN_HOUR = 3_600_000;

/**
 * A memory store whose `readAll` can run a hook after the read's result is taken and before it
 * is returned: an append made there is announced while the relay reads, and missing from what
 * that read returns (as an append committing after a PostgreSQL read's snapshot is).
 */
class HookedStore extends MemoryEventStore {
  hook:
    ((options: ReadAllOptions | undefined, result: RecordedEvent[]) => Promise<void>) | undefined;
  override async readAll<E extends Event = Event>(
    options?: ReadAllOptions,
  ): Promise<RecordedEvent<E>[]> {
    const result = await super.readAll<E>(options);
    await this.hook?.(options, result);
    return result;
  }
}

/** A logger that resolves `published(position)` once a transaction up to it has committed. */
function committedLog(): Logger & { published(position: number): Promise<void> } {
  let last = 0;
  const waiting = new Set<{ position: number; resolve: () => void }>();
  const noop = () => {};
  return {
    info: noop,
    warn: noop,
    error: noop,
    debug(obj: object, msg?: string) {
      if (msg !== 'relay transaction committed') return;
      last = Math.max(last, (obj as { position: number }).position);
      for (const w of waiting) {
        if (last >= w.position) {
          waiting.delete(w);
          w.resolve();
        }
      }
    },
    published(position: number) {
      if (last >= position) return Promise.resolve();
      return new Promise((resolve) => waiting.add({ position, resolve }));
    },
  };
}

/** Fails the test after `ms`: the relay's poll interval (an hour) would be the only other way. */
async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what}: not within ${ms} ms (the poll interval is an hour)`)),
      ms,
    );
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

describe('kafka: relay wake-up', () => {
  let admin: KafkaAdmin;
  const topics: string[] = [];
  before(() => {
    admin = new KafkaAdmin(kafkaConnection());
  });
  after(async () => {
    for (const topic of topics) await admin.deleteTopic(topic, { ifExists: true });
    await admin.close();
  });

  function relayFor(store: MemoryEventStore, logger: Logger) {
    const topic = uniqueTopic('relay-wake');
    const progress = uniqueTopic('relay-wake-progress');
    topics.push(topic, progress);
    const relay = new KafkaRelay({
      connection: kafkaConnection(),
      store,
      topics: new EventTopics({ categories: { order: topic }, settings: { partitions: 2 } }),
      source: 'tidemark://test',
      name: uniqueName('relay-wake'),
      progressTopic: progress,
      batchSize: 50,
      pollIntervalMs: AN_HOUR,
      logger,
    });
    return { relay, topic };
  }

  /** A hooked memory store, and a started relay on it whose log tells its commits. */
  async function startedRelay() {
    const store = new HookedStore();
    const log = committedLog();
    const { relay, topic } = relayFor(store, log);
    await relay.start();
    return { store, log, relay, topic };
  }

  async function published(topic: string): Promise<string[]> {
    const reader = new KafkaReader(kafkaConnection());
    try {
      return (await reader.readAll(topic)).map((r) => decodeEvent(r).eventId);
    } finally {
      await reader.close();
    }
  }

  it(
    'an append announced while a read that misses it runs is published without waiting for the poll interval',
    TEST,
    async () => {
      const { store, log, relay, topic } = await startedRelay();
      try {
        // The first read after the hook is set that finds nothing new (the start's, or the one
        // after the first event's transaction): an append lands and is announced meanwhile.
        const duringRead = Promise.withResolvers<number>();
        store.hook = async (_options, result) => {
          if (result.length > 0) return;
          store.hook = undefined;
          const { position } = await store.appendToStream('order-2', [
            { type: 'Counted', data: { n: 2 } },
          ]);
          duringRead.resolve(position);
        };
        const first = await store.appendToStream('order-1', [{ type: 'Counted', data: { n: 1 } }]);
        await within(30_000, 'the first event published', log.published(first.position));
        const second = await within(30_000, 'an append during a read', duringRead.promise);
        await within(30_000, 'the event appended during a read published', log.published(second));
        assert.equal(relay.position, await store.headPosition());
      } finally {
        await relay.stop();
      }
      const stored = (await store.readAll()).map((e) => e.eventId);
      assert.deepEqual((await published(topic)).sort(), [...stored].sort(), 'each event once');
    },
  );

  it(
    'an append announced during a transaction is read while that transaction commits, and published',
    TEST,
    async () => {
      const { store, log, relay, topic } = await startedRelay();
      try {
        // Each read that finds events appends one more (three times): it is announced while the
        // batch just read is still to be published.
        const readsAhead: { after: number; committed: number }[] = [];
        let more = 3;
        store.hook = async (options, result) => {
          const after = options?.after ?? 0;
          if (after > relay.position) readsAhead.push({ after, committed: relay.position });
          if (result.length === 0 || more === 0) return;
          more--;
          await store.appendToStream(`order-${more}`, [{ type: 'Counted', data: { more } }]);
        };
        await store.appendToStream('order-9', [{ type: 'Counted', data: { n: 9 } }]);
        await within(30_000, 'all four events published', log.published(4));
        assert.ok(
          readsAhead.length > 0,
          'a read began past the committed position (while a transaction committed)',
        );
        assert.equal(relay.position, 4);
      } finally {
        await relay.stop();
      }
      const stored = (await store.readAll()).map((e) => e.eventId);
      assert.equal(stored.length, 4);
      assert.deepEqual((await published(topic)).sort(), [...stored].sort(), 'each event once');
    },
  );
});
