/**
 * Operations on projections, keyed by feed: status with a lag that is true for either feed,
 * rebuilds (from the store or from Kafka), dead-letter retries and skips, resets. The CLI, an
 * admin surface and tests call these; none of them needs a running service.
 */
import {
  InvalidArgumentError,
  silentLogger,
  type Logger,
  type ProjectionDefinition,
  type ProjectionSink,
  type PersonalDataReader,
  type Upcasters,
} from '../core/index.ts';
import { ProjectionApplier, abortableDelay } from './applier.ts';
import type { Feed, FeedKind, PartitionStatus } from './feed.ts';
import { ledger, ledgerMigrations, type ParkedEvent, type ProjectionRow } from './ledger.ts';
import { ProjectionRunner } from './runner.ts';
import { dropRetired, registerRebuild } from './versions.ts';

/** What operations work on: the read-model database, and the feeds the application has. */
export interface ProjectionOperations {
  sink: ProjectionSink;
  /** The feeds this process can reach (a Kafka feed only when Kafka is configured). */
  feeds: Partial<Record<FeedKind, Feed>>;
  /** The application's upcasters (parked retries apply events in the current schema). */
  upcasters?: Upcasters;
  /** Opens sealed personal fields of parked events on retry (the protecting store's reader). */
  personalData?: PersonalDataReader;
  logger?: Logger;
}

/** One physical version in {@link projectionStatus}. */
export interface VersionStatus {
  name: string;
  version: number;
  codeVersion: number;
  feed: FeedKind;
  state: ProjectionRow['state'];
  /** Store-fed: the last log position applied. */
  position: number;
  /** Store-fed: the store's head. */
  head?: number;
  /** Events (store) or records (Kafka) not applied yet; `null` when its feed is not reachable here. */
  lagEvents: number | null;
  lagSeconds: number | null;
  parked: number;
  /** Streams held behind a gap (a missing version). */
  gaps: number;
  /** Kafka-fed: per partition. */
  partitions?: PartitionStatus[];
  /** Why the lag is unknown, when it is. */
  note?: string;
}

/** Every physical version in the ledger, with its lag read from its own feed. */
export async function projectionStatus(ops: ProjectionOperations): Promise<VersionStatus[]> {
  await ops.sink.migrate('projections', ledgerMigrations);
  const rows = await ledger.projections(ops.sink);
  return Promise.all(
    rows.map(async (row): Promise<VersionStatus> => {
      const parked = await ledger.parkedCount(ops.sink, row.name, row.version);
      const gaps = parked === 0 ? 0 : await ledger.gapCount(ops.sink, row.name, row.version);
      const base = {
        name: row.name,
        version: row.version,
        codeVersion: row.codeVersion,
        feed: row.feed,
        state: row.state,
        position: row.position,
        parked,
        gaps,
      };
      const feed = ops.feeds[row.feed];
      if (!feed) {
        return {
          ...base,
          lagEvents: null,
          lagSeconds: null,
          note: `fed by ${row.feed}, which is not configured here${row.feed === 'kafka' ? ' (set KAFKA_BROKERS)' : ''}`,
        };
      }
      try {
        const lag = await feed.lagOf(ops.sink, row);
        return {
          ...base,
          ...(lag.head !== undefined ? { head: lag.head } : {}),
          lagEvents: lag.lagEvents,
          lagSeconds: Math.round(lag.lagSeconds * 10) / 10,
          ...(lag.partitions ? { partitions: lag.partitions } : {}),
        };
      } catch (error) {
        return {
          ...base,
          lagEvents: null,
          lagSeconds: null,
          note: `cannot read its feed: ${(error as Error).message}`,
        };
      }
    }),
  );
}

/** Progress of a rebuild: what is applied, of how much there is now. */
export interface RebuildProgress {
  done: number;
  total: number;
}

