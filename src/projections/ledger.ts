/**
 * The projection ledger: the bookkeeping tables every read-model database has beside its read
 * models. Written in SQL both SQLite and PostgreSQL accept, and always used inside the same
 * transaction as the read-model change it records.
 */
import {
  InvalidArgumentError,
  type Migration,
  type ProjectionContext,
  type ProjectionDefinition,
  type ProjectionState,
  type RecordedEvent,
  type SqlExecutor,
} from '../core/index.ts';

/**
 * Where a physical version's events come from: the store's global log (`store`, its checkpoint
 * a log position) or the partitions of a Kafka consumer group (`kafka`, its checkpoint the
 * partitions' offsets plus each stream's applied version). Fixed when the version is
 * registered: a checkpoint of one feed means nothing to the other.
 */
export type FeedKind = 'store' | 'kafka';

export const ledgerMigrations: readonly Migration[] = [
  {
    version: 1,
    description: 'projection versions, checkpoints, Kafka offsets, stream versions, parked events',
    sql: `
      CREATE TABLE tm_projections (
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        state TEXT NOT NULL,
        position BIGINT NOT NULL,
        tables TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        activated_at BIGINT,
        PRIMARY KEY (name, version)
      );
      CREATE TABLE tm_projection_offsets (
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        topic TEXT NOT NULL,
        kafka_partition INTEGER NOT NULL,
        next_offset BIGINT NOT NULL,
        PRIMARY KEY (name, version, topic, kafka_partition)
      );
      CREATE TABLE tm_projection_streams (
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        stream_id TEXT NOT NULL,
        stream_version BIGINT NOT NULL,
        PRIMARY KEY (name, version, stream_id)
      );
      CREATE TABLE tm_parked (
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        event_id TEXT NOT NULL,
        stream_id TEXT NOT NULL,
        stream_version BIGINT NOT NULL,
        position BIGINT NOT NULL,
        event TEXT NOT NULL,
        error TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        parked_at BIGINT NOT NULL,
        PRIMARY KEY (name, version, event_id)
      );
      CREATE INDEX tm_parked_stream ON tm_parked (name, version, stream_id, stream_version);
    `,
  },
  {
    version: 2,
    description: 'physical versions: which code version each physical version was built by',
    sql: `
      ALTER TABLE tm_projections ADD COLUMN code_version INTEGER NOT NULL DEFAULT 0;
      UPDATE tm_projections SET code_version = version;
    `,
  },
  {
    version: 3,
    description: 'each physical version records the feed that builds it (store log or Kafka)',
    sql: `
      ALTER TABLE tm_projections ADD COLUMN feed TEXT NOT NULL DEFAULT 'store';
      UPDATE tm_projections SET feed = 'kafka' WHERE EXISTS (
        SELECT 1 FROM tm_projection_offsets o
        WHERE o.name = tm_projections.name AND o.version = tm_projections.version);
    `,
  },
  {
    version: 4,
    description: 'why each event is parked (failed, held, gap, invalid, foreign)',
    sql: `
      ALTER TABLE tm_parked ADD COLUMN reason TEXT NOT NULL DEFAULT 'failed';
      UPDATE tm_parked SET reason = 'held' WHERE attempts = 0;
    `,
  },
];

/**
 * Why an event is parked:
 * - `failed`: its handler (or its upcaster) failed after the retries;
 * - `held`: it waits behind an earlier parked event of its stream (per-stream order);
 * - `gap`: it came before its stream's next version (a version is missing): the stream is held
 *   until the missing version arrives (then they apply in order) or an operator acts;
 * - `invalid`: a Kafka record that is not a Tidemark event;
 * - `foreign`: a Kafka record from a producer that is not one of the application's relays.
 */
export type ParkReason = 'failed' | 'held' | 'gap' | 'invalid' | 'foreign';

/** The physical name of a projection table in a physical version: the one naming rule. */
export function physicalTable(table: string, version: number): string {
  return `${table}_v${version}`;
}

/** The physical tables of a version of a projection. */
export function physicalTables(
  definition: Pick<ProjectionDefinition, 'tables'>,
  version: number,
): string[] {
  return definition.tables.map((table) => physicalTable(table, version));
}

