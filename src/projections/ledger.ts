/**
 * The projection ledger: the bookkeeping tables every read-model database has beside its read
 * models. Written in SQL both SQLite and PostgreSQL accept, and always used inside the same
 * transaction as the read-model change it records.
 */
import type { Migration, ProjectionState, RecordedEvent, SqlExecutor } from '../core/index.ts';

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
];

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
  error: string;
  attempts: number;
  parkedAt: Date;
}

interface RawProjectionRow {
  name: string;
  version: number | string;
  code_version: number | string;
  state: string;
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
  'SELECT name, version, code_version, state, position, tables, created_at, updated_at, activated_at FROM tm_projections';

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
    const [row] = await sql.query<{ version: number | string }>(
      `SELECT version FROM tm_projections WHERE name = $1 AND state = 'active'`,
      [name],
    );
    return row ? Number(row.version) : undefined;
  },

  async register(
    sql: SqlExecutor,
    row: {
      name: string;
      version: number;
      codeVersion: number;
      state: ProjectionState;
      tables: string[];
    },
  ): Promise<void> {
    const now = Date.now();
    await sql.execute(
      `INSERT INTO tm_projections
         (name, version, code_version, state, position, tables, created_at, updated_at, activated_at)
       VALUES ($1, $2, $3, $4, 0, $5, $6, $6, $7)`,
      [
        row.name,
        row.version,
        row.codeVersion,
        row.state,
        JSON.stringify(row.tables),
        now,
        row.state === 'active' ? now : null,
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

  async streamVersion(
    sql: SqlExecutor,
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

  async isStreamParked(
    sql: SqlExecutor,
    name: string,
    version: number,
    streamId: string,
  ): Promise<boolean> {
    const rows = await sql.query(
      'SELECT 1 AS one FROM tm_parked WHERE name = $1 AND version = $2 AND stream_id = $3 LIMIT 1',
      [name, version, streamId],
    );
    return rows.length > 0;
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
  ) {
    await sql.execute(
      `INSERT INTO tm_parked (name, version, event_id, stream_id, stream_version, position, event, error, attempts, parked_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
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
      ],
    );
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
      `SELECT name, version, event, error, attempts, parked_at FROM tm_parked
       ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY name, version, stream_id, stream_version LIMIT ${limit}`,
      params,
    );
    return rows.map((r) => ({
      projection: r.name,
      version: Number(r.version),
      event: eventFromJson(r.event),
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
