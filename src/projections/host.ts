/**
 * Runs the projections of a service: one store-fed runner per physical version its code
 * builds, kept in step with the ledger. A rebuild started elsewhere (the CLI) is picked up, and
 * the runner of a version that another process retired stops.
 */
import {
  silentLogger,
  type EventStore,
  type Logger,
  type ProjectionDefinition,
  type ProjectionSink,
} from '../core/index.ts';
import type { RetryPolicy } from './applier.ts';
import { ledgerMigrations } from './ledger.ts';
import { ProjectionRunner, type ProjectionStatus } from './runner.ts';
import { dropRetired, versionsToRun } from './versions.ts';

export interface ProjectionHostOptions {
  projections: readonly ProjectionDefinition[];
  store: EventStore;
  sink: ProjectionSink;
  /** How often to look at the ledger for versions started or retired elsewhere. Default 2000 ms. */
  reconcileIntervalMs?: number;
  /** How long retired tables stay before they are dropped. Default 10 000 ms. */
  dropGraceMs?: number;
  batchSize?: number;
  pollIntervalMs?: number;
  retry?: Partial<RetryPolicy>;
  logger?: Logger;
}

export class ProjectionHost {
  readonly #options: ProjectionHostOptions;
  readonly #logger: Logger;
  #runners: ProjectionRunner[] = [];
  #timer: NodeJS.Timeout | undefined;
  #reconciling: Promise<void> | undefined;
  #stopped = false;

  constructor(options: ProjectionHostOptions) {
    this.#options = options;
    this.#logger = options.logger ?? silentLogger;
  }

  /** The runners now running (one per physical version). */
  get runners(): readonly ProjectionRunner[] {
    return this.#runners;
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

  /** Brings the runners in line with the ledger. Safe to call at any time. */
  reconcile(): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    this.#reconciling ??= this.#reconcile().finally(() => (this.#reconciling = undefined));
    return this.#reconciling;
  }

  async #reconcile(): Promise<void> {
    const { projections, store, sink } = this.#options;
    try {
      // Runners whose version another process retired have stopped themselves: let them go.
      const finished = this.#runners.filter((r) => r.state === 'retired');
      this.#runners = this.#runners.filter((r) => r.state !== 'retired');
      await Promise.all(finished.map((r) => r.stop()));
      for (const definition of projections) {
        const rows = await versionsToRun(sink, definition);
        for (const row of rows) {
          if (this.#stopped) return;
          if (this.#runners.some((r) => r.name === row.name && r.version === row.version)) continue;
          const runner = new ProjectionRunner({
            projection: definition,
            store,
            sink,
            version: row.version,
            ...pick(this.#options, [
              'batchSize',
              'pollIntervalMs',
              'dropGraceMs',
              'retry',
              'logger',
            ]),
          });
          runner.onSwitchOver(() => void this.reconcile());
          await runner.start();
          this.#runners.push(runner);
          this.#logger.info(
            { projection: row.name, version: row.version, state: row.state },
            'runner started',
          );
        }
        if (rows.length === 0) {
          this.#logger.warn(
            { projection: definition.name },
            'a newer code version runs this projection; not running it',
          );
        }
        await dropRetired(sink, definition.name, this.#options.dropGraceMs ?? 10_000);
      }
    } catch (error) {
      this.#logger.error(
        { err: error },
        'could not reconcile projection runners; trying again later',
      );
    }
  }

  async status(): Promise<ProjectionStatus[]> {
    return Promise.all(this.#runners.map((r) => r.status()));
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    await this.#reconciling;
    await Promise.all(this.#runners.map((r) => r.stop()));
  }
}

function pick<T extends object, K extends keyof T>(object: T, keys: K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const key of keys) if (object[key] !== undefined) out[key] = object[key];
  return out;
}
