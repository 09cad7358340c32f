/**
 * The store-fed projection runner: reads the store's global log in batches and applies them to
 * one projection, storing the log position in the same read-model transaction.
 *
 * Versions: the first version of a projection is active from the start. A later version is
 * built beside the active one (state `building`); when it has caught up with the log, one
 * transaction makes it active and retires the old one, whose tables are dropped after a grace
 * period (queries already running on them finish first).
 */
import {
  ClosedError,
  InvalidArgumentError,
  silentLogger,
  type EventStore,
  type Logger,
  type ProjectionDefinition,
  type ProjectionSink,
  type ProjectionState,
} from '../core/index.ts';
import {
  ProgressMovedError,
  ProjectionApplier,
  abortableDelay,
  type RetryPolicy,
} from './applier.ts';
import { ledger, ledgerMigrations, type ProjectionRow } from './ledger.ts';

export interface ProjectionRunnerOptions {
  projection: ProjectionDefinition;
  store: EventStore;
  sink: ProjectionSink;
  /** Events read and applied per transaction. Default 500. */
  batchSize?: number;
  /** How often to look for new events when no append notification comes. Default 1000 ms. */
  pollIntervalMs?: number;
  /** How long a retired version's tables stay before they are dropped. Default 10 000 ms. */
  dropGraceMs?: number;
  retry?: Partial<RetryPolicy>;
  logger?: Logger;
}

export interface ProjectionStatus {
  name: string;
  version: number;
  state: ProjectionState | 'stopped';
  /** Last log position applied. */
  position: number;
  /** The store's head when last read. */
  head: number;
  /** Events between the position and the head. */
  lagEvents: number;
  /** Seconds since the oldest unapplied event was recorded (0 when caught up). */
  lagSeconds: number;
  parked: number;
  /** Events applied per second over the last batch window, for progress reports. */
  eventsPerSecond: number;
}

type Waiter = {
  position: number;
  resolve: (reached: boolean) => void;
  timer: NodeJS.Timeout | undefined;
};

export class ProjectionRunner {
  readonly definition: ProjectionDefinition;
  readonly #store: EventStore;
  readonly #sink: ProjectionSink;
  readonly #batchSize: number;
  readonly #pollIntervalMs: number;
  readonly #dropGraceMs: number;
  readonly #logger: Logger;
  readonly #abort = new AbortController();
  readonly #applier: ProjectionApplier;
  #state: ProjectionState | 'stopped' = 'stopped';
  #position = 0;
  #head = 0;
  #oldestUnappliedAt: Date | undefined;
  #rate = 0;
  #waiters: Waiter[] = [];
  #wake: (() => void) | undefined;
  #loop: Promise<void> | undefined;
  #unsubscribe: (() => void) | undefined;
  #dropTimer: NodeJS.Timeout | undefined;
  #switchListeners = new Set<(version: number) => void>();
  #failure: unknown;

  constructor(options: ProjectionRunnerOptions) {
    this.definition = options.projection;
    this.#store = options.store;
    this.#sink = options.sink;
    this.#batchSize = options.batchSize ?? 500;
    this.#pollIntervalMs = options.pollIntervalMs ?? 1000;
    this.#dropGraceMs = options.dropGraceMs ?? 10_000;
    this.#logger = options.logger ?? silentLogger;
    for (const [key, value] of [
      ['batchSize', this.#batchSize],
      ['pollIntervalMs', this.#pollIntervalMs],
    ] as const) {
      if (!Number.isSafeInteger(value) || value < 1)
        throw new InvalidArgumentError(key, 'must be a positive integer');
    }
    this.#applier = new ProjectionApplier({
      definition: this.definition,
      version: this.definition.version,
      sink: this.#sink,
      logger: this.#logger,
      signal: this.#abort.signal,
      ...(options.retry ? { retry: options.retry } : {}),
    });
  }

  get name(): string {
    return this.definition.name;
  }

  get version(): number {
    return this.definition.version;
  }

  /** The last log position this runner has applied (committed). */
  get position(): number {
    return this.#position;
  }

  get state(): ProjectionState | 'stopped' {
    return this.#state;
  }

  /** The applier, for parked-event operations. */
  get applier(): ProjectionApplier {
    return this.#applier;
  }

