/**
 * A projection runner: one physical version of one projection over a feed (the store's log by
 * default, or Kafka with `kafkaFeed` from `tidemark/kafka`). A thin handle on the engine
 * (engine.ts) for the common case of one projection, and for rebuilds and tests.
 *
 * Versions (see versions.ts): without an explicit `version`, the runner takes the version its
 * code builds on its feed, registering one if needed. A `building` version switches over once
 * it has caught up: one transaction makes it active and retires the old one, whose tables are
 * dropped after a grace period (queries already running on them finish first).
 */
import {
  ClosedError,
  InvalidArgumentError,
  type ConsistencyToken,
  type EventStore,
  type Logger,
  type ProjectionDefinition,
  type ProjectionSink,
  type ProjectionState,
  type Upcasters,
} from '../core/index.ts';
import type { ProjectionApplier, RetryPolicy } from './applier.ts';
import { ProjectionEngine, type ProjectionStatus } from './engine.ts';
import type { Feed, Slot } from './feed.ts';
import { ledger, ledgerMigrations, type ParkedEvent } from './ledger.ts';
import { feedOf } from './store-feed.ts';
import { versionsToRun } from './versions.ts';

export type { ProjectionStatus } from './engine.ts';

export interface ProjectionRunnerOptions {
  projection: ProjectionDefinition;
  sink: ProjectionSink;
  /** Where events come from. Default: `storeFeed(store, { batchSize, pollIntervalMs })`. */
  feed?: Feed;
  /** The store whose log feeds the runner, when no `feed` is given. */
  store?: EventStore;
  /** The physical version to run (a rebuild's). Default: the one this code builds. */
  version?: number;
  /** Store feed: events read and applied per transaction. Default 500. */
  batchSize?: number;
  /** Store feed: how often to look for new events without a notification. Default 1000 ms. */
  pollIntervalMs?: number;
  /** How long a retired version's tables stay before they are dropped. Default 10 000 ms. */
  dropGraceMs?: number;
  retry?: Partial<RetryPolicy>;
  /** Default: the feed's (a store's own upcasters). */
  upcasters?: Upcasters;
  logger?: Logger;
}

export class ProjectionRunner {
  readonly definition: ProjectionDefinition;
  readonly feed: Feed;
  readonly #sink: ProjectionSink;
  readonly #options: ProjectionRunnerOptions;
  #version: number | undefined;
  #engine: ProjectionEngine | undefined;
  #slot: Slot | undefined;
  #stopped = false;
  readonly #switchListeners = new Set<(version: number) => void>();
  readonly #changeListeners = new Set<() => void>();

  constructor(options: ProjectionRunnerOptions) {
    this.definition = options.projection;
    this.#sink = options.sink;
    this.#options = options;
    this.#version = options.version;
    for (const key of ['batchSize', 'pollIntervalMs'] as const) {
      const value = options[key];
      if (value !== undefined && (!Number.isSafeInteger(value) || value < 1)) {
        throw new InvalidArgumentError(key, 'must be a positive integer');
      }
    }
    this.feed = feedOf(options, 'ProjectionRunner');
  }

  get name(): string {
    return this.definition.name;
  }

  /** The physical version (known once started; before that, the definition's version). */
  get version(): number {
    return this.#version ?? this.definition.version;
  }

  /** The highest global log position this runner has applied (committed). */
  get position(): number {
    return this.#slot?.position ?? 0;
  }

  get state(): ProjectionState | 'stopped' {
    return this.#slot?.state ?? 'stopped';
  }

  /** The feed's group this runner is a member of (Kafka; known once started). */
  get groupId(): string | undefined {
    return this.#engine?.group;
  }

  /** Kafka: the partitions this runner's group member owns now. */
  get assignment(): readonly { topic: string; partition: number }[] {
    return this.#engine?.assignment ?? [];
  }

