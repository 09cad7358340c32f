/**
 * Runs the projections of a service on one feed, kept in step with the ledger.
 *
 * - The active versions share one engine: one read of the feed (one consumer group in Kafka
 *   mode) and one read-model transaction per batch for all of them.
 * - A version being built (a new code version, or a rebuild started by the CLI or another
 *   process) runs in an engine of its own, so a catch-up from the start never holds back the
 *   live read models. Once it has switched over, it joins the shared engine.
 * - A version another process retired leaves its engine; retired tables are dropped after the
 *   grace period.
 *
 * The ledger is looked at every `reconcileIntervalMs`, and at once after a switch-over here.
 */
import {
  silentLogger,
  type ConsistencyToken,
  type EventStore,
  type Logger,
  type ProjectionDefinition,
  type ProjectionSink,
  type Upcasters,
} from '../core/index.ts';
import type { RetryPolicy } from './applier.ts';
import { ProjectionEngine, type ProjectionStatus } from './engine.ts';
import type { Feed, Slot } from './feed.ts';
import { ledger, ledgerMigrations, type ProjectionRow } from './ledger.ts';
import { feedOf } from './store-feed.ts';
import { dropRetired, versionsToRun } from './versions.ts';

export interface ProjectionHostOptions {
  projections: readonly ProjectionDefinition[];
  sink: ProjectionSink;
  /** Where events come from. Default: `storeFeed(store, { batchSize, pollIntervalMs })`. */
  feed?: Feed;
  /** The store whose log feeds the projections, when no `feed` is given. */
  store?: EventStore;
  /** How often to look at the ledger for versions started or retired elsewhere. Default 2000 ms. */
  reconcileIntervalMs?: number;
  /** How long retired tables stay before they are dropped. Default 10 000 ms. */
  dropGraceMs?: number;
  batchSize?: number;
  pollIntervalMs?: number;
  retry?: Partial<RetryPolicy>;
  /** Default: the feed's (a store's own upcasters). */
  upcasters?: Upcasters;
  logger?: Logger;
}

export class ProjectionHost {
  readonly feed: Feed;
  readonly #options: ProjectionHostOptions;
  readonly #logger: Logger;
  /** The engine of the active versions. */
  #main: ProjectionEngine | undefined;
  /** One engine per version being built, by `name@version`. */
  readonly #building = new Map<string, ProjectionEngine>();
  #timer: NodeJS.Timeout | undefined;
  #reconciling: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  readonly #changeListeners = new Set<() => void>();

  constructor(options: ProjectionHostOptions) {
    this.#options = options;
    this.#logger = options.logger ?? silentLogger;
    this.feed = feedOf(options, 'ProjectionHost');
  }

  /** Every engine running now: the shared one first, then those building. */
  get engines(): readonly ProjectionEngine[] {
    return [...(this.#main ? [this.#main] : []), ...this.#building.values()];
  }

  /** Every version running now, with the engine that runs it. */
  get slots(): readonly { slot: Slot; engine: ProjectionEngine }[] {
    return this.engines.flatMap((engine) => engine.slots.map((slot) => ({ slot, engine })));
  }

  async start(): Promise<void> {
    await this.#options.sink.migrate('projections', ledgerMigrations);
    await this.reconcile();
    this.#timer = setInterval(
      () => void this.reconcile(),
      this.#options.reconcileIntervalMs ?? 2000,
    );
    this.#timer.unref();
  }

  /** Brings the engines in line with the ledger. Safe to call at any time. */
  reconcile(): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    if (this.#reconciling) {
      this.#again = true;
      return this.#reconciling;
    }
    this.#reconciling = (async () => {
      do {
        this.#again = false;
        await this.#reconcile();
      } while (this.#again && !this.#stopped);
    })().finally(() => (this.#reconciling = undefined));
    return this.#reconciling;
  }

  async #reconcile(): Promise<void> {
    const { projections, sink } = this.#options;
    try {
      // Engines whose versions were all retired elsewhere have stopped themselves.
      for (const [key, engine] of this.#building) {
        if (engine.stopped) this.#building.delete(key);
      }
      if (this.#main?.stopped) this.#main = undefined;
      const active: { definition: ProjectionDefinition; row: ProjectionRow }[] = [];
      for (const definition of projections) {
        const rows = await versionsToRun(sink, definition, this.feed.kind);
        // Versions retired (or dropped) by another process leave their engines now, rather
        // than at their next batch: status and readiness must not show them as running.
        for (const { slot, engine } of this.slots) {
          if (slot.name !== definition.name) continue;
          const row = rows.find((r) => r.version === slot.version);
          if (!row) engine.retire(slot);
          else if (row.state !== slot.state && slot.state !== 'stopped') slot.state = row.state;
        }
        if (rows.length === 0) {
          this.#logger.warn(
            { projection: definition.name },
            'a newer code version runs this projection; not running it',
          );
        }
        for (const row of rows) {
          if (this.#stopped) return;
          if (row.state === 'active') active.push({ definition, row });
          else if (row.state === 'building') await this.#build(definition, row);
        }
        await dropRetired(sink, definition.name, this.#options.dropGraceMs ?? 10_000);
      }
      await this.#runActive(active);
    } catch (error) {
      this.#logger.error(
        { err: error },
        'could not reconcile projection engines; trying again later',
      );
    }
    this.#changed();
  }

  /** Starts an engine for a version being built, unless one runs it. */
  async #build(definition: ProjectionDefinition, row: ProjectionRow): Promise<void> {
    const key = `${row.name}@${row.version}`;
    if (this.#building.has(key)) return;
    const engine = this.#engine([row], false);
    await engine.add(definition, row);
    engine.onSwitchOver(() => void this.reconcile());
    await engine.start();
    this.#building.set(key, engine);
    this.#logger.info(
      { projection: row.name, version: row.version, feed: this.feed.kind, group: engine.group },
      'building a new version',
    );
  }

