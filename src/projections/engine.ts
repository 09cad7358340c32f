/**
 * The projection engine: runs physical versions of projections ("slots") over one feed (the
 * store's log, or a Kafka consumer group). Whatever the feed, the engine owns, once:
 *
 * - applying: one read-model transaction per batch for every slot (their changes and
 *   checkpoints together); when that fails, each slot on its own, and within a slot each event
 *   on its own, retried with backoff and then parked with the later events of its stream
 *   (ProjectionApplier). Upcasting happens there too, at consumption.
 * - switch-over: a `building` slot that has caught up becomes `active` in one transaction that
 *   retires the old version, whose tables are dropped after a grace period.
 * - retirement: a slot whose version another process retired (or dropped) leaves the engine.
 * - waiters (`whenCaughtUp`, consistency tokens), status, and `lastError`, set while the loop
 *   retries and cleared once it goes on.
 */
import {
  ClosedError,
  silentLogger,
  type ConsistencyToken,
  type Logger,
  type ProjectionDefinition,
  type ProjectionSink,
  type ProjectionState,
  type PersonalDataReader,
  type Upcasters,
} from '../core/index.ts';
import {
  ProgressMovedError,
  ProjectionApplier,
  abortableDelay,
  type RetryPolicy,
} from './applier.ts';
import type {
  Feed,
  FeedBatch,
  FeedKind,
  FeedReader,
  PartitionStatus,
  Slot,
  SlotWork,
} from './feed.ts';
import { ledger, type ProjectionRow } from './ledger.ts';
import { dropRetired } from './versions.ts';

/** What status reports of one physical version run by an engine. */
export interface ProjectionStatus {
  name: string;
  /** The physical version. */
  version: number;
  feed: FeedKind;
  state: ProjectionState | 'stopped';
  /** The highest global log position applied by this process. */
  position: number;
  /** Store-fed: the store's head when last read. */
  head?: number;
  /** Events (store) or records (Kafka) not applied yet. */
  lagEvents: number;
  /** Age of the oldest one not applied yet (0 when caught up). */
  lagSeconds: number;
  parked: number;
  /** Streams held behind a gap (a version that has not arrived; see ParkReason `gap`). */
  gaps: number;
  /** Events applied per second over the last batch, for progress reports. */
  eventsPerSecond: number;
  /** The error the engine is retrying after, if any (cleared once it goes on). */
  lastError?: string;
  /** Kafka-fed: per partition. */
  partitions?: PartitionStatus[];
}

export interface ProjectionEngineOptions {
  feed: Feed;
  sink: ProjectionSink;
  /** The feed's group for this engine (see Feed.groupFor). */
  group?: string;
  /** Default: the feed's (a store's own upcasters). */
  upcasters?: Upcasters;
  /** Default: the feed's (a protecting store's own). */
  personalData?: PersonalDataReader;
  retry?: Partial<RetryPolicy>;
  /** How long a retired version's tables stay before they are dropped. Default 10 000 ms. */
  dropGraceMs?: number;
  logger?: Logger;
}

type TokenWaiter = {
  slot: Slot;
  token: ConsistencyToken;
  resolve: (reached: boolean) => void;
  timer: NodeJS.Timeout;
};

export class ProjectionEngine {
  readonly feed: Feed;
  readonly group: string | undefined;
  readonly #sink: ProjectionSink;
  readonly #options: ProjectionEngineOptions;
  readonly #logger: Logger;
  readonly #abort = new AbortController();
  #slots: Slot[] = [];
  /**
   * Slots were added or removed since the reader last loaded their checkpoints: the loop tells
   * it between two batches (a feed skips a slot whose checkpoint it has not loaded).
   */
  #slotsChanged = false;
  #reader: FeedReader | undefined;
  #loop: Promise<void> | undefined;
  #rate = 0;
  #failure: unknown;
  readonly #tokenWaiters = new Set<TokenWaiter>();
  readonly #changeListeners = new Set<() => void>();
  readonly #switchListeners = new Set<(slot: Slot) => void>();
  readonly #dropTimers = new Set<NodeJS.Timeout>();

  constructor(options: ProjectionEngineOptions) {
    this.feed = options.feed;
    this.group = options.group;
    this.#sink = options.sink;
    this.#options = options;
    this.#logger = options.logger ?? silentLogger;
  }

  /** The versions this engine runs now. */
  get slots(): readonly Slot[] {
    return this.#slots;
  }

  /** The error the loop is retrying after, if any. */
  get lastError(): unknown {
    return this.#failure;
  }

  /** Resolves when the engine has stopped: after `stop()`, or when its last slot was retired. */
  get finished(): Promise<void> {
    return this.#loop ?? Promise.resolve();
  }

