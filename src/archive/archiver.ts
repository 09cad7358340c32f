/**
 * Moving old streams out of the hot tables: `archiveStreams`, what `tidemark streams archive`
 * runs. Per segment (docs/retention.md):
 *
 * 1. pick candidates: streams whose last event is older than the cut-off, by first position;
 * 2. read their events as stored and keep the streams the policy accepts;
 * 3. record the segment as `writing` in the store's index;
 * 4. write the segment file (whole or not at all);
 * 5. seal, in one store transaction: check every stream is still at the version read, record
 *    them as archived, delete their events and snapshots from the hot tables.
 *
 * A stop between segments (abort signal) leaves nothing half done. A crash before 5 commits
 * leaves the streams hot and a `writing` segment: the next run deletes its file and forgets it
 * (so nothing is lost and nothing is there twice), then carries on. Run one archiver per store
 * at a time.
 */
import { randomUUID } from 'node:crypto';
import {
  InvalidArgumentError,
  silentLogger,
  type ArchivalTables,
  type ArchiveCandidate,
  type ArchivePolicy,
  type Logger,
  type RawStoredEvent,
  type SegmentStore,
} from '../core/index.ts';

export interface ArchiveStreamsOptions {
  readonly tables: ArchivalTables;
  readonly segments: SegmentStore;
  /** Archive streams whose last event is at least this old. */
  readonly olderThanMs: number;
  /** Default: every stream old enough. */
  readonly policy?: ArchivePolicy;
  /** Only streams whose id starts with this (e.g. `order-`). */
  readonly prefix?: string;
  /** Streams looked at per segment. Default 1000. */
  readonly streamsPerSegment?: number;
  /** Count what would be archived; write and delete nothing. */
  readonly dryRun?: boolean;
  /** Stops after the segment in progress. */
  readonly signal?: AbortSignal;
  /** Called after every segment (and at the start and end). */
  readonly onProgress?: (progress: ArchiveProgress) => void;
  readonly logger?: Logger;
  /** The clock. Default: the system clock. */
  readonly now?: () => Date;
  /**
   * Called once a segment's file is written and before it is sealed: for fault injection in
   * tests (throw to act like a crash at the worst moment).
   */
  readonly afterSegmentWritten?: (segmentId: string) => void | Promise<void>;
}

export interface ArchiveProgress {
  /** Candidate streams looked at. */
  scanned: number;
  /** Streams moved to the archive (dry run: that would be). */
  streams: number;
  events: number;
  segments: number;
  /** Compressed bytes written. */
  bytes: number;
  /** Segments a crashed run left unsealed, deleted at the start. */
  recovered: number;
  /** Streams skipped because they changed while being archived. */
  changed: number;
  /** True once the run ended; `stopped` when the signal ended it before the last candidate. */
  done: boolean;
  stopped: boolean;
  dryRun: boolean;
}

/** Parses `90d`, `12h`, `30m`, `45s` or a number of milliseconds. */
export function parseAge(text: string): number {
  const match = /^(\d+)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!match) {
    throw new InvalidArgumentError('olderThan', `'${text}' is not an age (for example 90d, 12h)`);
  }
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] ?? 'ms']!;
  return Number(match[1]) * unit;
}

