import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import type pg from 'pg';
import {
  ANY,
  ClosedError,
  DuplicateEventIdError,
  InvalidArgumentError,
  NO_STREAM,
  STREAM_EXISTS,
  SerializationError,
  StorageError,
  StreamArchivedError,
  UnavailableError,
  WrongExpectedVersionError,
  isTidemarkError,
  type ArchivalTables,
  noUpcasters,
  silentLogger,
  type AppendOptions,
  type AppendResult,
  type Event,
  type ExpectedVersion,
  type FullEventStore,
  type IdempotencyClaim,
  type ListStreamsOptions,
  type Logger,
  type NewEvent,
  type ReadAllOptions,
  type ReadStreamOptions,
  type RecordedEvent,
  type Snapshot,
  type StreamInfo,
  type Upcasters,
} from '../core/index.ts';
import {
  allReadRange,
  appendExpectation,
  listLimit,
  prepareEvents,
  streamReadRange,
  toJson,
  validateStreamId,
  type PreparedEvent,
} from '../core/preparation.ts';
import {
  assertPgText,
  connectWithRetry,
  createPool,
  isCancelled,
  isConnectionError,
  nextBackoff,
  resolveConnection,
  unavailable,
  withConnection,
  type PostgresConnectionOptions,
} from './connection.ts';
import {
  appliedMigrations,
  checkSchemaVersion,
  migrateSchema,
  type AppliedMigration,
} from './migrations.ts';
import { PostgresArchivalTables } from './archival.ts';
import { AppendNotifier } from './notifier.ts';
import { EXPECT_ANY, EXPECT_STREAM_EXISTS, eventStoreMigrations } from './schema.ts';

const COMPONENT = 'PostgresEventStore';

export interface PostgresEventStoreOptions extends PostgresConnectionOptions {
  upcasters?: Upcasters;
  /** The clock that stamps `recordedAt`. Default: the system clock. */
  now?: () => Date;
  logger?: Logger;
  /**
   * Apply the store's migrations at start (default). With `false`, the schema must already be
   * at this version (for a role without DDL rights): otherwise `storage_error`.
   */
  migrate?: boolean;
  /**
   * Send a NOTIFY after appends so `onAppended` listeners in other processes wake at once.
   * Default true.
   */
  notify?: boolean;
  /**
   * During a burst of appends, at most one NOTIFY per this many ms (the first append after a
   * quiet spell is announced at once). Each NOTIFY is a small transaction of its own; longer
   * intervals cost less and wake other processes later. Default 10.
   */
  notifyIntervalMs?: number;
  /**
   * While someone listens through `onAppended`, the head is also polled this often, in ms:
   * the fallback when a notification is lost. Default 1000.
   */
  pollIntervalMs?: number;
  /**
   * @internal For tests only: read the global log without the gap guard, as a naive
   * `position > after` reader would, to show what the guard prevents. Never in production:
   * such a reader skips events whose transaction commits late.
   */
  unsafeDisableGapGuard?: boolean;
}

interface EventRow {
  position: number;
  stream_id: string;
  stream_version: number;
  event_id: string;
  type: string;
  schema_version: number;
  data: unknown;
  metadata: RecordedEvent['metadata'];
  /** Milliseconds since the epoch (see EVENT_COLUMNS). */
  recorded_at: number;
}

/**
 * The columns of a recorded event (STREAM_EVENT_COLUMNS: without `stream_id`, for reads of one
 * stream, which know it). `recorded_at` comes as epoch milliseconds (truncated, as the
 * driver's own parse of the timestamp text truncates): a number is parsed in a fraction of the
 * time of the driver's date text, which was about 15% of loading a 1000-event stream.
 */
const STREAM_EVENT_COLUMNS =
  'position, stream_version, event_id, type, schema_version, data, metadata, ' +
  'floor(extract(epoch FROM recorded_at) * 1000)::int8 AS recorded_at';
const EVENT_COLUMNS = `stream_id, ${STREAM_EVENT_COLUMNS}`;

/**
 * The global log's horizon for the statement's own snapshot (`tm_horizon`, docs/postgres.md),
 * and whether it is provisional: a transaction that ended between the snapshot and the probe,
 * unmarked, counts conservatively (it may have been an append that committed just after the
 * snapshot). Such a transaction is often not an append at all, or one of another database of
 * the cluster (advisory marks are per database), so the reader asks again with a new snapshot,
 * in which it is no longer running: see READ_AGAIN.
 */