  /** Kafka: the partitions this engine's group member owns now (empty for other feeds). */
  get assignment(): readonly { topic: string; partition: number }[] {
    return this.#reader?.assignment ?? [];
  }

  get stopped(): boolean {
    return this.#abort.signal.aborted;
  }

  /**
   * Adds a physical version (a ledger row of this engine's feed). Before `start` it is part of
   * the first read; after, it joins between two batches (a Kafka feed repositions then).
   */
  async add(definition: ProjectionDefinition, row: ProjectionRow): Promise<Slot> {
    if (this.#abort.signal.aborted) throw new ClosedError(`projection engine`);
    const applier = new ProjectionApplier({
      definition,
      version: row.version,
      sink: this.#sink,
      dedupeByStream: this.feed.dedupeByStream,
      logger: this.#logger,
      signal: this.#abort.signal,
      ...this.#upcasters(),
      ...(this.#options.retry ? { retry: this.#options.retry } : {}),
    });
    await applier.loadParked();
    const slot: Slot = {
      definition,
      name: definition.name,
      version: row.version,
      applier,
      state: row.state,
      position: row.position,
    };
    this.#slots.push(slot);
    if (this.#loop) {
      this.#slotsChanged = true;
      this.#reader?.wake();
    }
    return slot;
  }

  #upcasters(): { upcasters?: Upcasters; personalData?: PersonalDataReader } {
    const upcasters = this.#options.upcasters ?? this.feed.upcasters;
    const personalData = this.#options.personalData ?? this.feed.personalData;
    return {
      ...(upcasters ? { upcasters } : {}),
      ...(personalData ? { personalData } : {}),
    };
  }

  async start(): Promise<void> {
    if (this.#loop) return;
    if (this.#abort.signal.aborted) throw new ClosedError('projection engine');
    const reader = this.feed.open(
      {
        sink: this.#sink,
        logger: this.#logger,
        signal: this.#abort.signal,
        slots: () => this.#slots,
        changed: () => this.#changed(),
      },
      this.group,
    );
    this.#reader = reader;
    try {
      await reader.start();
    } catch (error) {
      await reader.close().catch(() => {});
      this.#reader = undefined;
      throw error;
    }
    this.#loop = this.#run(reader);
  }

  async #run(reader: FeedReader): Promise<void> {
    const signal = this.#abort.signal;
    let delay = 100;
    while (!signal.aborted) {
      try {
        if (this.#slotsChanged) {
          this.#slotsChanged = false;
          await reader.slotsChanged();
          this.#changed();
        }
        let batch;
        try {
          batch = await reader.next();
        } catch (error) {
          if (!this.feed.isFatal?.(error) || signal.aborted) throw error;
          // The feed cannot go on by itself (its position is outside what the source holds, the
          // source is gone): stop, loudly, rather than retry forever or skip what was lost.
          this.#failure = error;
          this.#logger.error(
            { feed: this.feed.kind, group: this.group, err: error },
            'projection engine stopped: its feed cannot go on; an operator must act',
          );
          for (const slot of this.#slots) slot.state = 'stopped';
          void this.stop();
          break;
        }
        if (signal.aborted) break;
        if (batch === undefined) {
          this.#rate = 0;
          for (const slot of this.#slots) {
            if (slot.state === 'building') await this.#switchOver(reader, slot);
          }
          this.#failure = undefined;
          this.#changed();
          continue;
        }
        await this.#apply(reader, batch);
        delay = 100;
        this.#failure = undefined;
      } catch (error) {
        if (signal.aborted) break;
        this.#failure = error;
        this.#logger.error(
          { feed: this.feed.kind, group: this.group, err: error, retryInMs: delay },
          'projection engine error; retrying',
        );
        this.#changed();
        await abortableDelay(delay, signal);
        delay = Math.min(delay * 2, 5000);
        await reader.resync().catch(() => {});
        for (const slot of this.#slots) await slot.applier.loadParked().catch(() => {});
      }
    }
  }

  /** Applies one batch: every slot in one transaction, or each on its own when that fails. */
  async #apply(reader: FeedReader, batch: FeedBatch): Promise<void> {
    const started = performance.now();
    const works: { slot: Slot; work: SlotWork }[] = [];
    for (const slot of this.#slots) {
      const work = batch.forSlot(slot);
      if (work) works.push({ slot, work });
    }
    let together = false;
    if (works.length > 1) {
      try {
        await this.#sink.transaction(async (sql) => {
          for (const { slot, work } of works) await slot.applier.applyIn(sql, work);
        });
        together = true;
        for (const { work } of works) work.committed(work.events.length - 1);
      } catch (error) {
        if (this.#sink.isTransientError(error)) throw error;
        this.#logger.debug(
          { feed: this.feed.kind, err: error },
          'batch failed for one of the projections; applying it to each on its own',
        );
      }
    }
    if (!together) {
      for (const { slot, work } of works) {
        try {
          await slot.applier.applyBatch(work);
        } catch (error) {
          if (!(error instanceof ProgressMovedError)) throw error;
          await this.#moved(reader, slot);
        }
      }
    }
    const seconds = (performance.now() - started) / 1000;
    this.#rate = seconds > 0 ? batch.events.length / seconds : 0;
    this.#notify(works);
  }

  /** Another runner moved a slot's checkpoint, or retired its version: reload or let it go. */
  async #moved(reader: FeedReader, slot: Slot): Promise<void> {
    const state = await ledger.state(this.#sink, slot.name, slot.version);
    if (state === undefined || state === 'retired') {
      this.#logger.info(
        { projection: slot.name, version: slot.version },
        'version retired elsewhere; no longer applied here',
      );
      this.retire(slot);
      return;
    }
    this.#logger.warn(
      { projection: slot.name, version: slot.version, feed: this.feed.kind },
      'another runner moved the checkpoint (a rebalance or a second runner); reloading it',
    );
    await reader.resync();
  }

  /** The slot's version was retired (or dropped) elsewhere: it leaves the engine. */
  retire(slot: Slot): void {
    if (!this.#slots.includes(slot)) return;
    slot.state = 'retired';
    this.#slots = this.#slots.filter((s) => s !== slot);
    for (const waiter of this.#tokenWaiters) {
      if (waiter.slot === slot) this.#settle(waiter, false);
    }
    this.#slotsChanged = true;
    this.#changed();
    if (this.#slots.length === 0) {
      // Nothing left to run: the engine stops by itself (the host forgets it).
      void this.stop();
    }
  }

  async #switchOver(reader: FeedReader, slot: Slot): Promise<void> {
    if (!(await reader.caughtUp(slot))) return;
    const retired = await this.#sink.transaction(async (sql) => {
      // One transaction, after the feed said nothing is left beyond this slot's checkpoint.
      if ((await ledger.state(sql, slot.name, slot.version)) !== 'building') return undefined;
      return ledger.activate(sql, slot.name, slot.version);
    });
    if (retired === undefined) {
      // Someone else switched (or retired) this version meanwhile.
      const state = await ledger.state(this.#sink, slot.name, slot.version);
      if (state === undefined || state === 'retired') {
        this.retire(slot);
        return;
      }
      slot.state = state;
      this.#changed();
      // Another runner built the same version and switched first: it is active all the same.
      if (state === 'active') for (const listener of this.#switchListeners) listener(slot);
      return;
    }
    slot.state = 'active';
    this.#logger.info(
      { projection: slot.name, version: slot.version, retired: retired.map((r) => r.version) },
      'switched over',
    );
    this.#changed();
    for (const listener of this.#switchListeners) listener(slot);
    if (retired.length > 0) this.#scheduleDrop(slot.name);
  }

  #scheduleDrop(name: string): void {
    const grace = this.#options.dropGraceMs ?? 10_000;
    const timer = setTimeout(() => {
      this.#dropTimers.delete(timer);
      void this.dropRetired(name).finally(() => this.#changed());
    }, grace);
    timer.unref();
    this.#dropTimers.add(timer);
  }

  /** Drops the tables of `name`'s versions retired longer ago than the grace period. */
  async dropRetired(name: string): Promise<number[]> {
    try {
      const dropped = await dropRetired(this.#sink, name, this.#options.dropGraceMs ?? 10_000);
      if (dropped.length > 0)
        this.#logger.info({ projection: name, dropped }, 'retired versions dropped');
      return dropped;
    } catch (error) {
      this.#logger.warn({ projection: name, err: error }, 'could not drop retired versions');
      return [];
    }
  }

  /** After a batch: wakes watchers, and settles the token waits its slots' commits answer. */
  #notify(works: readonly { slot: Slot; work: SlotWork }[]): void {
    this.#changed();
    if (this.#tokenWaiters.size === 0) return;
    const reader = this.#reader;
    if (!reader) return;
    for (const waiter of this.#tokenWaiters) {
      // Only what the waiter's own slot applied counts: a slot that joined while the batch was
      // read (its checkpoint not loaded yet) had no part in it.
      const work = works.find((w) => w.slot === waiter.slot);
      if (work && reader.satisfied(waiter.slot, waiter.token, work.work.events)) {
        this.#settle(waiter, true);
      }
    }
  }

  #settle(waiter: TokenWaiter, reached: boolean): void {
    clearTimeout(waiter.timer);
    this.#tokenWaiters.delete(waiter);
    waiter.resolve(reached);
  }

  #changed(): void {
    for (const listener of [...this.#changeListeners]) listener();
  }

  /**
   * Calls `listener` after each change someone may wait for: a commit, an idle turn, a new
   * assignment, a change of state (switched over, retired, stopped), an error. The listener
   * looks at what it waits for itself.
   */
  onChange(listener: () => void): () => void {
    this.#changeListeners.add(listener);
    return () => this.#changeListeners.delete(listener);
  }

  /** Calls `listener` when a slot's version becomes the active one. */
  onSwitchOver(listener: (slot: Slot) => void): () => void {
    this.#switchListeners.add(listener);
    return () => this.#switchListeners.delete(listener);
  }

  /**
   * Resolves `true` once `slot` has applied everything the feed held when this was called (by
   * this process or any other that runs it), and a version being built has switched over;
   * `false` after `timeoutMs` (none when omitted), when the engine stops or the version retires.
   */
  async whenCaughtUp(slot: Slot, timeoutMs?: number): Promise<boolean> {
    const reader = this.#reader;
    if (!reader || this.#abort.signal.aborted) return false;
    const deadline = timeoutMs === undefined ? Infinity : Date.now() + timeoutMs;
    const target = await reader.target();
    for (;;) {
      if (slot.state === 'retired' || slot.state === 'stopped' || this.#abort.signal.aborted) {
        return false;
      }
      if (await reader.reached(slot, target)) {
        if (slot.state === 'active') return true;
        // Built: now the switch-over (this engine's next idle turn, or another builder).
        reader.wake();
      }
      const left = deadline - Date.now();
      if (left <= 0) return false;
      // Woken by this engine's changes; other processes' progress is seen by looking again.
      await this.#nextChange(Math.min(left, 100));
    }
  }

  #nextChange(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        unsubscribe();
        resolve();
      };
      const timer = setTimeout(done, ms);
      const unsubscribe = this.onChange(done);
    });
  }

  /**
   * Resolves `true` once this process has applied the write of `token` to `slot`, `false`
   * after `timeoutMs` or on stop, and `undefined` at once when this process cannot tell (its
   * partition belongs to another member): then only the ledger can.
   */
  whenApplied(
    slot: Slot,
    token: ConsistencyToken,
    timeoutMs: number,
  ): Promise<boolean | undefined> {
    const reader = this.#reader;
    if (!reader || this.#abort.signal.aborted) return Promise.resolve(false);
    if (!reader.canSignal(slot, token)) return Promise.resolve(undefined);
    if (reader.satisfied(slot, token, [])) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter: TokenWaiter = {
        slot,
        token,
        resolve,
        timer: setTimeout(() => this.#settle(waiter, false), timeoutMs),
      };
      waiter.timer.unref();
      this.#tokenWaiters.add(waiter);
    });
  }

  async status(slot: Slot): Promise<ProjectionStatus> {
    // A Kafka feed's reader reads no lag once closed (no new connections after stop): then
    // the state, `stopped`, is what says the version is not being applied.
    const lag = await (this.#reader?.lag(slot) ?? Promise.reject(new Error('not started'))).catch(
      (error: unknown) => {
        this.#logger.debug({ projection: slot.name, err: error }, 'status: lag unavailable');
        return undefined;
      },
    );
    const parked = await ledger
      .parkedCount(this.#sink, slot.name, slot.version)
      .catch(() => slot.applier.parkedCount);
    const gaps =
      parked === 0 ? 0 : await ledger.gapCount(this.#sink, slot.name, slot.version).catch(() => 0);
    const failure = this.#failure;
    return {
      name: slot.name,
      version: slot.version,
      feed: this.feed.kind,
      state: slot.state,
      position: slot.position,
      ...(lag?.head !== undefined ? { head: lag.head } : {}),
      lagEvents: lag?.lagEvents ?? 0,
      lagSeconds: lag?.lagSeconds ?? 0,
      parked,
      gaps,
      eventsPerSecond: Math.round(this.#rate),
      ...(failure !== undefined
        ? { lastError: failure instanceof Error ? failure.message : String(failure) }
        : {}),
      ...(lag?.partitions ? { partitions: lag.partitions } : {}),
    };
  }

  /** Finishes the batch in flight, then stops (a Kafka feed leaves its group). */
  async stop(): Promise<void> {
    this.#abort.abort(new ClosedError('projection engine'));
    this.#reader?.wake();
    for (const timer of this.#dropTimers) clearTimeout(timer);
    this.#dropTimers.clear();
    await this.#loop;
    await this.#reader?.close().catch(() => {});
    for (const slot of this.#slots) if (slot.state !== 'retired') slot.state = 'stopped';
    for (const waiter of this.#tokenWaiters) this.#settle(waiter, false);
    this.#changed();
  }
}
