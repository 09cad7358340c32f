/**
 * Physical versions of projections: which one a runner builds, how a rebuild starts one beside
 * the active one, and how retired ones are dropped.
 *
 * Each physical version has its own tables (`<table>_v<version>`). Exactly one version of a
 * projection is `active` (queries read it); others are `building` (catching up, to take over)
 * or `retired` (replaced; dropped after a grace period, so queries already running finish).
 */
import {
  InvalidArgumentError,
  type ProjectionDefinition,
  type ProjectionSink,
  type ProjectionState,
  type SqlExecutor,
} from '../core/index.ts';
import { ledger, type ProjectionRow } from './ledger.ts';

export const physicalTables = (definition: ProjectionDefinition, version: number) =>
  definition.tables.map((table) => `${table}_v${version}`);

function contextFor(definition: ProjectionDefinition, version: number, sql: SqlExecutor) {
  return {
    sql,
    table(logical: string) {
      if (!definition.tables.includes(logical)) {
        throw new InvalidArgumentError(
          'table',
          `'${logical}' is not one of ${definition.name}'s tables`,
        );
      }
      return `${logical}_v${version}`;
    },
  };
}

async function registerVersion(
  sql: SqlExecutor,
  definition: ProjectionDefinition,
  state: ProjectionState,
): Promise<ProjectionRow> {
  const version = await ledger.nextVersion(sql, definition.name);
  await ledger.register(sql, {
    name: definition.name,
    version,
    codeVersion: definition.version,
    state,
    tables: physicalTables(definition, version),
  });
  await definition.init(contextFor(definition, version, sql));
  return (await ledger.projection(sql, definition.name, version))!;
}

/**
 * The versions this code should run: those built by the definition's code version that are not
 * retired. When there is none, registers one (and creates its tables): `active` if the
 * projection has no active version yet, `building` beside the active one otherwise. Returns
 * none when a newer code version is already deployed (this process is the old one).
 */
export async function versionsToRun(
  sink: ProjectionSink,
  definition: ProjectionDefinition,
): Promise<ProjectionRow[]> {
  return sink.transaction(async (sql) => {
    const rows = await ledger.projections(sql, definition.name);
    const mine = rows.filter((r) => r.codeVersion === definition.version && r.state !== 'retired');
    if (mine.length > 0) return mine;
    if (rows.some((r) => r.codeVersion > definition.version && r.state !== 'retired')) return [];
    const state: ProjectionState = rows.some((r) => r.state === 'active') ? 'building' : 'active';
    return [await registerVersion(sql, definition, state)];
  });
}

/** Starts a rebuild: a new `building` version beside the active one, from an empty state. */
export async function registerRebuild(
  sink: ProjectionSink,
  definition: ProjectionDefinition,
): Promise<ProjectionRow> {
  return sink.transaction(async (sql) => {
    const rows = await ledger.projections(sql, definition.name);
    const state: ProjectionState = rows.some((r) => r.state === 'active') ? 'building' : 'active';
    return registerVersion(sql, definition, state);
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
