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
import { ledger, physicalTable, type FeedKind } from './ledger.ts';

/**
 * What can signal, in this process, that a projection version applied a write (a
 * ProjectionHost does): `undefined` when it cannot tell (then the ledger is polled).
 */
export interface ConsistencySource {
  whenApplied(
    name: string,
    version: number,
    token: ConsistencyToken,
    timeoutMs: number,
  ): Promise<boolean | undefined>;
}

export interface ReadModelsOptions {
  sink: ProjectionSink;
  projections: readonly ProjectionDefinition[];
  /**
   * The projections run in this process (a ProjectionHost): waits on them are signalled by
   * their commits. Projections run elsewhere are polled in the ledger every `pollIntervalMs`
   * (default 10).
   */
  local?: ConsistencySource;
  /** How long the active version of a projection is remembered, in ms. Default 250. */
  activeCacheMs?: number;
  pollIntervalMs?: number;
}

export class ReadModels {
  readonly sink: ProjectionSink;
  readonly #definitions: Map<string, ProjectionDefinition>;
  readonly #local: ConsistencySource | undefined;
  readonly #pollIntervalMs: number;
  readonly #activeCacheMs: number;
  readonly #active = new Map<string, { version: number; feed: FeedKind; at: number }>();

  constructor(options: ReadModelsOptions) {
    this.sink = options.sink;
    this.#definitions = new Map(options.projections.map((p) => [p.name, p]));
    this.#local = options.local;
    this.#activeCacheMs = options.activeCacheMs ?? 250;
    this.#pollIntervalMs = options.pollIntervalMs ?? 10;
  }

  /**
   * The active (physical) version of a projection; `UnavailableError` when none has been built
   * yet. Read from the ledger, so a switch-over made by any process is seen within the cache
   * time, well inside the grace period before retired tables are dropped.
   */
  async activeVersion(projection: string): Promise<number> {
    return (await this.#activeRow(projection)).version;
  }

  async #activeRow(projection: string): Promise<{ version: number; feed: FeedKind }> {
    const cached = this.#active.get(projection);
    if (cached && Date.now() - cached.at < this.#activeCacheMs) return cached;
    const active = await ledger.active(this.sink, projection).catch((error: unknown) => {
      throw new UnavailableError('read models', `cannot read the projection ledger`, {
        cause: error,
      });
    });
    if (active === undefined) {
      throw new UnavailableError(
        'read models',
        `projection '${projection}' has not been built yet`,
      );
    }
    this.#active.set(projection, { ...active, at: Date.now() });
    return active;
  }

  /** The physical name of `table` in the active version of `projection`. */
  async table(projection: string, table: string): Promise<string> {
    const definition = this.#definitions.get(projection);
    if (!definition)
      throw new InvalidArgumentError('projection', `unknown projection '${projection}'`);
    if (!definition.tables.includes(table)) {
      throw new InvalidArgumentError('table', `'${table}' is not one of ${projection}'s tables`);
    }
    return physicalTable(table, await this.activeVersion(projection));
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
    for (;;) {
      const active = await this.#activeRow(name).catch(() => undefined);
      if (active && (await this.#reached(token, name, active))) return true;
      const left = deadline - Date.now();
      if (left <= 0) return false;
      if (active && this.#local) {
        // Registered after the check above: a commit in between is caught by the check below.
        const signalled = this.#local.whenApplied(name, active.version, token, left);
        if (await this.#reached(token, name, active)) return true;
        const applied = await signalled;
        if (applied !== undefined) return applied || this.#reached(token, name, active);
      }
      await abortableDelay(Math.min(this.#pollIntervalMs, Math.max(0, deadline - Date.now())));
    }
  }

  /**
   * Whether the active version has applied the token's write, from the ledger: a store-fed
   * version by its log position (it applies the log in order), a Kafka-fed one by the token's
   * stream version (it sees each stream in order, not the global order).
   */
  async #reached(
    token: ConsistencyToken,
    name: string,
    active: { version: number; feed: FeedKind },
  ): Promise<boolean> {
    if (active.feed === 'store') {
      const row = await ledger.projection(this.sink, name, active.version);
      return (row?.position ?? 0) >= token.position;
    }
    const applied = await ledger.streamVersion(this.sink, name, active.version, token.streamId);
    return applied >= token.streamVersion;
  }
}
