/**
 * Projections turn events into read models. A definition is data plus two functions; runners
 * (fed by the store's global log, or by Kafka) call them inside the read-model transaction that
 * also records how far the projection got, so an event never has a second effect.
 */
import { InvalidArgumentError } from './errors.ts';
import type { Event, RecordedEvent } from './messages.ts';

/** The SQL dialects a read-model sink speaks. */
export type SqlDialect = 'sqlite' | 'postgres';

/**
 * A small, portable SQL interface over the read-model database. Placeholders are `$1, $2, …` in
 * both dialects. Values: strings, numbers, booleans, null, bigints, Dates (stored as ISO text on
 * SQLite). Rows come back as plain objects.
 */
export interface SqlExecutor {
  readonly dialect: SqlDialect;
  query<Row = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<Row[]>;
  execute(sql: string, params?: readonly unknown[]): Promise<{ rowCount: number }>;
}

/** What `init` and `apply` get: the transaction, and the physical names of the projection's tables. */
export interface ProjectionContext {
  sql: SqlExecutor;
  /**
   * The physical name of one of the projection's tables in the version being built
   * (`order_details` → `order_details_v2`). Always use it: a rebuild fills a new version beside
   * the old one, and the switch-over is a change of which names queries use.
   */
  table(name: string): string;
}

export interface ProjectionDefinition<E extends Event = Event> {
  /** Stable name, e.g. `order-details`. */
  name: string;
  /** Bump it when `init` or `apply` change: a new version is rebuilt beside the old one. */
  version: number;
  /** The event types `apply` is called for; the runner moves past every other event. */
  handles: readonly E['type'][];
  /** Logical names of the tables the projection owns (see {@link ProjectionContext.table}). */
  tables: readonly string[];
  /** Creates the tables of this version. Runs once, in a transaction, before the first event. */
  init(context: ProjectionContext): Promise<void> | void;
  /** Applies one event, in the transaction that also stores the projection's checkpoint. */
  apply(event: RecordedEvent<E>, context: ProjectionContext): Promise<void> | void;
  /**
   * Optional fast path: applies several events of the handled types at once, in log order, in
   * the batch's transaction (a few statements per batch instead of a few per event). It must
   * have exactly the effect of calling `apply` on each event in order: runners use it for whole
   * batches, and fall back to `apply`, one event at a time, to find and park a failing event.
   */
  applyBatch?(
    events: readonly RecordedEvent<E>[],
    context: ProjectionContext,
  ): Promise<void> | void;
  /**
   * Send the writes of `apply` and `applyBatch` together (PostgreSQL): `context.sql.execute`
   * resolves at once, and the statements go to the database in order, many in one round trip,
   * when the handler reads (`query` sends what is held first, so reads see earlier writes),
   * every 500 statements, and before the batch's progress is saved. A plain per-event
   * projection is otherwise one round trip per statement. The price: `execute`'s `rowCount` is
   * not known (reading it throws `invalid_argument`), and a failing statement fails the batch
   * when it is sent rather than at its `execute`; the batch is then applied one event at a
   * time as always, so the event that fails is the one retried and parked. Statements whose
   * parameters have no literal form (arrays) are sent at once, in order. No effect on SQLite,
   * which has no round trips to save. Default false.
   */
  deferWrites?: boolean;
  /**
   * Optional, for read models that copy personal data: removes (or redacts) what the tables of
   * this version hold of a forgotten data subject. `streamIds` are the streams that held its
   * personal data. Called by `forgetSubject`, in a transaction, for every version in the ledger;
   * it must be idempotent (a repeated forget calls it again). Events applied after forgetting
   * already carry redacted fields.
   */
  forget?(
    subject: { subject: string; streamIds: readonly string[] },
    context: ProjectionContext,
  ): Promise<void> | void;
}

const TABLE_NAME = /^[a-z_][a-z0-9_]{0,50}$/;
const PROJECTION_NAME = /^[a-z0-9][a-z0-9._-]{0,100}$/;

/** Checks a definition once, and returns it typed. */
export function defineProjection<E extends Event>(
  definition: ProjectionDefinition<E>,
): ProjectionDefinition<E> {
  if (typeof definition.name !== 'string' || !PROJECTION_NAME.test(definition.name)) {
    throw new InvalidArgumentError(
      'projection.name',
      'must be lower-case letters, digits, ".", "_" or "-"',
    );
  }
  if (!Number.isSafeInteger(definition.version) || definition.version < 1) {
    throw new InvalidArgumentError('projection.version', 'must be a positive integer');
  }
  if (!Array.isArray(definition.handles) || definition.handles.length === 0) {
    throw new InvalidArgumentError('projection.handles', 'must list at least one event type');
  }
  if (!Array.isArray(definition.tables)) {
    throw new InvalidArgumentError('projection.tables', 'must list the tables the projection owns');
  }
  for (const table of definition.tables) {
    if (typeof table !== 'string' || !TABLE_NAME.test(table)) {
      throw new InvalidArgumentError(
        'projection.tables',
        `'${String(table)}' is not a valid table name`,
      );
    }
  }
  if (typeof definition.init !== 'function' || typeof definition.apply !== 'function') {
    throw new InvalidArgumentError('projection', 'needs init and apply functions');
  }
  if (definition.applyBatch !== undefined && typeof definition.applyBatch !== 'function') {
    throw new InvalidArgumentError('projection.applyBatch', 'must be a function when given');
  }
  if (definition.deferWrites !== undefined && typeof definition.deferWrites !== 'boolean') {
    throw new InvalidArgumentError('projection.deferWrites', 'must be true or false when given');
  }
  if (definition.forget !== undefined && typeof definition.forget !== 'function') {
    throw new InvalidArgumentError('projection.forget', 'must be a function when given');
  }
  return definition;
}

/** One schema change of one component, applied once, in order. Never edit a released one. */
export interface Migration {
  version: number;
  description: string;
  sql: string;
}

/** A read model's state in the ledger. */
export type ProjectionState = 'building' | 'active' | 'retired';

/**
 * Where read models live, for runners and queries: transactions over a read-model database,
 * and plain reads for queries.
 */
export interface ProjectionSink {
  readonly dialect: SqlDialect;
  /** Runs `work` in one transaction; commits when it resolves, rolls back when it throws. */
  transaction<T>(work: (sql: SqlExecutor) => Promise<T>): Promise<T>;
  /** A read outside any write transaction (queries, status). */
  query<Row = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<Row[]>;
  /** Applies versioned schema changes once, safe when several processes start at once. */
  migrate(component: string, migrations: readonly Migration[]): Promise<void>;
  /** Calls `listener` after each commit of this process (to wake waiters). */
  onCommit(listener: () => void): () => void;
  /**
   * True for errors of the database itself (connection lost, lock timeout): the runner retries
   * the batch later instead of blaming, and parking, the events.
   */
  isTransientError(error: unknown): boolean;
}
