/**
 * The store-fed projection runner: reads the store's global log in batches and applies them to
 * one physical version of a projection, storing the log position in the same read-model
 * transaction.
 *
 * Versions (see versions.ts): without an explicit `version`, the runner takes the version its
 * code builds, registering one if needed. A `building` version switches over when it has caught
 * up with the log: one transaction makes it active and retires the old one, whose tables are
 * dropped after a grace period (queries already running on them finish first).
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
import { ledger, ledgerMigrations } from './ledger.ts';
import { dropRetired, versionsToRun } from './versions.ts';

export interface ProjectionRunnerOptions {
  projection: ProjectionDefinition;
  store: EventStore;
  sink: ProjectionSink;
  /** The physical version to run (a rebuild's). Default: the one this code builds. */
  version?: number;
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
  /** The physical version. */
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
  /** Events applied per second over the last batch, for progress reports. */
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
  readonly #retry: Partial<RetryPolicy> | undefined;
  readonly #abort = new AbortController();
  #version: number | undefined;
  #applier: ProjectionApplier | undefined;
  #state: ProjectionState | 'stopped' = 'stopped';
  #position = 0;
  #head = 0;
  #rate = 0;
  #waiters: Waiter[] = [];
  #wake: (() => void) | undefined;
  #loop: Promise<void> | undefined;
  #unsubscribe: (() => void) | undefined;
  #dropTimer: NodeJS.Timeout | undefined;
  readonly #switchListeners = new Set<(version: number) => void>();
  /** Told of every state change (whenCaughtUp waits on these while a version is built). */
  readonly #stateListeners = new Set<() => void>();
  #failure: unknown;

  constructor(options: ProjectionRunnerOptions) {
    this.definition = options.projection;
    this.#store = options.store;
    this.#sink = options.sink;
    this.#version = options.version;
    this.#batchSize = options.batchSize ?? 500;
    this.#pollIntervalMs = options.pollIntervalMs ?? 1000;
    this.#dropGraceMs = options.dropGraceMs ?? 10_000;
    this.#logger = options.logger ?? silentLogger;
    this.#retry = options.retry;
    for (const [key, value] of [
      ['batchSize', this.#batchSize],
      ['pollIntervalMs', this.#pollIntervalMs],
    ] as const) {
      if (!Number.isSafeInteger(value) || value < 1) {
        throw new InvalidArgumentError(key, 'must be a positive integer');
      }
    }
  }

  get name(): string {
    return this.definition.name;
  }

  /** The physical version (known once started; before that, the definition's version). */
  get version(): number {
    return this.#version ?? this.definition.version;
  }

  /** The last log position this runner has applied (committed). */
  get position(): number {
    return this.#position;
  }

  get state(): ProjectionState | 'stopped' {
    return this.#state;
  }

  /**
   * Resolves when the runner has stopped following the log: after `stop()`, or by itself when
   * another process retired its version.
   */
  get finished(): Promise<void> {
    return this.#loop ?? Promise.resolve();
  }

  /** The applier, for parked-event operations (after start). */
  get applier(): ProjectionApplier {
    if (!this.#applier) throw new InvalidArgumentError('runner', `start ${this.name} first`);
    return this.#applier;
  }

  /** Finds or registers its version (creating the tables), then starts following the log. */
  async start(): Promise<void> {
    if (this.#loop) return;
    if (this.#abort.signal.aborted) throw new ClosedError(`projection runner ${this.name}`);
    await this.#sink.migrate('projections', ledgerMigrations);
    if (this.#version === undefined) {
      const rows = await versionsToRun(this.#sink, this.definition);
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
    if (!row)
      throw new InvalidArgumentError('version', `${this.name} has no version ${this.#version}`);
    if (row.state === 'retired') {
      throw new InvalidArgumentError('version', `${this.name} v${row.version} is retired`);
    }
    this.#applier = new ProjectionApplier({
      definition: this.definition,
      version: row.version,
      sink: this.#sink,
      logger: this.#logger,
      signal: this.#abort.signal,
      ...(this.#retry ? { retry: this.#retry } : {}),
    });
    this.#state = row.state;
    this.#position = row.position;
    await this.#applier.loadParked();
    this.#unsubscribe = this.#store.onAppended(() => this.#wake?.());
    this.#loop = this.#run();
  }

  async #run(): Promise<void> {
    const signal = this.#abort.signal;
    const applier = this.#applier!;
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
          this.#rate = 0;
          if (this.#state === 'building') await this.#switchOver();
          this.#settleWaiters();
          await this.#idle();
          continue;
        }
        let saved = this.#position;
        await applier.applyBatch(
          events,
          async (sql, batch, upTo) => {
            const position = batch[upTo]!.position;
            if (!(await ledger.advancePosition(sql, this.name, this.version, saved, position))) {
              throw new ProgressMovedError(this.name, this.version);
            }
            saved = position;
          },
          // Before any handler runs: a version retired meanwhile (its tables may be gone) or a
          // checkpoint another runner moved means roll back, reload, go on.
          async (sql) => {
            if (!(await ledger.claimBatch(sql, this.name, this.version, saved))) {
              throw new ProgressMovedError(this.name, this.version);
            }
          },
        );
        this.#position = events[events.length - 1]!.position;
        this.#head = Math.max(this.#head, this.#position);
        const seconds = (performance.now() - started) / 1000;
        this.#rate = seconds > 0 ? events.length / seconds : 0;
        transientDelay = 100;
        this.#settleWaiters();
        // An embedded store answers without I/O, so a catch-up would otherwise run as one long
        // chain of microtasks: yield between full batches so requests and timers get their turn.
        if (events.length === this.#batchSize)
          await new Promise((resolve) => setImmediate(resolve));
      } catch (error) {
        if (signal.aborted) break;
        if (error instanceof ProgressMovedError) {
          const row = await ledger
            .projection(this.#sink, this.name, this.version)
            .catch(() => undefined);
          if (!row || row.state === 'retired') {
            this.#logger.info(
              { projection: this.name, version: this.version },
              'version retired; runner stops',
            );
            this.#setState('retired');
            break;
          }
          this.#position = row.position;
          continue;
        }
        this.#failure = error;
        this.#logger.error(
          { projection: this.name, err: error },
          'projection runner error; retrying',
        );
        await abortableDelay(transientDelay, signal);
        transientDelay = Math.min(transientDelay * 2, 5000);
        await applier.loadParked().catch(() => {});
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
      // The switch happens in one transaction, after a read found nothing beyond our position.
      const row = await ledger.projection(sql, this.name, this.version);
      if (row?.state !== 'building') return undefined;
      return ledger.activate(sql, this.name, this.version);
    });
    if (retired === undefined) {
      // Someone else switched (or retired) this version meanwhile.
      const row = await ledger.projection(this.#sink, this.name, this.version);
      this.#setState(row?.state ?? 'retired');
      // Another runner (in this process or another) built the same version and switched first:
      // it is active all the same.
      if (this.#state === 'active') {
        for (const listener of this.#switchListeners) listener(this.version);
      }
      return;
    }
    this.#setState('active');
    this.#logger.info(
      { projection: this.name, version: this.version, retired: retired.map((r) => r.version) },
      'switched over',
    );
    for (const listener of this.#switchListeners) listener(this.version);
    if (retired.length > 0) {
      this.#dropTimer = setTimeout(() => void this.dropRetired(), this.#dropGraceMs);
      this.#dropTimer.unref();
    }
  }

  /** Drops the tables of this projection's versions retired longer ago than the grace period. */
  async dropRetired(): Promise<number[]> {
    try {
      const dropped = await dropRetired(this.#sink, this.name, this.#dropGraceMs);
      if (dropped.length > 0)
        this.#logger.info({ projection: this.name, dropped }, 'retired versions dropped');
      return dropped;
    } catch (error) {
      this.#logger.warn({ projection: this.name, err: error }, 'could not drop retired versions');
      return [];
    }
  }

  #setState(state: ProjectionState | 'stopped'): void {
    if (this.#state === state) return;
    this.#state = state;
    for (const listener of this.#stateListeners) listener();
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
    // Built: now the switch-over, by this runner or by another building the same version (the
    // version may also be retired meanwhile, or this runner stopped).
    return new Promise<boolean>((resolve) => {
      const settle = () => {
        if (this.#state === 'building') return;
        this.#stateListeners.delete(settle);
        if (timer) clearTimeout(timer);
        resolve(this.#state === 'active');
      };
      this.#stateListeners.add(settle);
      const timer =
        deadline === undefined
          ? undefined
          : setTimeout(
              () => {
                this.#stateListeners.delete(settle);
                resolve(false);
              },
              Math.max(0, deadline - Date.now()),
            );
      settle();
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
      if (next) lagSeconds = Math.max(0, (Date.now() - next.recordedAt.getTime()) / 1000);
    }
    const parked = await ledger
      .parkedCount(this.#sink, this.name, this.version)
      .catch(() => this.#applier?.parkedCount ?? 0);
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
    if (this.#state !== 'retired') this.#setState('stopped');
    for (const waiter of this.#waiters) {
      if (waiter.timer) clearTimeout(waiter.timer);
      waiter.resolve(this.#position >= waiter.position);
    }
    this.#waiters = [];
  }
}
