/**
 * Rebuilds started from the console. `rebuildProjection` runs until the new version has caught up
 * and switched over, which can take minutes: the console starts it in the background, and keeps
 * what it reports (version, progress, switch-over, outcome) for the page to poll.
 */
import {
  rebuildProjection,
  type Logger,
  type ProjectionDefinition,
  type ProjectionOperations,
} from '../../index.ts';

/** A rebuild this process runs, or ran, as the console shows it. */
export interface RebuildJob {
  id: number;
  projection: string;
  /** The physical version being built (known once registered). */
  version: number | undefined;
  from: string | undefined;
  /**
   * `starting` (registering the version), `building` (catching up), `switched` (active now; the
   * old version's tables wait out the grace period), `done`, or `failed` (see `error`).
   */
  state: 'starting' | 'building' | 'switched' | 'done' | 'failed';
  done: number;
  total: number;
  startedAt: string;
  finishedAt: string | undefined;
  /** Versions dropped after the switch-over. */
  dropped: number[];
  error: string | undefined;
}

const KEPT = 20;

export class RebuildJobs {
  readonly #ops: ProjectionOperations;
  readonly #dropGraceMs: number;
  readonly #logger: Logger | undefined;
  readonly #jobs: RebuildJob[] = [];
  readonly #running = new Map<number, Promise<void>>();
  readonly #abort = new AbortController();
  #next = 1;

  constructor(ops: ProjectionOperations, dropGraceMs: number, logger?: Logger) {
    this.#ops = ops;
    this.#dropGraceMs = dropGraceMs;
    this.#logger = logger;
  }

  /** Newest first. */
  list(): RebuildJob[] {
    return this.#jobs.map((job) => ({ ...job }));
  }

  /** The rebuild of `name` this process is running, if any. */
  runningOf(name: string): RebuildJob | undefined {
    return this.#jobs.find(
      (j) => j.projection === name && j.state !== 'done' && j.state !== 'failed',
    );
  }

  /** Starts a rebuild in the background; resolves once its new version is registered. */
  async start(definition: ProjectionDefinition): Promise<RebuildJob> {
    const job: RebuildJob = {
      id: this.#next++,
      projection: definition.name,
      version: undefined,
      from: undefined,
      state: 'starting',
      done: 0,
      total: 0,
      startedAt: new Date().toISOString(),
      finishedAt: undefined,
      dropped: [],
      error: undefined,
    };
    this.#jobs.unshift(job);
    this.#jobs.splice(KEPT);
    let registered!: () => void;
    let refused!: (error: unknown) => void;
    const started = new Promise<void>((resolve, reject) => {
      registered = resolve;
      refused = reject;
    });
    const run = rebuildProjection(this.#ops, {
      definition,
      dropGraceMs: this.#dropGraceMs,
      progressIntervalMs: 500,
      signal: this.#abort.signal,
      onStarted: (version, from) => {
        job.version = version;
        job.from = from;
        job.state = 'building';
        registered();
      },
      onProgress: ({ done, total }) => {
        job.done = done;
        job.total = total;
      },
      onSwitchedOver: () => {
        job.state = 'switched';
      },
    }).then(
      (result) => {
        job.state = 'done';
        job.dropped = result.dropped;
        job.done = result.events;
        job.total = Math.max(job.total, result.events);
        this.#logger?.info(
          { projection: job.projection, version: job.version, events: result.events },
          'console rebuild done',
        );
      },
      (error: unknown) => {
        job.state = 'failed';
        job.error = (error as Error).message;
        if (job.version === undefined) {
          // Refused before it registered a version (a feed it cannot build from): nothing
          // happened, so nothing is listed; the caller answers with the error.
          this.#jobs.splice(this.#jobs.indexOf(job), 1);
          refused(error);
          return;
        }
        this.#logger?.warn(
          { projection: job.projection, version: job.version, err: error },
          'console rebuild failed',
        );
      },
    );
    const tracked = run.finally(() => {
      job.finishedAt = new Date().toISOString();
      this.#running.delete(job.id);
    });
    this.#running.set(job.id, tracked);
    await started;
    return { ...job };
  }

  /** The job with this id, once it has finished (at once when it has), or after `timeoutMs`. */
  async settled(id: number, timeoutMs: number): Promise<RebuildJob | undefined> {
    const running = this.#running.get(id);
    if (running && timeoutMs > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        running,
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, timeoutMs);
        }),
      ]);
      clearTimeout(timer);
    }
    const job = this.#jobs.find((j) => j.id === id);
    return job && { ...job };
  }

  /** Stops running rebuilds (their new versions stay `building`) and waits for them. */
  async close(): Promise<void> {
    this.#abort.abort();
    await Promise.all(this.#running.values());
  }
}