/** What `init` and `apply` of a physical version get: the transaction and its table names. */
export function projectionContext(
  definition: Pick<ProjectionDefinition, 'tables' | 'name'>,
  version: number,
  sql: SqlExecutor,
): ProjectionContext {
  const tables = new Map(definition.tables.map((t) => [t, physicalTable(t, version)]));
  return {
    sql,
    table(logical: string) {
      const physical = tables.get(logical);
      if (physical === undefined) {
        throw new InvalidArgumentError(
          'table',
          `'${logical}' is not one of ${definition.name}'s tables`,
        );
      }
      return physical;
    },
  };
}

/** A Kafka partition's key in offset maps (`topic NUL partition`). */
export const partitionKey = (topic: string, partition: number) => `${topic}\u0000${partition}`;

/** Streams per statement when stream versions are read or written in bulk. */
const STREAMS_PER_STATEMENT = 200;

/**
 * One physical version of a projection: its own tables (`<table>_v<version>`), checkpoint and
 * parked events. `codeVersion` is the definition's `version` that builds it: a code change makes
 * a new physical version, and so does a rebuild of unchanged code.
 */
export interface ProjectionRow {
  name: string;
  version: number;
  codeVersion: number;
  state: ProjectionState;
  /** The feed that builds it. */
  feed: FeedKind;
  /** Store-fed: the last log position applied (Kafka-fed versions keep offsets instead; 0). */
  position: number;
  tables: string[];
  createdAt: Date;
  updatedAt: Date;
  activatedAt: Date | undefined;
}

/** A parked event: failed (the first of its stream) or held behind one that failed. */
export interface ParkedEvent {
  projection: string;
  version: number;
  event: RecordedEvent;
  reason: ParkReason;
  error: string;
  attempts: number;
  parkedAt: Date;
}

interface RawProjectionRow {
  name: string;
  version: number | string;
  code_version: number | string;
  state: string;
  feed: string;
  position: number | string;
  tables: string;
  created_at: number | string;
  updated_at: number | string;
  activated_at: number | string | null;
}

interface RawParkedRow {
  name: string;
  version: number | string;
  event: string;
  reason: string;
  error: string;
  attempts: number | string;
  parked_at: number | string;
}

function toProjectionRow(row: RawProjectionRow): ProjectionRow {
  return {
    name: row.name,
    version: Number(row.version),
    codeVersion: Number(row.code_version),
    state: row.state as ProjectionState,
    feed: row.feed as FeedKind,
    position: Number(row.position),
    tables: JSON.parse(row.tables) as string[],
    createdAt: new Date(Number(row.created_at)),
    updatedAt: new Date(Number(row.updated_at)),
    activatedAt: row.activated_at == null ? undefined : new Date(Number(row.activated_at)),
  };
}

/** Events as stored in the ledger (JSON text); dates travel as ISO strings. */
export function eventToJson(event: RecordedEvent): string {
  return JSON.stringify(event);
}

export function eventFromJson(text: string): RecordedEvent {
  const raw = JSON.parse(text) as RecordedEvent & { recordedAt: string };
  return { ...raw, recordedAt: new Date(raw.recordedAt) } as RecordedEvent;
}

const SELECT_PROJECTION =
  'SELECT name, version, code_version, state, feed, position, tables, created_at, updated_at, activated_at FROM tm_projections';