export interface RebuildOptions {
  definition: ProjectionDefinition;
  /** The feed to build from. Default: the feed of the active version (else the store). */
  from?: FeedKind;
  /** How long the old version's tables stay after the switch-over. Default 10 000 ms. */
  dropGraceMs?: number;
  /** Called about every `progressIntervalMs` (default 2000) while the version is built. */
  onProgress?: (progress: RebuildProgress) => void;
  progressIntervalMs?: number;
  /** Told once the new version is registered, before it is built. */
  onStarted?: (version: number, from: FeedKind) => void;
  /** Told when the rebuild has switched over and waits out the grace period. */
  onSwitchedOver?: (active: number) => void;
  /**
   * Stops the rebuild: before the switch-over it rejects (the new version stays `building`, and
   * a host on the same feed, or a later rebuild, goes on with it); during the grace period the
   * old version is left for a later drop (a host's reconcile, or the next rebuild).
   */
  signal?: AbortSignal;
}

export interface RebuildResult {
  projection: string;
  version: number;
  from: FeedKind;
  /** Events (store) or records (Kafka) applied. */
  events: number;
  /** From the start to the switch-over (the grace period not counted). */
  seconds: number;
  /** Versions dropped after the switch-over. */
  dropped: number[];
}

/**
 * Builds a new version of a projection beside the active one, from the start of a feed, then
 * switches over and, after the grace period, drops the old version. A service that runs the
 * projection on the same feed takes part in the build and runs the new version from then on.
 *
 * The new version must be fed by the active one's feed: a version built from the store has no
 * Kafka offsets to go on from (and one built from Kafka no log position), so a service on the
 * other feed would build it all over again. Refused with `InvalidArgumentError`.
 */
export async function rebuildProjection(
  ops: ProjectionOperations,
  options: RebuildOptions,
): Promise<RebuildResult> {
  const { definition } = options;
  const { sink } = ops;
  await sink.migrate('projections', ledgerMigrations);
  const active = await ledger.active(sink, definition.name);
  const from = options.from ?? active?.feed ?? 'store';
  if (active && active.feed !== from) {
    throw new InvalidArgumentError(
      'from',
      `${definition.name} v${active.version} is fed by ${active.feed}; a version built from ${from} could not go on from there (rebuild from ${active.feed})`,
    );
  }
  const feed = ops.feeds[from];
  if (!feed) {
    throw new InvalidArgumentError(
      'from',
      `a rebuild from ${from} needs ${from === 'kafka' ? 'Kafka (KAFKA_BROKERS and kafka.topics)' : 'the store'}`,
    );
  }
  const dropGraceMs = options.dropGraceMs ?? 10_000;
  const earlier = (await ledger.projections(sink, definition.name)).map((r) => r.version);
  const row = await registerRebuild(sink, definition, from);
  options.onStarted?.(row.version, from);
  const runner = new ProjectionRunner({
    projection: definition,
    sink,
    feed,
    version: row.version,
    dropGraceMs,
    ...(ops.upcasters ? { upcasters: ops.upcasters } : {}),
    ...(ops.logger ? { logger: ops.logger } : {}),
  });
  const started = Date.now();
  const progress = async (): Promise<RebuildProgress> => {
    const status = await runner.status();
    if (status.partitions) {
      let done = 0;
      let total = 0;
      for (const p of status.partitions) {
        done += p.offset;
        total += p.end;
      }
      return { done, total: Math.max(done, total) };
    }
    return { done: status.position, total: Math.max(status.position, status.head ?? 0) };
  };
  await runner.start();
  let ticker: NodeJS.Timeout | undefined;
  // Stopping the runner ends its wait for the catch-up (with false): the rebuild rejects.
  const abort = () => void runner.stop();
  options.signal?.addEventListener('abort', abort, { once: true });
  try {
    if (options.signal?.aborted) abort();
    if (options.onProgress) {
      const report = options.onProgress;
      ticker = setInterval(
        () => void progress().then(report, () => {}),
        options.progressIntervalMs ?? 2000,
      );
    }
    const caughtUp = await runner.whenCaughtUp();
    if (ticker) clearInterval(ticker);
    ticker = undefined;
    const last = await progress();
    options.onProgress?.(last);
    if (!caughtUp) {
      throw new Error(
        `the rebuild of ${definition.name} v${row.version} stopped before it caught up${
          runner.lastError ? `: ${(runner.lastError as Error).message}` : ''
        }`,
      );
    }
    const seconds = (Date.now() - started) / 1000;
    const now = await ledger.activeVersion(sink, definition.name);
    options.onSwitchedOver?.(now ?? row.version);
    // Queries that started on the old version get the grace period to finish.
    await abortableDelay(dropGraceMs, options.signal);
    if (!options.signal?.aborted) await dropRetired(sink, definition.name, dropGraceMs);
    const left = new Set((await ledger.projections(sink, definition.name)).map((r) => r.version));
    return {
      projection: definition.name,
      version: row.version,
      from,
      events: last.done,
      seconds,
      dropped: earlier.filter((v) => !left.has(v)),
    };
  } finally {
    options.signal?.removeEventListener('abort', abort);
    if (ticker) clearInterval(ticker);
    await runner.stop();
  }
}