/** Moves the streams the policy accepts to the archive, segment by segment. */
export async function archiveStreams(options: ArchiveStreamsOptions): Promise<ArchiveProgress> {
  const { tables, segments } = options;
  if (!Number.isSafeInteger(options.olderThanMs) || options.olderThanMs < 0) {
    throw new InvalidArgumentError('olderThanMs', 'must be a non-negative integer');
  }
  const perSegment = options.streamsPerSegment ?? 1000;
  if (!Number.isSafeInteger(perSegment) || perSegment < 1) {
    throw new InvalidArgumentError('streamsPerSegment', 'must be a positive integer');
  }
  const logger = options.logger ?? silentLogger;
  const policy = options.policy ?? (() => true);
  const dryRun = options.dryRun === true;
  const now = (options.now ?? (() => new Date()))();
  const recordedBefore = new Date(now.getTime() - options.olderThanMs);
  const progress: ArchiveProgress = {
    scanned: 0,
    streams: 0,
    events: 0,
    segments: 0,
    bytes: 0,
    recovered: 0,
    changed: 0,
    done: false,
    stopped: false,
    dryRun,
  };
  const report = () => options.onProgress?.({ ...progress });

  if (!dryRun) {
    for (const segment of await tables.segments()) {
      if (segment.state !== 'writing') continue;
      // A run that crashed before sealing: its streams are still hot, its file is not needed.
      await segments.delete(segment.segmentId);
      await tables.dropSegment(segment.segmentId);
      progress.recovered++;
      logger.warn(
        { segmentId: segment.segmentId },
        'archive: dropped a segment a stopped run left unsealed',
      );
    }
  }
  report();

  let after = 0;
  let retries = 0;
  while (!options.signal?.aborted) {
    const candidates = await tables.candidates({
      recordedBefore,
      afterPosition: after,
      limit: perSegment,
      ...(options.prefix !== undefined ? { prefix: options.prefix } : {}),
    });
    if (candidates.length === 0) break;
    const pageStart = after;
    after = candidates.at(-1)!.firstPosition;
    const chosen = choose(
      candidates,
      await tables.readStored(candidates.map((c) => c.streamId)),
      policy,
      progress,
    );
    progress.scanned += candidates.length;
    if (chosen.streams.length === 0) {
      report();
      continue;
    }
    if (dryRun) {
      progress.streams += chosen.streams.length;
      progress.events += chosen.events.length;
      progress.segments++;
      report();
      continue;
    }
    const events = chosen.events;
    const segmentId = `${String(events[0]!.position).padStart(16, '0')}-${randomUUID().slice(0, 8)}`;
    await tables.beginSegment(segmentId);
    const bytes = await segments.write(segmentId, events);
    await options.afterSegmentWritten?.(segmentId);
    const sealed = await tables.sealSegment(
      {
        segmentId,
        minPosition: events[0]!.position,
        maxPosition: events.at(-1)!.position,
        streams: chosen.streams.length,
        events: events.length,
      },
      chosen.streams,
    );
    if (!sealed) {
      // A stream got a new event meanwhile (it is no longer old: the next look skips it).
      await segments.delete(segmentId);
      await tables.dropSegment(segmentId);
      progress.scanned -= candidates.length;
      if (++retries > 3) {
        throw new InvalidArgumentError(
          'streams',
          `archive: streams after position ${pageStart} keep changing`,
        );
      }
      after = pageStart;
      continue;
    }
    retries = 0;
    progress.streams += chosen.streams.length;
    progress.events += events.length;
    progress.segments++;
    progress.bytes += bytes;
    logger.info(
      { segmentId, streams: chosen.streams.length, events: events.length, bytes },
      'archive: segment sealed',
    );
    report();
  }
  progress.stopped = options.signal?.aborted === true;
  progress.done = true;
  report();
  return progress;
}

/** The candidates the policy accepts, whose events read back complete (unchanged meanwhile). */
function choose(
  candidates: readonly ArchiveCandidate[],
  stored: readonly RawStoredEvent[],
  policy: ArchivePolicy,
  progress: ArchiveProgress,
): { streams: { streamId: string; version: number }[]; events: RawStoredEvent[] } {
  const byStream = new Map<string, RawStoredEvent[]>();
  for (const e of stored) {
    let list = byStream.get(e.streamId);
    if (!list) byStream.set(e.streamId, (list = []));
    list.push(e);
  }
  const streams: { streamId: string; version: number }[] = [];
  const ids = new Set<string>();
  for (const c of candidates) {
    const events = byStream.get(c.streamId) ?? [];
    if (events.length !== c.version || events.at(-1)?.streamVersion !== c.version) {
      progress.changed++;
      continue;
    }
    if (!policy(events)) continue;
    streams.push({ streamId: c.streamId, version: c.version });
    ids.add(c.streamId);
  }
  return { streams, events: stored.filter((e) => ids.has(e.streamId)) };
}
