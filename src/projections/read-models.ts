/**
 * The query side's view of the read models: which version of each projection is active (so
 * queries read the right tables, and switch with a rebuild), and waiting for a consistency token.
 */
import {
  InvalidArgumentError,
  UnavailableError,
  type ConsistencyToken,
  type ProjectionDefinition,
  type ProjectionSink,
} from '../core/index.ts';
import { abortableDelay } from './applier.ts';
import { ledger } from './ledger.ts';
import type { ProjectionRunner } from './runner.ts';

/**
 * A runner that can say when this process has applied a stream up to a version (Kafka-fed
 * runners, whose consistency tokens are compared per stream).
 */
export interface StreamSignal {
  readonly name: string;
  readonly version: number;
  /**
   * Resolves `true` once this process has applied `streamId` up to `version`, `false` after
   * `timeoutMs`, or `undefined` at once when another process applies that stream (then the
   * ledger is polled).
   */
  whenStreamApplied(
    streamId: string,
    version: number,
    timeoutMs: number,
  ): Promise<boolean | undefined>;
}

export interface ReadModelsOptions {
  sink: ProjectionSink;
  projections: readonly ProjectionDefinition[];
  /**
   * Runners in this process (or a function giving them, as a host's change). Waits on them are
   * signalled; projections run elsewhere are polled in the ledger every `pollIntervalMs`
   * (default 10).
   */
  runners?: readonly ProjectionRunner[] | (() => readonly ProjectionRunner[]);
  /** How long the active version of a projection is remembered, in ms. Default 250. */
  activeCacheMs?: number;
  /**
   * How a token is compared. `position` (store-fed runners): the projection's log position has
   * reached the token's. `stream` (Kafka-fed runners, which see one stream in order but not the
   * global order): the projection has applied the token's stream up to its version.
   */
  tokenMode?: 'position' | 'stream';
  /**
   * Kafka-fed runners in this process (`tokenMode: 'stream'`): a wait on a stream they apply
   * is signalled by their commits instead of polling the ledger.
   */
  streamRunners?: readonly StreamSignal[] | (() => readonly StreamSignal[]);
  pollIntervalMs?: number;
}

export class ReadModels {
  readonly sink: ProjectionSink;
  readonly #definitions: Map<string, ProjectionDefinition>;
  readonly #runners: () => readonly ProjectionRunner[];
  readonly #streamRunners: () => readonly StreamSignal[];
  readonly #tokenMode: 'position' | 'stream';
  readonly #pollIntervalMs: number;
  readonly #activeCacheMs: number;
  readonly #active = new Map<string, { version: number; at: number }>();

  constructor(options: ReadModelsOptions) {
    this.sink = options.sink;
    this.#definitions = new Map(options.projections.map((p) => [p.name, p]));
    const runners = options.runners ?? [];
    this.#runners = typeof runners === 'function' ? runners : () => runners;
    const streamRunners = options.streamRunners ?? [];
    this.#streamRunners = typeof streamRunners === 'function' ? streamRunners : () => streamRunners;
    this.#activeCacheMs = options.activeCacheMs ?? 250;
    this.#tokenMode = options.tokenMode ?? 'position';
    this.#pollIntervalMs = options.pollIntervalMs ?? 10;
  }

  /**
   * The active (physical) version of a projection; `UnavailableError` when none has been built
   * yet. Read from the ledger, so a switch-over made by any process is seen within the cache
   * time, well inside the grace period before retired tables are dropped.
   */
  async activeVersion(projection: string): Promise<number> {
    const cached = this.#active.get(projection);
    if (cached && Date.now() - cached.at < this.#activeCacheMs) return cached.version;
    const version = await ledger.activeVersion(this.sink, projection).catch((error: unknown) => {
      throw new UnavailableError('read models', `cannot read the projection ledger`, {
        cause: error,
      });
    });
    if (version === undefined) {
      throw new UnavailableError(
        'read models',
        `projection '${projection}' has not been built yet`,
      );
    }
    this.#active.set(projection, { version, at: Date.now() });
    return version;
  }

  /** The physical name of `table` in the active version of `projection`. */
  async table(projection: string, table: string): Promise<string> {
    const definition = this.#definitions.get(projection);
    if (!definition)
      throw new InvalidArgumentError('projection', `unknown projection '${projection}'`);
    if (!definition.tables.includes(table)) {
      throw new InvalidArgumentError('table', `'${table}' is not one of ${projection}'s tables`);
    }
    return `${table}_v${await this.activeVersion(projection)}`;
  }

  query<Row = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<Row[]> {
    return this.sink.query<Row>(sql, params);
  }

  /**
   * Waits until every listed projection has applied the write the token names, at most
   * `timeoutMs`. Resolves `true` (fresh) or `false` (stale: the answer may miss that write).
   */
  async waitFor(
    token: ConsistencyToken,
    projections: readonly string[],
    timeoutMs: number,
  ): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (const name of projections) {
      if (!(await this.#waitOne(token, name, deadline))) return false;
    }
    return true;
  }

  async #waitOne(token: ConsistencyToken, name: string, deadline: number): Promise<boolean> {
    if (this.#tokenMode === 'position') {
      const version = await this.activeVersion(name).catch(() => undefined);
      const local = this.#runners().find(
        (r) => r.name === name && r.version === version && r.state !== 'stopped',
      );
      if (local) return local.whenProcessed(token.position, Math.max(0, deadline - Date.now()));
    }
    for (;;) {
      if (await this.#reached(token, name)) return true;
      const left = deadline - Date.now();
      if (left <= 0) return false;
      if (this.#tokenMode === 'stream') {
        const version = await this.activeVersion(name).catch(() => undefined);
        const local = this.#streamRunners().find((r) => r.name === name && r.version === version);
        // Registered after the check above: a commit in between is caught by the check below.
        const signalled = local?.whenStreamApplied(token.streamId, token.streamVersion, left);
        if (signalled) {
          if (await this.#reached(token, name)) return true;
          const applied = await signalled;
          if (applied !== undefined) return applied || this.#reached(token, name);
        }
      }
      await abortableDelay(Math.min(this.#pollIntervalMs, left));
    }
  }

  async #reached(token: ConsistencyToken, name: string): Promise<boolean> {
    const version = await this.activeVersion(name).catch(() => undefined);
    if (version === undefined) return false;
    if (this.#tokenMode === 'position') {
      const row = await ledger.projection(this.sink, name, version);
      return (row?.position ?? 0) >= token.position;
    }
    const rows = await this.sink.query<{ stream_version: number | string }>(
      'SELECT stream_version FROM tm_projection_streams WHERE name = $1 AND version = $2 AND stream_id = $3',
      [name, version, token.streamId],
    );
    return Number(rows[0]?.stream_version ?? 0) >= token.streamVersion;
  }
}