  /** The shared engine runs every active version; a version built beside it moves in. */
  async #runActive(active: { definition: ProjectionDefinition; row: ProjectionRow }[]) {
    if (this.#stopped) return;
    const main = this.#main;
    const running = new Set(main?.slots.map((s) => `${s.name}@${s.version}`));
    const missing = active.filter(({ row }) => !running.has(`${row.name}@${row.version}`));
    // Switched over in an engine of its own: stop that one first, so that one process never
    // applies a version in two engines at once (the checkpoint's compare-and-set would sort
    // it out, but at the cost of a contested batch).
    for (const { row } of missing) {
      const key = `${row.name}@${row.version}`;
      const builder = this.#building.get(key);
      if (builder) {
        this.#building.delete(key);
        await builder.stop();
      }
    }
    if (missing.length === 0) return;
    if (!main) {
      const engine = this.#engine(
        active.map((a) => a.row),
        true,
      );
      for (const { definition, row } of active) await engine.add(definition, row);
      await engine.start();
      this.#main = engine;
      this.#logger.info(
        {
          feed: this.feed.kind,
          group: engine.group,
          projections: active.map(({ row }) => `${row.name} v${row.version}`),
        },
        'projections started',
      );
      return;
    }
    for (const { definition, row } of missing) {
      await main.add(definition, row);
      this.#logger.info(
        { projection: row.name, version: row.version, group: main.group },
        'version joined the shared engine',
      );
    }
  }

  #engine(rows: readonly ProjectionRow[], shared: boolean): ProjectionEngine {
    const o = this.#options;
    const engine = new ProjectionEngine({
      feed: this.feed,
      sink: o.sink,
      ...(this.feed.groupFor ? { group: this.feed.groupFor(rows, shared) } : {}),
      ...(o.upcasters ? { upcasters: o.upcasters } : {}),
      ...(o.retry ? { retry: o.retry } : {}),
      ...(o.dropGraceMs !== undefined ? { dropGraceMs: o.dropGraceMs } : {}),
      logger: this.#logger,
    });
    engine.onChange(() => this.#changed());
    return engine;
  }

  /**
   * Status of every version running here. A version the ledger says was retired (or dropped)
   * elsewhere leaves its engine first, and a reconcile follows: a switch-over made by another
   * process (the CLI, another instance) shows at once, not at the next reconcile, which may be
   * seconds away or held up (a Kafka engine of another version joining its group).
   */
  async status(): Promise<ProjectionStatus[]> {
    const running = await this.#withoutRetired();
    return Promise.all(running.map(({ slot, engine }) => engine.status(slot)));
  }

  /** The running slots, less those the ledger no longer has as `active` or `building`. */
  async #withoutRetired(): Promise<readonly { slot: Slot; engine: ProjectionEngine }[]> {
    const slots = this.slots;
    if (slots.length === 0) return slots;
    let rows: ProjectionRow[];
    try {
      rows = await ledger.projections(this.#options.sink);
    } catch (error) {
      // The engines report the database's trouble themselves (lastError, their state).
      this.#logger.debug({ err: error }, 'status: could not read the ledger');
      return slots;
    }
    const kept: { slot: Slot; engine: ProjectionEngine }[] = [];
    let gone = false;
    for (const entry of slots) {
      const { slot, engine } = entry;
      const row = rows.find((r) => r.name === slot.name && r.version === slot.version);
      if ((row === undefined || row.state === 'retired') && slot.state !== 'stopped') {
        engine.retire(slot);
        gone = true;
      } else {
        // Switched over elsewhere: say `active` now, as the reconcile will.
        if (row && row.state !== slot.state && slot.state !== 'stopped') slot.state = row.state;
        kept.push(entry);
      }
    }
    if (gone) void this.reconcile();
    return kept;
  }

  /** The errors engines are retrying after, if any. */
  get lastErrors(): unknown[] {
    return this.engines.map((e) => e.lastError).filter((e) => e !== undefined);
  }

  /**
   * Resolves `true` once this process has applied the write of `token` to `name` v`version`,
   * `false` after `timeoutMs`, `undefined` when this process does not run that version or
   * cannot tell (then only the ledger can). ReadModels uses it for consistency waits.
   */
  whenApplied(
    name: string,
    version: number,
    token: ConsistencyToken,
    timeoutMs: number,
  ): Promise<boolean | undefined> {
    const found = this.slots.find(({ slot }) => slot.name === name && slot.version === version);
    if (!found || found.slot.state === 'stopped') return Promise.resolve(undefined);
    return found.engine.whenApplied(found.slot, token, timeoutMs);
  }

  /**
   * Resolves `true` once every version running here has caught up with what the feed held when
   * this was called (versions being built: and switched over), `false` on timeout.
   */
  async whenCaughtUp(timeoutMs?: number): Promise<boolean> {
    const results = await Promise.all(
      this.slots.map(({ slot, engine }) => engine.whenCaughtUp(slot, timeoutMs)),
    );
    return results.every(Boolean);
  }

  /** Calls `listener` after any change in any engine, and after each reconcile. */
  onChange(listener: () => void): () => void {
    this.#changeListeners.add(listener);
    return () => this.#changeListeners.delete(listener);
  }

  #changed(): void {
    for (const listener of [...this.#changeListeners]) listener();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    await this.#reconciling;
    // The engines stay listed, their versions `stopped`: status and readiness say so.
    await Promise.all(this.engines.map((e) => e.stop()));
    this.#changed();
  }
}