  /** Registers the version (creating its tables), then starts following the log. */
  async start(): Promise<void> {
    if (this.#loop) return;
    if (this.#abort.signal.aborted) throw new ClosedError(`projection runner ${this.name}`);
    await this.#sink.migrate('projections', ledgerMigrations);
    const row = await this.#register();
    if (row.state === 'retired') {
      throw new InvalidArgumentError(
        'projection.version',
        `${this.name} v${this.version} was retired by a newer version; deploy that version`,
      );
    }
    this.#state = row.state;
    this.#position = row.position;
    await this.#applier.loadParked();
    this.#unsubscribe = this.#store.onAppended(() => this.#wake?.());
    this.#loop = this.#run();
  }

  async #register(): Promise<ProjectionRow> {
    const { name, version } = this;
    return this.#sink.transaction(async (sql) => {
      const existing = await ledger.projection(sql, name, version);
      if (existing) return existing;
      const active = await ledger.activeVersion(sql, name);
      const state: ProjectionState =
        active === undefined ? 'active' : active > version ? 'retired' : 'building';
      if (state === 'retired') {
        const now = new Date();
        return {
          name,
          version,
          state,
          position: 0,
          tables: [],
          createdAt: now,
          updatedAt: now,
          activatedAt: undefined,
        };
      }
      await ledger.register(sql, name, version, state, this.#applier.tables);
      await this.definition.init(this.#applier.context(sql));
      this.#logger.info({ projection: name, version, state }, 'projection version registered');
      return (await ledger.projection(sql, name, version))!;
    });
  }

  async #run(): Promise<void> {
    const signal = this.#abort.signal;
    let transientDelay = 100;
    while (!signal.aborted) {
      try {
        const started = performance.now();
        const events = await this.#store.readAll({
          after: this.#position,
          maxCount: this.#batchSize,
        });
        if (events.length === 0) {
          this.#head = Math.max(this.#head, this.#position);
          this.#oldestUnappliedAt = undefined;
          this.#rate = 0;
          if (this.#state === 'building') await this.#switchOver();
          this.#settleWaiters();
          await this.#idle();
          continue;
        }
        this.#oldestUnappliedAt = events[0]!.recordedAt;
        let saved = this.#position;
        await this.#applier.applyBatch(events, async (sql, batch, upTo) => {
          // Another runner of the same version may have moved on: then roll back, reload, go on.
          const position = batch[upTo]!.position;
          if (!(await ledger.advancePosition(sql, this.name, this.version, saved, position))) {
            throw new ProgressMovedError(this.name, this.version);
          }
          saved = position;
        });
        this.#position = events[events.length - 1]!.position;
        this.#head = Math.max(this.#head, this.#position);
        const seconds = (performance.now() - started) / 1000;
        this.#rate = seconds > 0 ? events.length / seconds : 0;
        transientDelay = 100;
        this.#settleWaiters();
        if (events.length < this.#batchSize) this.#head = await this.#store.headPosition();
      } catch (error) {
        if (signal.aborted) break;
        if (error instanceof ProgressMovedError) {
          const row = await ledger.projection(this.#sink, this.name, this.version);
          this.#logger.warn(
            { projection: this.name, from: this.#position, to: row?.position },
            error.message,
          );
          if (row) this.#position = row.position;
          if (row?.state === 'retired') break;
          continue;
        }
        this.#failure = error;
        this.#logger.error(
          { projection: this.name, err: error },
          'projection runner error; retrying',
        );
        await abortableDelay(transientDelay, signal);
        transientDelay = Math.min(transientDelay * 2, 5000);
        await this.#applier.loadParked().catch(() => {});
      }
    }
  }

  /** Waits for an append notification, the poll interval, or stop. */
  #idle(): Promise<void> {
    const signal = this.#abort.signal;
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

  async #switchOver(): Promise<void> {
    const retired = await this.#sink.transaction(async (sql) => {
      // Caught up means: nothing left after our position, checked in the switching transaction.
      const row = await ledger.projection(sql, this.name, this.version);
      if (row?.state !== 'building') return [];
      return ledger.activate(sql, this.name, this.version);
    });
    this.#state = 'active';
    this.#logger.info(
      { projection: this.name, version: this.version, retired: retired.map((r) => r.version) },
      'switched over',
    );
    for (const listener of this.#switchListeners) listener(this.version);
    if (retired.length > 0) {
      this.#dropTimer = setTimeout(() => void this.#dropRetired(retired), this.#dropGraceMs);
      this.#dropTimer.unref();
    }
  }

  async #dropRetired(retired: ProjectionRow[]): Promise<void> {
    try {
      await this.#sink.transaction(async (sql) => {
        for (const row of retired) {
          for (const table of row.tables) await sql.execute(`DROP TABLE IF EXISTS ${table}`);
          await sql.execute('DELETE FROM tm_projection_streams WHERE name = $1 AND version = $2', [
            row.name,
            row.version,
          ]);
          await sql.execute('DELETE FROM tm_projection_offsets WHERE name = $1 AND version = $2', [
            row.name,
            row.version,
          ]);
        }
      });
      this.#logger.info(
        { projection: this.name, dropped: retired.map((r) => r.version) },
        'retired versions dropped',
      );
    } catch (error) {
      this.#logger.warn({ projection: this.name, err: error }, 'could not drop retired versions');
    }
  }

  /** Calls `listener` when this runner's version becomes the active one. */
  onSwitchOver(listener: (version: number) => void): () => void {
    this.#switchListeners.add(listener);
    return () => this.#switchListeners.delete(listener);
  }

  /**
   * Resolves `true` once every event up to `position` is applied, or `false` after
   * `timeoutMs` (no timeout when omitted) or when the runner stops.
   */
  whenProcessed(position: number, timeoutMs?: number): Promise<boolean> {
    if (this.#position >= position) return Promise.resolve(true);
    if (this.#abort.signal.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const waiter: Waiter = { position, resolve, timer: undefined };
      if (timeoutMs !== undefined) {
        waiter.timer = setTimeout(() => {
          this.#waiters = this.#waiters.filter((w) => w !== waiter);
          resolve(this.#position >= position);
        }, timeoutMs);
      }
      this.#waiters.push(waiter);
      this.#wake?.();
    });
  }

  /**
   * Resolves `true` once the runner has applied everything the store held when this was called
   * (and, for a version being built, once it has switched over), or `false` on timeout or stop.
   */
  async whenCaughtUp(timeoutMs?: number): Promise<boolean> {
    const deadline = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
    const head = await this.#store.headPosition();
    const reached = await this.whenProcessed(head, timeoutMs);
    if (!reached || this.#state !== 'building') return reached;
    return new Promise<boolean>((resolve) => {
      const finish = (value: boolean) => {
        stop();
        if (timer) clearTimeout(timer);
        resolve(value);
      };
      const stop = this.onSwitchOver(() => finish(true));
      const timer =
        deadline === undefined
          ? undefined
          : setTimeout(() => finish(false), Math.max(0, deadline - Date.now()));
      if (this.#state !== 'building') finish(this.#state === 'active');
      this.#wake?.();
    });
  }

  #settleWaiters(): void {
    if (this.#waiters.length === 0) return;
    const remaining: Waiter[] = [];
    for (const waiter of this.#waiters) {
      if (this.#position >= waiter.position) {
        if (waiter.timer) clearTimeout(waiter.timer);
        waiter.resolve(true);
      } else {
        remaining.push(waiter);
      }
    }
    this.#waiters = remaining;
  }

  async status(): Promise<ProjectionStatus> {
    const head = await this.#store.headPosition().catch(() => this.#head);
    this.#head = Math.max(this.#head, head);
    const lagEvents = Math.max(0, this.#head - this.#position);
    let lagSeconds = 0;
    if (lagEvents > 0) {
      const [next] = await this.#store
        .readAll({ after: this.#position, maxCount: 1 })
        .catch(() => []);
      const since = next?.recordedAt ?? this.#oldestUnappliedAt;
      if (since) lagSeconds = Math.max(0, (Date.now() - since.getTime()) / 1000);
    }
    const parked = await ledger
      .parkedCount(this.#sink, this.name, this.version)
      .catch(() => this.#applier.parkedCount);
    return {
      name: this.name,
      version: this.version,
      state: this.#state,
      position: this.#position,
      head: this.#head,
      lagEvents,
      lagSeconds,
      parked,
      eventsPerSecond: Math.round(this.#rate),
    };
  }

  /** The last error the loop hit, if it is retrying. */
  get lastError(): unknown {
    return this.#failure;
  }

  /** Finishes the batch in flight, then stops. */
  async stop(): Promise<void> {
    this.#abort.abort(new ClosedError(`projection runner ${this.name}`));
    this.#wake?.();
    this.#unsubscribe?.();
    if (this.#dropTimer) clearTimeout(this.#dropTimer);
    await this.#loop;
    this.#loop = undefined;
    this.#state = 'stopped';
    for (const waiter of this.#waiters) {
      if (waiter.timer) clearTimeout(waiter.timer);
      waiter.resolve(this.#position >= waiter.position);
    }
    this.#waiters = [];
  }
}
