/**
 * Physical versions of projections: which one a runner builds, how a rebuild starts one beside
 * the active one, and how retired ones are dropped.
 *
 * Each physical version has its own tables (`<table>_v<version>`). Exactly one version of a
 * projection is `active` (queries read it); others are `building` (catching up, to take over)
 * or `retired` (replaced; dropped after a grace period, so queries already running finish).
 */
import type {
  ProjectionDefinition,
  ProjectionSink,
  ProjectionState,
  SqlExecutor,
} from '../core/index.ts';
import {
  ledger,
  physicalTables,
  projectionContext,
  type FeedKind,
  type ProjectionRow,
} from './ledger.ts';

async function registerVersion(
  sql: SqlExecutor,
  definition: ProjectionDefinition,
  state: ProjectionState,
  feed: FeedKind,
): Promise<ProjectionRow> {
  const version = await ledger.nextVersion(sql, definition.name);
  await ledger.register(sql, {
    name: definition.name,
    version,
    codeVersion: definition.version,
    state,
    feed,
    tables: physicalTables(definition, version),
  });
  await definition.init(projectionContext(definition, version, sql));
  return (await ledger.projection(sql, definition.name, version))!;
}

/**
 * The versions this code should run on `feed`: those built by the definition's code version
 * and fed by that feed, that are not retired. When there is none, registers one (and creates
 * its tables): `active` if the projection has no active version yet, `building` beside the
 * active one otherwise. So a service moved from one feed to the other (embedded to Kafka, say)
 * builds its read models anew beside the old ones instead of continuing from a checkpoint of
 * another feed. Returns none when a newer code version is already deployed (this process is
 * the old one).
 */
export async function versionsToRun(
  sink: ProjectionSink,
  definition: ProjectionDefinition,
  feed: FeedKind,
): Promise<ProjectionRow[]> {
  return sink.transaction(async (sql) => {
    const rows = await ledger.projections(sql, definition.name);
    const mine = rows.filter(
      (r) => r.codeVersion === definition.version && r.state !== 'retired' && r.feed === feed,
    );
    if (mine.length > 0) return mine;
    if (rows.some((r) => r.codeVersion > definition.version && r.state !== 'retired')) return [];
    const state: ProjectionState = rows.some((r) => r.state === 'active') ? 'building' : 'active';
    return [await registerVersion(sql, definition, state, feed)];
  });
}

/** Starts a rebuild: a new `building` version beside the active one, from an empty state. */
export async function registerRebuild(
  sink: ProjectionSink,
  definition: ProjectionDefinition,
  feed: FeedKind,
): Promise<ProjectionRow> {
  return sink.transaction(async (sql) => {
    const rows = await ledger.projections(sql, definition.name);
    const state: ProjectionState = rows.some((r) => r.state === 'active') ? 'building' : 'active';
    return registerVersion(sql, definition, state, feed);
  });
}

/** Drops the tables of versions retired more than `graceMs` ago, and forgets them. */
export async function dropRetired(
  sink: ProjectionSink,
  name: string,
  graceMs: number,
): Promise<number[]> {
  const rows = await ledger.projections(sink, name);
  const due = rows.filter(
    (r) => r.state === 'retired' && Date.now() - r.updatedAt.getTime() >= graceMs,
  );
  if (due.length === 0) return [];
  await sink.transaction(async (sql) => {
    for (const row of due) {
      for (const table of row.tables) await sql.execute(`DROP TABLE IF EXISTS ${table}`);
      await ledger.forget(sql, row.name, row.version);
    }
  });
  return due.map((r) => r.version);
}

/**
 * Drops every version of a projection (tables, checkpoints, parked events): the next runner
 * starts it from scratch. For development and disaster recovery; queries fail until it is
 * rebuilt.
 */
export async function resetProjection(sink: ProjectionSink, name: string): Promise<number[]> {
  return sink.transaction(async (sql) => {
    const rows = await ledger.projections(sql, name);
    for (const row of rows) {
      for (const table of row.tables) await sql.execute(`DROP TABLE IF EXISTS ${table}`);
      await ledger.forget(sql, row.name, row.version);
    }
    return rows.map((r) => r.version);
  });
}