  /** The engine underneath (after start). */
  get engine(): ProjectionEngine {
    if (!this.#engine) throw new InvalidArgumentError('runner', `start ${this.name} first`);
    return this.#engine;
  }

  /** Resolves when the runner has stopped: after `stop()`, or when its version was retired. */
  get finished(): Promise<void> {
    return this.#engine?.finished ?? Promise.resolve();
  }

  /** The applier, for parked-event operations (after start). */
  get applier(): ProjectionApplier {
    if (!this.#slot) throw new InvalidArgumentError('runner', `start ${this.name} first`);
    return this.#slot.applier;
  }

  /** The error the runner is retrying after, if any (cleared once it goes on). */
  get lastError(): unknown {
    return this.#engine?.lastError;
  }

  /** Parked events (dead letters) of this version, by stream and version. */
  parked(filter: { streamId?: string; limit?: number } = {}): Promise<ParkedEvent[]> {
    return ledger.parked(this.#sink, { name: this.name, version: this.version, ...filter });
  }

  /** Finds or registers its version (creating the tables), then starts following the feed. */
  async start(): Promise<void> {
    if (this.#engine) return;
    if (this.#stopped) throw new ClosedError(`projection runner ${this.name}`);
    await this.#sink.migrate('projections', ledgerMigrations);
    if (this.#version === undefined) {
      const rows = await versionsToRun(this.#sink, this.definition, this.feed.kind);
      const row = rows.find((r) => r.state === 'active') ?? rows[rows.length - 1];
      if (!row) {
        throw new InvalidArgumentError(
          'projection.version',
          `${this.name}: a newer code version of this projection is deployed; this one runs nothing`,
        );
      }
      this.#version = row.version;
    }
    const row = await ledger.projection(this.#sink, this.name, this.#version);
    if (!row) {
      throw new InvalidArgumentError('version', `${this.name} has no version ${this.#version}`);
    }
    if (row.state === 'retired') {
      throw new InvalidArgumentError('version', `${this.name} v${row.version} is retired`);
    }
    if (row.feed !== this.feed.kind) {
      throw new InvalidArgumentError(
        'feed',
        `${this.name} v${row.version} is fed by ${row.feed}, not ${this.feed.kind}: its checkpoint means nothing to another feed`,
      );
    }
    const o = this.#options;
    const engine = new ProjectionEngine({
      feed: this.feed,
      sink: this.#sink,
      ...(this.feed.groupFor ? { group: this.feed.groupFor([row], false) } : {}),
      ...(o.upcasters ? { upcasters: o.upcasters } : {}),
      ...(o.retry ? { retry: o.retry } : {}),
      ...(o.dropGraceMs !== undefined ? { dropGraceMs: o.dropGraceMs } : {}),
      ...(o.logger ? { logger: o.logger } : {}),
    });
    this.#slot = await engine.add(this.definition, row);
    engine.onSwitchOver((slot) => {
      for (const listener of [...this.#switchListeners]) listener(slot.version);
    });
    engine.onChange(() => {
      for (const listener of [...this.#changeListeners]) listener();
    });
    await engine.start();
    this.#engine = engine;
  }

  /**
   * Resolves `true` once the runner has applied everything the feed held when this was called
   * (and, for a version being built, once it has switched over), or `false` on timeout or stop.
   */
  whenCaughtUp(timeoutMs?: number): Promise<boolean> {
    if (!this.#engine || !this.#slot) return Promise.resolve(false);
    return this.#engine.whenCaughtUp(this.#slot, timeoutMs);
  }

  /**
   * Resolves `true` once this process has applied the write a consistency token names, `false`
   * after `timeoutMs` or on stop, `undefined` when another process applies it.
   */
  whenApplied(token: ConsistencyToken, timeoutMs: number): Promise<boolean | undefined> {
    if (!this.#engine || !this.#slot) return Promise.resolve(false);
    return this.#engine.whenApplied(this.#slot, token, timeoutMs);
  }

  /** Store feed: resolves `true` once every event up to `position` is applied. */
  async whenProcessed(position: number, timeoutMs = 2 ** 31 - 1): Promise<boolean> {
    const reached = await this.whenApplied({ position, streamVersion: 0, streamId: '' }, timeoutMs);
    return reached === true;
  }

  /** Calls `listener` when this runner's version becomes the active one. */
  onSwitchOver(listener: (version: number) => void): () => void {
    this.#switchListeners.add(listener);
    return () => this.#switchListeners.delete(listener);
  }

  /** Calls `listener` after each change a watcher may wait for (see ProjectionEngine.onChange). */
  onChange(listener: () => void): () => void {
    this.#changeListeners.add(listener);
    return () => this.#changeListeners.delete(listener);
  }

  /** Drops the tables of this projection's versions retired longer ago than the grace period. */
  dropRetired(): Promise<number[]> {
    return this.engine.dropRetired(this.name);
  }

  async status(): Promise<ProjectionStatus> {
    if (!this.#engine || !this.#slot) {
      return {
        name: this.name,
        version: this.version,
        feed: this.feed.kind,
        state: 'stopped',
        position: 0,
        lagEvents: 0,
        lagSeconds: 0,
        parked: 0,
        gaps: 0,
        eventsPerSecond: 0,
      };
    }
    return this.#engine.status(this.#slot);
  }

  /** Finishes the batch in flight, then stops. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#engine?.stop();
  }
}