const HORIZON = (s: string) =>
  `SELECT x.horizon,
          x.horizon < pg_snapshot_xmax(pg_current_snapshot())
            AND pg_xact_status(x.horizon) IS DISTINCT FROM 'in progress' AS provisional
   FROM (SELECT ${s}.tm_horizon(pg_current_snapshot()) AS horizon) x`;

/**
 * How many more times a log read or a head read is made when its horizon was provisional.
 * Each read is sound on its own (it may only stop short); asking again makes an append that
 * committed before the call visible to it, unless other transactions keep ending at the same
 * instant, in which case the last answer (still sound) is returned.
 */
const READ_AGAIN = 3;

/** A `\u0000` escape in JSON text (one not itself escaped): PostgreSQL's jsonb cannot hold it. */
function hasNulEscape(json: string): boolean {
  for (let at = json.indexOf('\\u0000'); at !== -1; at = json.indexOf('\\u0000', at + 1)) {
    let backslashes = 0;
    for (let i = at - 1; i >= 0 && json[i] === '\\'; i--) backslashes++;
    if (backslashes % 2 === 0) return true;
  }
  return false;
}

function assertJsonbText(json: string, what: string): void {
  if (hasNulEscape(json)) {
    throw new SerializationError(
      what,
      'contains the NUL character (U+0000), which PostgreSQL jsonb cannot store',
    );
  }
}

function expectedCode(expected: ExpectedVersion): number {
  if (expected === ANY) return EXPECT_ANY;
  if (expected === STREAM_EXISTS) return EXPECT_STREAM_EXISTS;
  if (expected === NO_STREAM) return 0;
  return expected;
}

/**
 * The event store on PostgreSQL: many processes may append and read at once.
 *
 * - An append is one statement, `SELECT … FROM tm_append(…)`: version check, positions, events
 *   and stream row in one round trip, atomic.
 * - The global log is gap-safe: `readAll` never returns an event while one of a lower position
 *   may still commit (docs/postgres.md explains how, with the SQL).
 * - `onAppended` hears appends of every process (LISTEN/NOTIFY, with polling as the fallback).
 * - Connections that fail are replaced; operations retry with backoff for `reconnectWindowMs`,
 *   then fail with `unavailable`. An append that returns has committed; one whose connection
 *   broke mid-flight is retried with the same event ids and recognised if it had committed.
 *
 * Open it with {@link PostgresEventStore.connect}.
 */
export class PostgresEventStore implements FullEventStore {
  /** The schema the store's tables live in. */
  readonly schema: string;
  readonly #pool: pg.Pool;
  /** Whether each pooled connection is to a server in recovery (see #refuseStandby). */
  readonly #standbyChecked = new WeakMap<pg.PoolClient, boolean>();
  readonly #upcasters: Upcasters;
  readonly #now: () => Date;
  readonly #logger: Logger;
  readonly #windowMs: number;
  readonly #listeners = new Set<(position: number) => void>();
  readonly #notifier: AppendNotifier;
  readonly #q: Record<
    | 'append'
    | 'findIds'
    | 'readForwards'
    | 'readBackwards'
    | 'readAll'
    | 'head'
    | 'streamVersion'
    | 'listStreams'
    | 'readSnapshot'
    | 'readFromSnapshot'
    | 'writeSnapshot'
    | 'claim'
    | 'complete'
    | 'release'
    | 'storeId',
    { name: string; text: string }
  >;
  #closed = false;

