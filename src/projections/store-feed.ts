/**
 * The store's global log as a feed: batches read with the gap-safe `readAll`, and each
 * version's checkpoint a log position (`tm_projections.position`), moved by compare-and-set in
 * the read-model transaction.
 *
 * One reader serves every version of its engine: it reads from the lowest checkpoint among
 * them, and each version applies only the events past its own.
 */
import {
  InvalidArgumentError,
  type ConsistencyToken,
  type EventStore,
  type RecordedEvent,
} from '../core/index.ts';
import { ProgressMovedError } from './applier.ts';
import type { Feed, FeedBatch, FeedHost, FeedLag, FeedReader, Slot, SlotWork } from './feed.ts';
import { ledger } from './ledger.ts';

export interface StoreFeedOptions {
  /** Events read and applied per transaction. Default 500. */
  batchSize?: number;
  /** How often to look for new events when no append notification comes. Default 1000 ms. */
  pollIntervalMs?: number;
}

/**
 * The feed of a runner or host: the one given, else the log of the store given. Throws when
 * neither is.
 */
export function feedOf(
  options: { feed?: Feed; store?: EventStore } & StoreFeedOptions,
  who: string,
): Feed {
  if (options.feed) return options.feed;
  if (!options.store) {
    throw new InvalidArgumentError('feed', `${who} needs a feed, or the store whose log feeds it`);
  }
  return storeFeed(options.store, {
    ...(options.batchSize !== undefined ? { batchSize: options.batchSize } : {}),
    ...(options.pollIntervalMs !== undefined ? { pollIntervalMs: options.pollIntervalMs } : {}),
  });
}

/** A feed over `store`'s global log. */
export function storeFeed(store: EventStore, options: StoreFeedOptions = {}): Feed {
  const batchSize = options.batchSize ?? 500;
  const pollIntervalMs = options.pollIntervalMs ?? 1000;
  return {
    kind: 'store',
    dedupeByStream: false,
    ...(store.upcasters ? { upcasters: store.upcasters } : {}),
    ...(store.personalData ? { personalData: store.personalData } : {}),
    open: (host) => new StoreFeedReader(store, host, batchSize, pollIntervalMs),
    lagOf: (_sink, row) => storeLag(store, row.position),
  };
}

async function storeLag(store: EventStore, position: number): Promise<FeedLag> {
  const head = await store.headPosition();
  const lagEvents = Math.max(0, head - position);
  let lagSeconds = 0;
  if (lagEvents > 0) {
    const [next] = await store.readAll({ after: position, maxCount: 1, upcast: false });
    if (next) lagSeconds = Math.max(0, (Date.now() - next.recordedAt.getTime()) / 1000);
  }
  return { head, lagEvents, lagSeconds };
}

class StoreFeedReader implements FeedReader {
  readonly #store: EventStore;
  readonly #host: FeedHost;
  readonly #batchSize: number;
  readonly #pollIntervalMs: number;
  /** Each version's committed checkpoint: the compare-and-set's expectation. */
  readonly #stored = new Map<Slot, number>();
  #unsubscribe: (() => void) | undefined;
  #wake: (() => void) | undefined;
  #woken = false;
  #fullBatch = false;

  constructor(store: EventStore, host: FeedHost, batchSize: number, pollIntervalMs: number) {
    this.#store = store;
    this.#host = host;
    this.#batchSize = batchSize;
    this.#pollIntervalMs = pollIntervalMs;
  }

  async start(): Promise<void> {
    await this.resync();
    this.#unsubscribe = this.#store.onAppended(() => this.wake());
  }

  async slotsChanged(): Promise<void> {
    const slots = new Set(this.#host.slots());
    for (const slot of this.#stored.keys()) if (!slots.has(slot)) this.#stored.delete(slot);
    for (const slot of slots) if (!this.#stored.has(slot)) await this.#load(slot);
  }

  async resync(): Promise<void> {
    this.#stored.clear();
    for (const slot of this.#host.slots()) await this.#load(slot);
  }

  async #load(slot: Slot): Promise<void> {
    const row = await ledger.projection(this.#host.sink, slot.name, slot.version);
    const position = row?.position ?? 0;
    this.#stored.set(slot, position);
    slot.position = position;
  }

  async next(): Promise<FeedBatch | undefined> {
    // An embedded store answers without I/O, so a catch-up would otherwise run as one long chain
    // of microtasks: yield between full batches so requests and timers get their turn.
    if (this.#fullBatch) await new Promise((resolve) => setImmediate(resolve));
    let after = Infinity;
    for (const position of this.#stored.values()) after = Math.min(after, position);
    if (after === Infinity) after = 0;
    this.#woken = false;
    const events = await this.#store.readAll({
      after,
      maxCount: this.#batchSize,
      upcast: false,
    });
    this.#fullBatch = events.length === this.#batchSize;
    if (events.length > 0) return this.#batch(events);
    await this.#idle();
    return undefined;
  }

  #batch(events: readonly RecordedEvent[]): FeedBatch {
    return {
      events,
      forSlot: (slot) => {
        const from = this.#stored.get(slot);
        if (from === undefined) return undefined;
        const mine = from < events[0]!.position ? events : events.filter((e) => e.position > from);
        return mine.length === 0 ? undefined : this.#work(slot, from, mine);
      },
    };
  }

  #work(slot: Slot, from: number, events: readonly RecordedEvent[]): SlotWork {
    let saved = from;
    const { name, version } = slot;
    return {
      events,
      // Before any handler runs: a version retired meanwhile (its tables may be gone) or a
      // checkpoint another runner moved means roll back, reload, go on.
      claim: async (sql) => {
        if (!(await ledger.claimBatch(sql, name, version, saved))) {
          throw new ProgressMovedError(name, version);
        }
      },
      save: async (sql, upTo, streamVersions) => {
        if (streamVersions) await ledger.saveStreamVersions(sql, name, version, streamVersions);
        const to = events[upTo]!.position;
        if (!(await ledger.advancePosition(sql, name, version, saved, to))) {
          throw new ProgressMovedError(name, version);
        }
      },
      committed: (upTo) => {
        saved = events[upTo]!.position;
        this.#stored.set(slot, saved);
        if (saved > slot.position) slot.position = saved;
      },
    };
  }

  /** Waits for an append notification, the poll interval, or stop. */
  #idle(): Promise<void> {
    const signal = this.#host.signal;
    if (this.#woken || signal.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, this.#pollIntervalMs);
      signal.addEventListener('abort', done, { once: true });
      this.#wake = done;
    });
  }

  wake(): void {
    this.#woken = true;
    this.#wake?.();
  }

  target(): Promise<number> {
    return this.#store.headPosition();
  }

  async reached(slot: Slot, target: unknown): Promise<boolean> {
    const position = target as number;
    if ((this.#stored.get(slot) ?? 0) >= position) return true;
    // Another process may build the same version.
    const row = await ledger.projection(this.#host.sink, slot.name, slot.version);
    return (row?.position ?? 0) >= position;
  }

  async caughtUp(slot: Slot): Promise<boolean> {
    return (this.#stored.get(slot) ?? 0) >= (await this.#store.headPosition());
  }

  lag(slot: Slot): Promise<FeedLag> {
    return storeLag(this.#store, this.#stored.get(slot) ?? slot.position);
  }

  canSignal(): boolean {
    return true;
  }

  satisfied(slot: Slot, token: ConsistencyToken): boolean {
    return (this.#stored.get(slot) ?? 0) >= token.position;
  }

  async close(): Promise<void> {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    this.#wake?.();
  }
}