/** Ledger reads and writes, each taking the executor of the transaction it belongs to. */
export const ledger = {
  async projections(sql: Pick<SqlExecutor, 'query'>, name?: string): Promise<ProjectionRow[]> {
    const rows =
      name === undefined
        ? await sql.query<RawProjectionRow>(`${SELECT_PROJECTION} ORDER BY name, version`)
        : await sql.query<RawProjectionRow>(
            `${SELECT_PROJECTION} WHERE name = $1 ORDER BY version`,
            [name],
          );
    return rows.map(toProjectionRow);
  },

  async projection(
    sql: Pick<SqlExecutor, 'query'>,
    name: string,
    version: number,
  ): Promise<ProjectionRow | undefined> {
    const [row] = await sql.query<RawProjectionRow>(
      `${SELECT_PROJECTION} WHERE name = $1 AND version = $2`,
      [name, version],
    );
    return row ? toProjectionRow(row) : undefined;
  },

  async activeVersion(sql: Pick<SqlExecutor, 'query'>, name: string): Promise<number | undefined> {
    return (await ledger.active(sql, name))?.version;
  },

  /** The active version of a projection and the feed that builds it. */
  async active(
    sql: Pick<SqlExecutor, 'query'>,
    name: string,
  ): Promise<{ version: number; feed: FeedKind } | undefined> {
    const [row] = await sql.query<{ version: number | string; feed: string }>(
      `SELECT version, feed FROM tm_projections WHERE name = $1 AND state = 'active'`,
      [name],
    );
    return row ? { version: Number(row.version), feed: row.feed as FeedKind } : undefined;
  },

  /** The state of a version, or undefined when it is gone (dropped). */
  async state(
    sql: Pick<SqlExecutor, 'query'>,
    name: string,
    version: number,
  ): Promise<ProjectionState | undefined> {
    const [row] = await sql.query<{ state: string }>(
      'SELECT state FROM tm_projections WHERE name = $1 AND version = $2',
      [name, version],
    );
    return row?.state as ProjectionState | undefined;
  },

  /**
   * The version's state and the applied version of each of `streamIds` (absent: none applied),
   * in one statement: what a Kafka-fed batch reads before its handlers run (PostgreSQL).
   */
  async stateAndStreamVersions(
    sql: Pick<SqlExecutor, 'query'>,
    name: string,
    version: number,
    streamIds: readonly string[],
  ): Promise<{ state: ProjectionState | undefined; applied: Map<string, number> }> {
    const [row] = await sql.query<{ state: string | null; versions: (number | string)[] }>(
      `SELECT (SELECT state FROM tm_projections WHERE name = $1 AND version = $2) AS state,
              ARRAY(SELECT coalesce((SELECT stream_version FROM tm_projection_streams
                                     WHERE name = $1 AND version = $2 AND stream_id = i.id), 0)
                    FROM unnest($3::text[]) WITH ORDINALITY AS i(id, n) ORDER BY i.n) AS versions`,
      [name, version, streamIds],
    );
    const applied = new Map<string, number>();
    const versions = row?.versions ?? [];
    for (let i = 0; i < streamIds.length; i++) {
      const applies = Number(versions[i] ?? 0);
      if (applies > 0) applied.set(streamIds[i]!, applies);
    }
    return { state: (row?.state ?? undefined) as ProjectionState | undefined, applied };
  },

  async register(
    sql: SqlExecutor,
    row: {
      name: string;
      version: number;
      codeVersion: number;
      state: ProjectionState;
      feed: FeedKind;
      tables: string[];
    },
  ): Promise<void> {
    const now = Date.now();
    await sql.execute(
      `INSERT INTO tm_projections
         (name, version, code_version, state, feed, position, tables, created_at, updated_at, activated_at)
       VALUES ($1, $2, $3, $4, $8, 0, $5, $6, $6, $7)`,
      [
        row.name,
        row.version,
        row.codeVersion,
        row.state,
        JSON.stringify(row.tables),
        now,
        row.state === 'active' ? now : null,
        row.feed,
      ],
    );
  },

  /** The next free physical version of a projection. */
  async nextVersion(sql: Pick<SqlExecutor, 'query'>, name: string): Promise<number> {
    const [row] = await sql.query<{ v: number | string | null }>(
      'SELECT max(version) AS v FROM tm_projections WHERE name = $1',
      [name],
    );
    return Number(row?.v ?? 0) + 1;
  },

  /** Forgets a retired version after its tables are dropped. */
  async forget(sql: SqlExecutor, name: string, version: number): Promise<void> {
    for (const table of [
      'tm_projection_streams',
      'tm_projection_offsets',
      'tm_parked',
      'tm_projections',
    ]) {
      await sql.execute(`DELETE FROM ${table} WHERE name = $1 AND version = $2`, [name, version]);
    }
  },

  /**
   * Claims a batch: true when the version is not retired and its checkpoint is still at
   * `position`. On PostgreSQL the update also locks the row until the transaction ends, so two
   * runners of one version take turns instead of both doing the work.
   */
  async claimBatch(
    sql: SqlExecutor,
    name: string,
    version: number,
    position: number,
  ): Promise<boolean> {
    if (sql.dialect === 'sqlite') {
      // A SQLite write transaction already excludes every other writer: a read is enough.
      const rows = await sql.query(
        `SELECT 1 AS ok FROM tm_projections
         WHERE name = $1 AND version = $2 AND position = $3 AND state <> 'retired'`,
        [name, version, position],
      );
      return rows.length === 1;
    }
    const { rowCount } = await sql.execute(
      `UPDATE tm_projections SET updated_at = $4
       WHERE name = $1 AND version = $2 AND position = $3 AND state <> 'retired'`,
      [name, version, position, Date.now()],
    );
    return rowCount === 1;
  },

  /**
   * Takes the version's row for this transaction (false when the version is gone or retired):
   * transactions that claim it run one after another, so a read made after the claim sees what
   * the one before committed. For work whose checkpoint is not a compare-and-set (the Kafka
   * feed's fill from the store, where per-stream versions are the only progress).
   */
  async claimExclusive(sql: SqlExecutor, name: string, version: number): Promise<boolean> {
    if (sql.dialect === 'sqlite') {
      // A SQLite write transaction already excludes every other writer: a read is enough.
      const rows = await sql.query(
        `SELECT 1 AS ok FROM tm_projections WHERE name = $1 AND version = $2 AND state <> 'retired'`,
        [name, version],
      );
      return rows.length === 1;
    }
    const { rowCount } = await sql.execute(
      `UPDATE tm_projections SET updated_at = $3
       WHERE name = $1 AND version = $2 AND state <> 'retired'`,
      [name, version, Date.now()],
    );
    return rowCount === 1;
  },

  /** Moves the checkpoint from `from` to `to`; false when it was not at `from` (another runner). */
  async advancePosition(
    sql: SqlExecutor,
    name: string,
    version: number,
    from: number,
    to: number,
  ): Promise<boolean> {
    const { rowCount } = await sql.execute(
      `UPDATE tm_projections SET position = $4, updated_at = $5
       WHERE name = $1 AND version = $2 AND position = $3 AND state <> 'retired'`,
      [name, version, from, to, Date.now()],
    );
    return rowCount === 1;
  },

  /** Makes `version` the active one and retires the others, in the caller's transaction. */
  async activate(sql: SqlExecutor, name: string, version: number): Promise<ProjectionRow[]> {
    const retired = (await ledger.projections(sql, name)).filter(
      (p) => p.state === 'active' && p.version !== version,
    );
    const now = Date.now();
    await sql.execute(
      `UPDATE tm_projections SET state = 'retired', updated_at = $3 WHERE name = $1 AND version <> $2 AND state = 'active'`,
      [name, version, now],
    );
    await sql.execute(
      `UPDATE tm_projections SET state = 'active', activated_at = $3, updated_at = $3 WHERE name = $1 AND version = $2`,
      [name, version, now],
    );
    return retired;
  },

  /** The stored next offset of every partition of a Kafka-fed version, by {@link partitionKey}. */
  async offsets(
    sql: Pick<SqlExecutor, 'query'>,
    name: string,
    version: number,
  ): Promise<Map<string, bigint>> {
    const rows = await sql.query<{ topic: string; kafka_partition: number; next_offset: unknown }>(
      `SELECT topic, kafka_partition, next_offset FROM tm_projection_offsets
       WHERE name = $1 AND version = $2`,
      [name, version],
    );
    const offsets = new Map<string, bigint>();
    for (const row of rows) {
      offsets.set(
        partitionKey(row.topic, Number(row.kafka_partition)),
        BigInt(String(row.next_offset)),
      );
    }
    return offsets;
  },

  /**
   * Moves one partition's stored offset to `to` if it still holds `expected` (compare-and-set;
   * `null`: no row yet, so insert one). False when another runner moved it first.
   */
  async moveOffset(
    sql: SqlExecutor,
    name: string,
    version: number,
    topic: string,
    partition: number,
    expected: bigint | null,
    to: bigint,
  ): Promise<boolean> {
    const { rowCount } =
      expected === null
        ? await sql.execute(
            `INSERT INTO tm_projection_offsets (name, version, topic, kafka_partition, next_offset)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name, version, topic, kafka_partition) DO NOTHING`,
            [name, version, topic, partition, to],
          )
        : await sql.execute(
            `UPDATE tm_projection_offsets SET next_offset = $5
             WHERE name = $1 AND version = $2 AND topic = $3 AND kafka_partition = $4 AND next_offset = $6`,
            [name, version, topic, partition, to, expected],
          );
    return rowCount === 1;
  },

  /**
   * Compare-and-set of several stored rows in one statement (the common case of a poll): true
   * only when every row still held its expected offset (the caller then rolls back otherwise).
   * `streamVersions`, when given, are saved too (see {@link ledger.saveStreamVersions}): on
   * PostgreSQL by the same statement, so a Kafka-fed batch stores its progress in one round trip.
   */
  async moveOffsets(
    sql: SqlExecutor,
    name: string,
    version: number,
    moves: readonly { topic: string; partition: number; expected: bigint; to: bigint }[],
    streamVersions?: ReadonlyMap<string, number>,
  ): Promise<boolean> {
    if (streamVersions !== undefined && streamVersions.size > 0) {
      if (sql.dialect === 'postgres' && moves.length > 0) {
        const streams = [...streamVersions];
        // A data-modifying WITH runs to completion whether or not the UPDATE reads it.
        const { rowCount } = await sql.execute(
          `WITH saved AS (
             INSERT INTO tm_projection_streams (name, version, stream_id, stream_version)
             SELECT $1::text, $2::int4, s.id, s.v FROM unnest($3::text[], $4::int8[]) AS s(id, v)
             ON CONFLICT (name, version, stream_id) DO UPDATE SET stream_version = excluded.stream_version
           )
           UPDATE tm_projection_offsets SET next_offset = m.next_offset
           FROM unnest($5::text[], $6::int4[], $7::int8[], $8::int8[])
             AS m(topic, kafka_partition, next_offset, expected)
           WHERE tm_projection_offsets.name = $1 AND tm_projection_offsets.version = $2
             AND tm_projection_offsets.topic = m.topic
             AND tm_projection_offsets.kafka_partition = m.kafka_partition
             AND tm_projection_offsets.next_offset = m.expected`,
          [
            name,
            version,
            streams.map(([id]) => id),
            streams.map(([, v]) => v),
            moves.map((m) => m.topic),
            moves.map((m) => m.partition),
            moves.map((m) => String(m.to)),
            moves.map((m) => String(m.expected)),
          ],
        );
        return rowCount === moves.length;
      }
      await ledger.saveStreamVersions(sql, name, version, streamVersions);
    }
    if (moves.length === 0) return true;
    if (moves.length === 1) {
      const [m] = moves;
      return ledger.moveOffset(sql, name, version, m!.topic, m!.partition, m!.expected, m!.to);
    }
    const values: unknown[] = [name, version];
    const rows = moves.map(({ topic, partition, to, expected }) => {
      const n = values.length;
      values.push(topic, partition, to, expected);
      return `(CAST($${n + 1} AS TEXT), CAST($${n + 2} AS INTEGER), CAST($${n + 3} AS BIGINT), CAST($${n + 4} AS BIGINT))`;
    });
    // VALUES columns are column1..column4 in both PostgreSQL and SQLite.
    const { rowCount } = await sql.execute(
      `UPDATE tm_projection_offsets SET next_offset = m.column3
       FROM (VALUES ${rows.join(', ')}) AS m
       WHERE tm_projection_offsets.name = $1 AND tm_projection_offsets.version = $2
         AND tm_projection_offsets.topic = m.column1
         AND tm_projection_offsets.kafka_partition = m.column2
         AND tm_projection_offsets.next_offset = m.column4`,
      values,
    );
    return rowCount === moves.length;
  },

  /** The applied version of each of `streamIds` (absent: none applied), in a few statements. */
  async streamVersions(
    sql: Pick<SqlExecutor, 'query' | 'dialect'>,
    name: string,
    version: number,
    streamIds: readonly string[],
  ): Promise<Map<string, number>> {
    const applied = new Map<string, number>();
    if (streamIds.length === 0) return applied;
    if (sql.dialect === 'postgres') {
      // One probe of the key per stream, whatever the planner believes. With `stream_id IN
      // ($3, …)` the plan cached for the prepared statement of a table not analyzed yet (a new
      // version catching up) checked the list against every row of the version: a cost that grew
      // with the streams seen, batch after batch. The array is one parameter, so any number of
      // streams is one statement.
      const rows = await sql.query<{ stream_id: string; stream_version: number | string | null }>(
        `SELECT i.id AS stream_id,
                (SELECT stream_version FROM tm_projection_streams
                 WHERE name = $1 AND version = $2 AND stream_id = i.id) AS stream_version
         FROM unnest($3::text[]) AS i(id)`,
        [name, version, streamIds],
      );
      for (const row of rows) {
        if (row.stream_version !== null) applied.set(row.stream_id, Number(row.stream_version));
      }
      return applied;
    }
    for (let i = 0; i < streamIds.length; i += STREAMS_PER_STATEMENT) {
      const chunk = streamIds.slice(i, i + STREAMS_PER_STATEMENT);
      const rows = await sql.query<{ stream_id: string; stream_version: number | string }>(
        `SELECT stream_id, stream_version FROM tm_projection_streams
         WHERE name = $1 AND version = $2 AND stream_id IN (${chunk.map((_, j) => `$${j + 3}`).join(', ')})`,
        [name, version, ...chunk],
      );
      for (const row of rows) applied.set(row.stream_id, Number(row.stream_version));
    }
    return applied;
  },

  /** Records the applied version of several streams, in a few statements. */
  async saveStreamVersions(
    sql: SqlExecutor,
    name: string,
    version: number,
    versions: ReadonlyMap<string, number>,
  ): Promise<void> {
    const entries = [...versions];
    if (entries.length === 0) return;
    if (sql.dialect === 'postgres') {
      // One statement for the whole batch: the streams and their versions as two arrays.
      await sql.execute(
        `INSERT INTO tm_projection_streams (name, version, stream_id, stream_version)
         SELECT $1::text, $2::int4, s.id, s.v FROM unnest($3::text[], $4::int8[]) AS s(id, v)
         ON CONFLICT (name, version, stream_id) DO UPDATE SET stream_version = excluded.stream_version`,
        [name, version, entries.map(([id]) => id), entries.map(([, v]) => v)],
      );
      return;
    }
    for (let i = 0; i < entries.length; i += STREAMS_PER_STATEMENT) {
      const chunk = entries.slice(i, i + STREAMS_PER_STATEMENT);
      const params: unknown[] = [name, version];
      const rows = chunk.map(([streamId, streamVersion]) => {
        params.push(streamId, streamVersion);
        return `($1, $2, $${params.length - 1}, $${params.length})`;
      });
      await sql.execute(
        `INSERT INTO tm_projection_streams (name, version, stream_id, stream_version) VALUES ${rows.join(', ')}
         ON CONFLICT (name, version, stream_id) DO UPDATE SET stream_version = excluded.stream_version`,
        params,
      );
    }
  },

  async streamVersion(
    sql: Pick<SqlExecutor, 'query'>,
    name: string,
    version: number,
    streamId: string,
  ): Promise<number> {
    const [row] = await sql.query<{ stream_version: number | string }>(
      'SELECT stream_version FROM tm_projection_streams WHERE name = $1 AND version = $2 AND stream_id = $3',
      [name, version, streamId],
    );
    return row ? Number(row.stream_version) : 0;
  },

  async saveStreamVersion(
    sql: SqlExecutor,
    name: string,
    version: number,
    streamId: string,
    streamVersion: number,
  ) {
    await sql.execute(
      `INSERT INTO tm_projection_streams (name, version, stream_id, stream_version) VALUES ($1, $2, $3, $4)
       ON CONFLICT (name, version, stream_id) DO UPDATE SET stream_version = excluded.stream_version`,
      [name, version, streamId, streamVersion],
    );
  },

  async parkedStreams(
    sql: Pick<SqlExecutor, 'query'>,
    name: string,
    version: number,
  ): Promise<string[]> {
    const rows = await sql.query<{ stream_id: string }>(
      'SELECT DISTINCT stream_id FROM tm_parked WHERE name = $1 AND version = $2',
      [name, version],
    );
    return rows.map((r) => r.stream_id);
  },

  async park(
    sql: SqlExecutor,
    name: string,
    version: number,
    event: RecordedEvent,
    error: string,
    attempts: number,
    reason: ParkReason = attempts > 0 ? 'failed' : 'held',
  ) {
    await sql.execute(
      `INSERT INTO tm_parked (name, version, event_id, stream_id, stream_version, position, event, error, attempts, parked_at, reason)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
       ON CONFLICT (name, version, event_id) DO NOTHING`,
      [
        name,
        version,
        event.eventId,
        event.streamId,
        event.streamVersion,
        event.position,
        eventToJson(event),
        error,
        attempts,
        Date.now(),
        reason,
      ],
    );
  },

  async setParkReason(
    sql: SqlExecutor,
    name: string,
    version: number,
    eventId: string,
    reason: ParkReason,
  ): Promise<void> {
    await sql.execute(
      'UPDATE tm_parked SET reason = $4 WHERE name = $1 AND version = $2 AND event_id = $3',
      [name, version, eventId, reason],
    );
  },

  /** Why the first parked event of a stream is parked (what holds the stream), if any is. */
  async streamHold(
    sql: Pick<SqlExecutor, 'query'>,
    name: string,
    version: number,
    streamId: string,
  ): Promise<ParkReason | undefined> {
    const [row] = await sql.query<{ reason: string }>(
      `SELECT reason FROM tm_parked WHERE name = $1 AND version = $2 AND stream_id = $3
       ORDER BY stream_version LIMIT 1`,
      [name, version, streamId],
    );
    return row?.reason as ParkReason | undefined;
  },

  /** How many streams are held behind a gap (their first parked event came too early). */
  async gapCount(sql: Pick<SqlExecutor, 'query'>, name: string, version: number): Promise<number> {
    const [row] = await sql.query<{ n: number | string }>(
      `SELECT count(*) AS n FROM tm_parked p WHERE p.name = $1 AND p.version = $2 AND p.reason = 'gap'
       AND NOT EXISTS (SELECT 1 FROM tm_parked q WHERE q.name = p.name AND q.version = p.version
         AND q.stream_id = p.stream_id AND q.stream_version < p.stream_version)`,
      [name, version],
    );
    return Number(row?.n ?? 0);
  },

  async parked(
    sql: Pick<SqlExecutor, 'query'>,
    filter: { name?: string; version?: number; streamId?: string; limit?: number } = {},
  ): Promise<ParkedEvent[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.name !== undefined) where.push(`name = $${params.push(filter.name)}`);
    if (filter.version !== undefined) where.push(`version = $${params.push(filter.version)}`);
    if (filter.streamId !== undefined) where.push(`stream_id = $${params.push(filter.streamId)}`);
    const limit = `$${params.push(filter.limit ?? 1000)}`;
    const rows = await sql.query<RawParkedRow>(
      `SELECT name, version, event, reason, error, attempts, parked_at FROM tm_parked
       ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY name, version, stream_id, stream_version LIMIT ${limit}`,
      params,
    );
    return rows.map((r) => ({
      projection: r.name,
      version: Number(r.version),
      event: eventFromJson(r.event),
      reason: r.reason as ParkReason,
      error: r.error,
      attempts: Number(r.attempts),
      parkedAt: new Date(Number(r.parked_at)),
    }));
  },

  async unpark(sql: SqlExecutor, name: string, version: number, eventId: string): Promise<number> {
    const { rowCount } = await sql.execute(
      'DELETE FROM tm_parked WHERE name = $1 AND version = $2 AND event_id = $3',
      [name, version, eventId],
    );
    return rowCount;
  },

  async parkedCount(
    sql: Pick<SqlExecutor, 'query'>,
    name: string,
    version: number,
  ): Promise<number> {
    const [row] = await sql.query<{ n: number | string }>(
      'SELECT count(*) AS n FROM tm_parked WHERE name = $1 AND version = $2',
      [name, version],
    );
    return Number(row?.n ?? 0);
  },
};