/** Parked (dead-letter) events, oldest stream version first per stream. */
export async function listParked(
  ops: Pick<ProjectionOperations, 'sink'>,
  filter: { name?: string; version?: number; streamId?: string; limit?: number } = {},
): Promise<ParkedEvent[]> {
  await ops.sink.migrate('projections', ledgerMigrations);
  return ledger.parked(ops.sink, filter);
}

/** The versions of `name` with parked events matching the filter. */
async function parkedVersions(
  sink: ProjectionSink,
  name: string,
  filter: { streamId?: string; eventId?: string },
): Promise<ProjectionRow[]> {
  const parked = await ledger.parked(sink, {
    name,
    ...(filter.streamId ? { streamId: filter.streamId } : {}),
    limit: 100_000,
  });
  const matching = filter.eventId
    ? parked.filter((p) => p.event.eventId === filter.eventId)
    : parked;
  const versions = new Set(matching.map((p) => p.version));
  return (await ledger.projections(sink, name)).filter((r) => versions.has(r.version));
}

/**
 * Applies a stream's parked events, in order, to every version of the projection that has
 * some, and unparks them: all or nothing per version (if one still fails, they stay parked and
 * the error is thrown). No feed is read: only the parked events are applied, with the dedupe
 * rule of the version's own feed. Resolves with how many were applied; 0 when none were parked.
 */
export async function retryParked(
  ops: ProjectionOperations,
  definition: ProjectionDefinition,
  streamId: string,
): Promise<number> {
  await ops.sink.migrate('projections', ledgerMigrations);
  let applied = 0;
  for (const row of await parkedVersions(ops.sink, definition.name, { streamId })) {
    const applier = new ProjectionApplier({
      definition,
      version: row.version,
      sink: ops.sink,
      dedupeByStream: row.feed === 'kafka',
      logger: ops.logger ?? silentLogger,
      ...(ops.upcasters ? { upcasters: ops.upcasters } : {}),
      ...(ops.personalData ? { personalData: ops.personalData } : {}),
    });
    applied += await applier.retryParked(streamId);
  }
  return applied;
}

/**
 * Drops one parked event without applying it, in every version that has it. The stream stays
 * parked while others remain (retry it to apply those). Resolves with the versions it was
 * dropped from (none: no such parked event).
 */
export async function skipParked(
  ops: Pick<ProjectionOperations, 'sink'>,
  name: string,
  eventId: string,
): Promise<number[]> {
  await ops.sink.migrate('projections', ledgerMigrations);
  const rows = await parkedVersions(ops.sink, name, { eventId });
  await ops.sink.transaction(async (sql) => {
    for (const row of rows) await ledger.unpark(sql, name, row.version, eventId);
  });
  return rows.map((r) => r.version);
}