  private constructor(
    pool: pg.Pool,
    config: pg.ClientConfig,
    schema: string,
    quoted: string,
    windowMs: number,
    options: PostgresEventStoreOptions,
  ) {
    this.schema = schema;
    this.#pool = pool;
    this.#windowMs = windowMs;
    this.#upcasters = options.upcasters ?? noUpcasters;
    this.#now = options.now ?? (() => new Date());
    this.#logger = options.logger ?? silentLogger;
    const s = quoted;
    const named = (key: string, text: string) => ({ name: `tm.${schema}.${key}`, text });
    const unsafe = options.unsafeDisableGapGuard === true;
    this.#q = {
      append: named(
        'append',
        `SELECT current_version, first_position FROM ${s}.tm_append($1, $2, $3, $4)`,
      ),
      findIds: named(
        'find-ids',
        `SELECT ${EVENT_COLUMNS} FROM ${s}.tm_events WHERE event_id = ANY($1::text[]) ORDER BY position`,
      ),
      readForwards: named(
        'read-forwards',
        `SELECT ${STREAM_EVENT_COLUMNS} FROM ${s}.tm_events
         WHERE stream_id = $1 AND stream_version >= $2 AND stream_version <= $3
         ORDER BY stream_version ASC LIMIT $4`,
      ),
      readBackwards: named(
        'read-backwards',
        `SELECT ${STREAM_EVENT_COLUMNS} FROM ${s}.tm_events
         WHERE stream_id = $1 AND stream_version >= $2 AND stream_version <= $3
         ORDER BY stream_version DESC LIMIT $4`,
      ),
      // The gap guard (docs/postgres.md): of the next rows by position, return the leading run
      // whose transactions are all older than the horizon, the oldest append still in flight.
      // Because tm_append hands out transaction ids and positions in the same order, no append
      // still running can commit a position inside that run. pg_current_snapshot() is the
      // statement's own snapshot: the same one that decides which rows are visible.
      readAll: unsafe
        ? named(
            'read-all-unguarded',
            `SELECT ${EVENT_COLUMNS} FROM ${s}.tm_events WHERE position > $1 ORDER BY position LIMIT $2`,
          )
        : named(
            'read-all',
            // LEFT JOIN: one row of NULL event columns when nothing is settled, so that the
            // horizon's `provisional` flag comes back in every case.
            `SELECT batch.*, h.provisional FROM (${HORIZON(s)}) h
             LEFT JOIN LATERAL (
               SELECT ${EVENT_COLUMNS} FROM (
                 SELECT e.*, bool_and(e.tx_id < h.horizon) OVER (ORDER BY e.position) AS settled
                 FROM (SELECT * FROM ${s}.tm_events WHERE position > $1 ORDER BY position LIMIT $2) e
               ) run
               WHERE settled
             ) batch ON true
             ORDER BY batch.position`,
          ),
      head: unsafe
        ? named('head-unguarded', `SELECT max(position) AS head FROM ${s}.tm_events`)
        : named(
            'head',
            `SELECT (SELECT position FROM ${s}.tm_events WHERE tx_id < h.horizon
                     ORDER BY position DESC LIMIT 1) AS head, h.provisional
             FROM (${HORIZON(s)}) h`,
          ),
      streamVersion: named(
        'stream-version',
        `SELECT version FROM ${s}.tm_streams WHERE stream_id = $1`,
      ),
      listStreams: named(
        'list-streams',
        `SELECT stream_id, version, position, updated_at FROM ${s}.tm_streams
         WHERE stream_id >= $1 AND starts_with(stream_id, $1) AND stream_id > $2
         ORDER BY stream_id LIMIT $3`,
      ),
      // Snapshot and tail in one round trip: one row per event after the snapshot (all events when
      // the snapshot is of another state version, or missing), or one row of NULL event columns.
      readFromSnapshot: named(
        'read-from-snapshot',
        `SELECT sn.stream_version AS snap_stream_version, sn.state_version AS snap_state_version,
                sn.state AS snap_state, sn.taken_at AS snap_taken_at, e.*
         FROM (SELECT 1) AS one
         LEFT JOIN ${s}.tm_snapshots sn ON sn.stream_id = $1
         LEFT JOIN LATERAL (
           SELECT ${EVENT_COLUMNS} FROM ${s}.tm_events
           WHERE stream_id = $1
             AND stream_version > CASE WHEN sn.state_version = $2 THEN sn.stream_version ELSE 0 END
           ORDER BY stream_version ASC
         ) e ON true`,
      ),
      readSnapshot: named(
        'read-snapshot',
        `SELECT stream_id, stream_version, state_version, state, taken_at FROM ${s}.tm_snapshots
         WHERE stream_id = $1`,
      ),
      writeSnapshot: named(
        'write-snapshot',
        `INSERT INTO ${s}.tm_snapshots AS t (stream_id, stream_version, state_version, state, taken_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (stream_id) DO UPDATE SET stream_version = excluded.stream_version,
           state_version = excluded.state_version, state = excluded.state, taken_at = excluded.taken_at
         WHERE excluded.state_version <> t.state_version OR excluded.stream_version >= t.stream_version`,
      ),
      // One statement, whatever the row's state: the upsert locks the row (or waits for a
      // concurrent claimer's commit) and sees its latest version. It takes the claim only when
      // the row is new, or unanswered and older than the lease; otherwise it rewrites the row
      // as it was. The token then tells whose claim the row holds. Repeating the statement
      // with the same token gives the same answer, so it is safe to retry after a broken
      // connection.
      claim: named(
        'claim',
        `INSERT INTO ${s}.tm_idempotency AS t (key, fingerprint, token, claimed_at)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (key) DO UPDATE SET
           fingerprint = CASE WHEN t.response IS NULL AND t.token <> excluded.token
                                   AND t.claimed_at <= excluded.claimed_at - $5
                              THEN excluded.fingerprint ELSE t.fingerprint END,
           token = CASE WHEN t.response IS NULL AND t.token <> excluded.token
                             AND t.claimed_at <= excluded.claimed_at - $5
                        THEN excluded.token ELSE t.token END,
           claimed_at = CASE WHEN t.response IS NULL AND t.token <> excluded.token
                                  AND t.claimed_at <= excluded.claimed_at - $5
                             THEN excluded.claimed_at ELSE t.claimed_at END
         RETURNING token, fingerprint, response, response IS NOT NULL AS completed,
                   xmax::text <> '0' AS existed`,
      ),
      complete: named(
        'complete',
        `UPDATE ${s}.tm_idempotency SET response = $2, completed_at = $3
         WHERE key = $1 AND response IS NULL`,
      ),
      release: named(
        'release',
        `DELETE FROM ${s}.tm_idempotency WHERE key = $1 AND response IS NULL`,
      ),
      storeId: named('store-id', `SELECT store_id::text AS id FROM ${s}.tm_store`),
    };
    this.#notifier = new AppendNotifier({
      config,
      pool,
      channel: `tidemark_appended_${schema}`,
      logger: this.#logger,
      notify: options.notify ?? true,
      notifyIntervalMs: options.notifyIntervalMs ?? 10,
      pollIntervalMs: options.pollIntervalMs ?? 1000,
      head: () => this.headPosition(),
      wake: (position) => this.#wake(position),
    });
  }

  /**
   * Connects, applies the store's migrations (unless `migrate: false`) and returns the store.
   * Fails with `unavailable` when the database cannot be reached within `reconnectWindowMs`,
   * with `storage_error` when the schema was migrated by a newer Tidemark.
   */
  static async connect(options: PostgresEventStoreOptions): Promise<PostgresEventStore> {
    const { schema, quotedSchema, config, reconnectWindowMs } = resolveConnection(options);
    const logger = options.logger ?? silentLogger;
    for (const key of ['pollIntervalMs', 'notifyIntervalMs'] as const) {
      const value = options[key];
      if (value !== undefined && (!Number.isSafeInteger(value) || value < 1)) {
        throw new InvalidArgumentError(key, 'must be a positive integer');
      }
    }
    const pool = createPool(config, (error) =>
      logger.warn({ err: error }, 'an idle PostgreSQL connection failed; it will be replaced'),
    );
    try {
      const client = await connectWithRetry(
        pool,
        COMPONENT,
        Date.now() + reconnectWindowMs,
        () => false,
      );
      try {
        const migrations = eventStoreMigrations(schema);
        if (options.migrate === false) {
          await checkSchemaVersion(client, schema, 'event-store', migrations);
        } else {
          await migrateSchema(client, schema, 'event-store', migrations);
        }
        client.release();
      } catch (error) {
        client.release(isConnectionError(error) ? (error as Error) : undefined);
        throw isConnectionError(error) ? unavailable(COMPONENT, error) : error;
      }
    } catch (error) {
      await pool.end().catch(() => {});
      throw error;
    }
    return new PostgresEventStore(pool, config, schema, quotedSchema, reconnectWindowMs, options);
  }

  /** The schema versions applied, per component. */
  async migrations(): Promise<AppliedMigration[]> {
    return this.#withClient((client) => appliedMigrations(client, this.schema));
  }

  /** The upcasters reads apply (projection engines use them for their raw reads). */
  get upcasters(): Upcasters {
    return this.#upcasters;
  }

  async appendToStream<E extends Event>(
    streamId: string,
    events: readonly NewEvent<E>[],
    options?: AppendOptions,
  ): Promise<AppendResult<E>> {
    this.#assertOpen();
    validateStreamId(streamId);
    assertPgText(streamId, 'streamId');
    const expected = appendExpectation(options);
    const prepared = prepareEvents(events, this.#upcasters, randomUUID);
    const ids = new Set<string>();
    let body = '[';
    for (let i = 0; i < prepared.length; i++) {
      const event = prepared[i]!;
      if (ids.has(event.eventId)) throw new DuplicateEventIdError(event.eventId);
      ids.add(event.eventId);
      const item =
        `{"i":${JSON.stringify(event.eventId)},"t":${JSON.stringify(event.type)},` +
        `"s":${event.schemaVersion},"d":${event.data},"m":${event.metadata}}`;
      assertJsonbText(item, `events[${i}]`);
      body += i === 0 ? item : `,${item}`;
    }
    body += ']';
    const recordedAt = this.#now();
    const values = [streamId, expectedCode(expected), body, recordedAt.toISOString()];

    const deadline = Date.now() + this.#windowMs;
    let wait = 0;
    // Set once a connection broke after the statement may have reached the server: from then
    // on the append may have committed, and every further step first looks for its events.
    let uncertain = false;
    for (;;) {
      if (uncertain) {
        const found = await this.#findAppended(streamId, prepared).catch((error: unknown) => {
          if (isConnectionError(error)) return undefined;
          throw error;
        });
        if (found) return found as AppendResult<E>;
      }
      let client: pg.PoolClient;
      try {
        client = await connectWithRetry(this.#pool, COMPONENT, deadline, () => this.#closed);
      } catch (error) {
        throw uncertain ? this.#uncertain(streamId, error) : error;
      }
      let row: { current_version: number; first_position: number | null } | undefined;
      try {
        const result = await client.query<{
          current_version: number;
          first_position: number | null;
        }>({ ...this.#q.append, values });
        client.release();
        row = result.rows[0];
      } catch (error) {
        const broken = isConnectionError(error);
        client.release(broken || isCancelled(error) ? (error as Error) : undefined);
        if (!broken) {
          if (uncertain && (error as { code?: string }).code === '23505') {
            const found = await this.#findAppended(streamId, prepared);
            if (found) return found as AppendResult<E>;
          }
          throw await this.#appendError(error, prepared, streamId);
        }
        uncertain = true;
        if (this.#closed || Date.now() >= deadline) throw this.#uncertain(streamId, error);
        this.#logger.warn(
          { streamId, err: error },
          'connection lost during an append; retrying, and checking whether it committed',
        );
        wait = nextBackoff(wait);
        await delay(Math.min(wait, Math.max(0, deadline - Date.now())));
        continue;
      }
      if (!row) throw new StorageError(`tm_append returned no row for '${streamId}'`);
      if (row.first_position === null) {
        if (uncertain) {
          const found = await this.#findAppended(streamId, prepared);
          if (found) return found as AppendResult<E>;
        }
        throw new WrongExpectedVersionError(streamId, expected, row.current_version);
      }
      const result = this.#appended(
        streamId,
        prepared,
        row.current_version,
        row.first_position,
        recordedAt,
      );
      this.#announce(result.position);
      return result as AppendResult<E>;
    }
  }

  #uncertain(streamId: string, cause: unknown): UnavailableError {
    return new UnavailableError(
      COMPONENT,
      `the connection broke while appending to '${streamId}' and did not come back in time; ` +
        'the append may or may not have been committed (look for its event ids)',
      { cause },
    );
  }

  #appended(
    streamId: string,
    prepared: PreparedEvent[],
    currentVersion: number,
    firstPosition: number,
    recordedAt: Date,
  ): AppendResult {
    const events: RecordedEvent[] = new Array(prepared.length);
    for (let i = 0; i < prepared.length; i++) {
      const event = prepared[i]!;
      events[i] = this.#upcasters.upcast({
        eventId: event.eventId,
        streamId,
        streamVersion: currentVersion + i + 1,
        position: firstPosition + i,
        type: event.type,
        schemaVersion: event.schemaVersion,
        data: event.dataObject,
        metadata: event.metadataObject,
        recordedAt,
      }) as RecordedEvent;
    }
    return {
      nextExpectedVersion: currentVersion + prepared.length,
      position: firstPosition + prepared.length - 1,
      events,
    };
  }

  /**
   * After a broken connection: the append's events, if an earlier attempt committed them (all
   * of them, in this stream, in order); otherwise undefined.
   */
  async #findAppended(
    streamId: string,
    prepared: PreparedEvent[],
  ): Promise<AppendResult | undefined> {
    const rows = await this.#run<EventRow>(
      this.#q.findIds,
      [prepared.map((e) => e.eventId)],
      COMPONENT,
    );
    if (rows.length !== prepared.length) return undefined;
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i]!;
      if (
        row.stream_id !== streamId ||
        row.event_id !== prepared[i]!.eventId ||
        row.stream_version !== rows[0]!.stream_version + i
      ) {
        return undefined;
      }
    }
    this.#logger.info({ streamId }, 'an append whose answer was lost had committed');
    const first = rows[0]!;
    const result = this.#appended(
      streamId,
      prepared,
      first.stream_version - 1,
      first.position,
      new Date(first.recorded_at),
    );
    this.#announce(result.position);
    return result;
  }

  /** Turns an SQL error of an append into the store's own. */
  async #appendError(
    error: unknown,
    prepared: PreparedEvent[],
    streamId: string,
  ): Promise<unknown> {
    const { code, constraint } = error as { code?: string; constraint?: string };
    if (code === '23505' && constraint === 'tm_events_event_id_key') {
      const rows = await this.#run<EventRow>(
        this.#q.findIds,
        [prepared.map((e) => e.eventId)],
        COMPONENT,
      ).catch(() => []);
      return new DuplicateEventIdError(rows[0]?.event_id ?? prepared[0]!.eventId, {
        cause: error,
      });
    }
    // Gave up waiting (a stream held by a long transaction past statement_timeout, a
    // deadlock): the statement was rolled back, nothing was written, trying again may work.
    if (code === '57014' || code === '55P03' || code === '40P01' || code === '40001') {
      return new UnavailableError(COMPONENT, (error as Error).message, { cause: error });
    }
    if (typeof code === 'string' && code.startsWith('22')) {
      return new SerializationError('events', (error as Error).message, { cause: error });
    }
    // The trigger of migration 4: the stream was archived.
    if (code === 'TM002') return new StreamArchivedError(streamId, { cause: error });
    if (isTidemarkError(error)) return error;
    return new StorageError(`append failed: ${(error as Error).message}`, { cause: error });
  }

  async readStream<E extends Event = Event>(
    streamId: string,
    options?: ReadStreamOptions,
  ): Promise<RecordedEvent<E>[]> {
    this.#assertOpen();
    validateStreamId(streamId);
    assertPgText(streamId, 'streamId');
    const { forwards, fromVersion, toVersion, maxCount } = streamReadRange(options);
    const rows = await this.#run<EventRow>(
      forwards ? this.#q.readForwards : this.#q.readBackwards,
      [streamId, fromVersion, toVersion, maxCount === Number.MAX_SAFE_INTEGER ? null : maxCount],
    );
    const events = new Array<RecordedEvent<E>>(rows.length);
    for (let i = 0; i < rows.length; i++) {
      rows[i]!.stream_id = streamId;
      events[i] = this.#toRecorded(rows[i]!) as RecordedEvent<E>;
    }
    return events;
  }

  async readAll<E extends Event = Event>(options?: ReadAllOptions): Promise<RecordedEvent<E>[]> {
    this.#assertOpen();
    const { after, maxCount } = allReadRange(options);
    let rows: (EventRow & { provisional: boolean })[] = [];
    for (let attempt = 0; attempt <= READ_AGAIN; attempt++) {
      rows = await this.#run(this.#q.readAll, [after, maxCount], COMPONENT, true);
      if (!rows[0]?.provisional) break;
    }
    const upcast = options?.upcast !== false;
    return rows
      .filter((row) => row.position !== null)
      .map((row) => this.#toRecorded(row, upcast) as RecordedEvent<E>);
  }

  async streamVersion(streamId: string): Promise<number> {
    this.#assertOpen();
    validateStreamId(streamId);
    assertPgText(streamId, 'streamId');
    const rows = await this.#run<{ version: number }>(this.#q.streamVersion, [streamId]);
    return rows[0]?.version ?? 0;
  }

  /**
   * The highest position readAll can return now: the last event of the settled run of the log.
   * While a transaction that may still commit a lower position runs, events committed after it
   * are not counted yet, so the head can be lower than the position an append just returned.
   */
  async headPosition(): Promise<number> {
    this.#assertOpen();
    let rows: { head: number | null; provisional?: boolean }[] = [];
    for (let attempt = 0; attempt <= READ_AGAIN; attempt++) {
      rows = await this.#run(this.#q.head, [], COMPONENT, true);
      if (!rows[0]?.provisional) break;
    }
    return rows[0]?.head ?? 0;
  }

  /** The archive index in this schema's tables, for `archiveStreams` and `ArchiveAwareStore`. */
  archival(): ArchivalTables {
    this.#assertOpen();
    return new PostgresArchivalTables(this.#pool, this.schema, this.#windowMs, () => this.#closed);
  }

  /** The identity written when this schema's store tables were created (`tm_store`). */
  async storeId(): Promise<string> {
    this.#assertOpen();
    const rows = await this.#run<{ id: string }>(this.#q.storeId, []);
    if (!rows[0]) throw new StorageError(`schema ${this.schema}: tm_store has no row`);
    return rows[0].id;
  }

  async listStreams(options: ListStreamsOptions = {}): Promise<StreamInfo[]> {
    this.#assertOpen();
    const limit = listLimit(options.limit);
    const prefix = options.prefix ?? '';
    const after = options.after ?? '';
    assertPgText(prefix, 'prefix');
    assertPgText(after, 'after');
    const rows = await this.#run<{
      stream_id: string;
      version: number;
      position: number;
      updated_at: Date;
    }>(this.#q.listStreams, [prefix, after, limit]);
    return rows.map((row) => ({
      streamId: row.stream_id,
      version: row.version,
      position: row.position,
      updatedAt: row.updated_at,
    }));
  }

  onAppended(listener: (position: number) => void): () => void {
    this.#listeners.add(listener);
    if (!this.#closed) this.#notifier.listen();
    return () => {
      this.#listeners.delete(listener);
      if (this.#listeners.size === 0) void this.#notifier.unlisten();
    };
  }

  async readFromSnapshot<E extends Event = Event>(
    streamId: string,
    stateVersion: number,
  ): Promise<{ snapshot: Snapshot | undefined; events: RecordedEvent<E>[] }> {
    this.#assertOpen();
    validateStreamId(streamId);
    assertPgText(streamId, 'streamId');
    if (!Number.isSafeInteger(stateVersion) || stateVersion < 1) {
      throw new InvalidArgumentError('stateVersion', 'must be a positive integer');
    }
    const rows = await this.#run<
      EventRow & {
        snap_stream_version: number | null;
        snap_state_version: number | null;
        snap_state: unknown;
        snap_taken_at: Date | null;
      }
    >(this.#q.readFromSnapshot, [streamId, stateVersion]);
    const first = rows[0];
    const snapshot: Snapshot | undefined =
      first && first.snap_stream_version !== null
        ? {
            streamId,
            streamVersion: first.snap_stream_version,
            stateVersion: first.snap_state_version!,
            state: first.snap_state,
            takenAt: first.snap_taken_at!,
          }
        : undefined;
    const events = rows
      .filter((row) => row.position !== null)
      .map((row) => this.#toRecorded(row) as RecordedEvent<E>);
    return { snapshot, events };
  }

  async readSnapshot(streamId: string): Promise<Snapshot | undefined> {
    this.#assertOpen();
    validateStreamId(streamId);
    assertPgText(streamId, 'streamId');
    const rows = await this.#run<{
      stream_id: string;
      stream_version: number;
      state_version: number;
      state: unknown;
      taken_at: Date;
    }>(this.#q.readSnapshot, [streamId]);
    const row = rows[0];
    if (!row) return undefined;
    return {
      streamId: row.stream_id,
      streamVersion: row.stream_version,
      stateVersion: row.state_version,
      state: row.state,
      takenAt: row.taken_at,
    };
  }

  async writeSnapshot(snapshot: Omit<Snapshot, 'takenAt'>): Promise<void> {
    this.#assertOpen();
    validateStreamId(snapshot.streamId);
    assertPgText(snapshot.streamId, 'streamId');
    const state = toJson(snapshot.state, 'snapshot state');
    assertJsonbText(state, 'snapshot state');
    await this.#run(this.#q.writeSnapshot, [
      snapshot.streamId,
      snapshot.streamVersion,
      snapshot.stateVersion,
      state,
      this.#now().toISOString(),
    ]);
  }

  async claimIdempotencyKey(
    key: string,
    fingerprint: string,
    leaseMs: number,
  ): Promise<IdempotencyClaim> {
    this.#assertOpen();
    assertPgText(key, 'key');
    assertPgText(fingerprint, 'fingerprint');
    if (typeof leaseMs !== 'number' || !(leaseMs >= 0)) {
      throw new InvalidArgumentError('leaseMs', 'must be a number of milliseconds >= 0');
    }
    const token = randomUUID();
    const rows = await this.#run<{
      token: string;
      fingerprint: string;
      response: unknown;
      completed: boolean;
      /** The row was there before (an upsert's updated row has a non-zero xmax). */
      existed: boolean;
    }>(this.#q.claim, [
      key,
      fingerprint,
      token,
      this.#now().getTime(),
      Number.isFinite(leaseMs) ? Math.ceil(leaseMs) : Number.MAX_SAFE_INTEGER,
    ]);
    const row = rows[0]!;
    if (row.completed) {
      return { outcome: 'completed', fingerprint: row.fingerprint, response: row.response };
    }
    if (row.token === token) {
      return row.existed ? { outcome: 'claimed', takenOver: true } : { outcome: 'claimed' };
    }
    return { outcome: 'pending', fingerprint: row.fingerprint };
  }

  async completeIdempotencyKey(key: string, response: unknown): Promise<void> {
    this.#assertOpen();
    assertPgText(key, 'key');
    const text = toJson(response, 'idempotent response');
    assertJsonbText(text, 'idempotent response');
    await this.#run(this.#q.complete, [key, text, this.#now().getTime()]);
  }

  async releaseIdempotencyKey(key: string): Promise<void> {
    this.#assertOpen();
    assertPgText(key, 'key');
    await this.#run(this.#q.release, [key]);
  }

  /** Closes the pool and the listening connection. Calls in flight finish first. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listeners.clear();
    await this.#notifier.close();
    await this.#pool.end();
  }

  /** Runs one idempotent statement, retrying over broken connections. */
  /**
   * Runs one statement on a pooled connection. `logRead`: a read of the global log, which is
   * refused on a hot standby (see #refuseStandby); each connection is asked once.
   */
  async #run<Row extends pg.QueryResultRow>(
    query: { name: string; text: string },
    values: unknown[],
    component = COMPONENT,
    logRead = false,
  ): Promise<Row[]> {
    try {
      return await withConnection(
        this.#pool,
        component,
        this.#windowMs,
        () => this.#closed,
        async (client) => {
          if (logRead) await this.#refuseStandby(client);
          return (await client.query<Row>({ ...query, values })).rows;
        },
      );
    } catch (error) {
      if (isTidemarkError(error)) throw error;
      if (this.#closed) throw new ClosedError(COMPONENT, { cause: error });
      throw new StorageError(`${query.name}: ${(error as Error).message}`, { cause: error });
    }
  }

  /**
   * The gap-safe log read leans on the primary's view of appends in flight (their advisory
   * locks and transaction ids), which a hot standby does not have: there a reader could pass a
   * position whose transaction then commits below it, and skip events for good. So a log read
   * on a server in recovery is refused. Asked once per connection: a failover hands out new ones.
   */
  async #refuseStandby(client: pg.PoolClient): Promise<void> {
    let standby = this.#standbyChecked.get(client);
    if (standby === undefined) {
      const { rows } = await client.query<{ standby: boolean }>(
        'SELECT pg_is_in_recovery() AS standby',
      );
      standby = rows[0]?.standby === true;
      this.#standbyChecked.set(client, standby);
    }
    if (standby) {
      this.#standbyChecked.delete(client); // ask again next time: it may have been promoted
      const error = new UnavailableError(
        'postgres',
        'the server is a hot standby (pg_is_in_recovery() is true): the global log cannot be read gap-safely there; point readers of the log (projectors, relays) at the primary',
      );
      this.#logger.error({ err: error }, 'refusing to read the global log on a standby');
      throw error;
    }
  }

  #withClient<T>(run: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    this.#assertOpen();
    return withConnection(this.#pool, COMPONENT, this.#windowMs, () => this.#closed, run);
  }

  #announce(position: number): void {
    this.#notifier.announce(position);
    this.#wake(position);
  }

  #wake(position: number): void {
    for (const listener of this.#listeners) {
      try {
        listener(position);
      } catch (error) {
        this.#logger.warn({ err: error }, 'an onAppended listener threw');
      }
    }
  }

  #toRecorded(row: EventRow, upcast = true): RecordedEvent {
    const event: RecordedEvent = {
      eventId: row.event_id,
      streamId: row.stream_id,
      streamVersion: row.stream_version,
      position: row.position,
      type: row.type,
      schemaVersion: row.schema_version,
      data: row.data,
      metadata: row.metadata,
      recordedAt: new Date(row.recorded_at),
    };
    return upcast ? this.#upcasters.upcast(event) : event;
  }

  #assertOpen(): void {
    if (this.#closed) throw new ClosedError(COMPONENT);
  }
}
