/**
 * Applies events to one version of one projection, whatever feeds them (the store's log or
 * Kafka). Each batch is one read-model transaction holding the changes and the progress record,
 * so a crash at any point leaves either both or neither.
 *
 * A failing event: the batch is rolled back and its events are applied one per transaction;
 * the failing one is retried with backoff, then parked with its error. Later events of the same
 * stream are parked behind it (per-stream order holds); other streams go on.
 */
import {
  silentLogger,
  type Logger,
  type ProjectionContext,
  type ProjectionDefinition,
  type ProjectionSink,
  type RecordedEvent,
  type SqlExecutor,
} from '../core/index.ts';
import { SpanKind, endSpan, startSpan, traceIdOf } from '../tracing.ts';
import { ledger } from './ledger.ts';

export interface RetryPolicy {
  /** Tries per event before it is parked. Default 3. */
  attempts: number;
  /** Delay before the first retry, doubled each time up to `maxDelayMs`. Default 100. */
  initialDelayMs: number;
  maxDelayMs: number;
}

/**
 * Thrown by a progress save when another runner of the same projection version got there
 * first. Never a handler failure: the batch is rolled back and the caller reloads.
 */
export class ProgressMovedError extends Error {
  readonly projection: string;
  readonly version: number;
  constructor(projection: string, version: number) {
    super(`${projection} v${version}: another runner moved the checkpoint; reloading it`);
    this.projection = projection;
    this.version = version;
    this.name = 'ProgressMovedError';
  }
}

/** Stream versions of one batch: as read at its start, then as applied. */
interface StreamVersions {
  applied: Map<string, number>;
  changed: Set<string>;
}

/** Streams per statement when stream versions are read or written in bulk. */
const STREAMS_PER_STATEMENT = 200;

const mustPropagate = (sink: ProjectionSink, error: unknown) =>
  error instanceof ProgressMovedError || sink.isTransientError(error);

export const defaultRetryPolicy: RetryPolicy = {
  attempts: 3,
  initialDelayMs: 100,
  maxDelayMs: 5000,
};

export interface ApplierOptions {
  definition: ProjectionDefinition;
  version: number;
  sink: ProjectionSink;
  retry?: Partial<RetryPolicy>;
  /**
   * Keep each stream's last applied version and skip events at or below it. Needed when the
   * feed may deliver an event twice (Kafka); the store's log feed needs only its position.
   */
  dedupeByStream?: boolean;
  logger?: Logger;
  /** Aborted when the runner stops: backoff waits end at once. */
  signal?: AbortSignal;
}

/**
 * Runs first in every transaction that applies events: a runner checks there that it may (for
 * example that its version was not retired, or that no other runner moved its checkpoint), and
 * throws {@link ProgressMovedError} when not, before any handler runs.
 */
export type ClaimBatch = (sql: SqlExecutor) => Promise<void>;

/** Stores the feed's progress, in the transaction, after `events[upTo]`. */
export type SaveProgress = (
  sql: SqlExecutor,
  events: readonly RecordedEvent[],
  upTo: number,
) => Promise<void>;

export class ProjectionApplier {
  readonly definition: ProjectionDefinition;
  readonly version: number;
  readonly #sink: ProjectionSink;
  readonly #retry: RetryPolicy;
  readonly #dedupe: boolean;
  readonly #logger: Logger;
  readonly #signal: AbortSignal | undefined;
  readonly #handles: Set<string>;
  readonly #tables: Map<string, string>;
  /** Streams with parked events; confirmed against the ledger before use (others may unpark). */
  readonly #parkedStreams = new Set<string>();
  #parkedCount = 0;
  #claim: ClaimBatch | undefined;

  constructor(options: ApplierOptions) {
    this.definition = options.definition;
    this.version = options.version;
    this.#sink = options.sink;
    this.#retry = { ...defaultRetryPolicy, ...options.retry };
    this.#dedupe = options.dedupeByStream ?? false;
    this.#logger = options.logger ?? silentLogger;
    this.#signal = options.signal;
    this.#handles = new Set(options.definition.handles);
    this.#tables = new Map(options.definition.tables.map((t) => [t, `${t}_v${options.version}`]));
  }

  /** Physical table names of this version. */
  get tables(): string[] {
    return [...this.#tables.values()];
  }

  get parkedCount(): number {
    return this.#parkedCount;
  }

  context(sql: SqlExecutor): ProjectionContext {
    const tables = this.#tables;
    const name = this.definition.name;
    return {
      sql,
      table(logical: string) {
        const physical = tables.get(logical);
        if (!physical) throw new Error(`'${logical}' is not one of ${name}'s tables`);
        return physical;
      },
    };
  }

  /** Loads which streams have parked events (call once before the first batch). */
  async loadParked(): Promise<void> {
    const streams = await ledger.parkedStreams(this.#sink, this.definition.name, this.version);
    this.#parkedStreams.clear();
    for (const s of streams) this.#parkedStreams.add(s);
    this.#parkedCount = await ledger.parkedCount(this.#sink, this.definition.name, this.version);
  }

  /**
   * Applies `events` in order and saves progress. Resolves when every event is applied or
   * parked; rejects only on transient database errors (retry the same batch later).
   */
  async applyBatch(
    events: readonly RecordedEvent[],
    saveProgress: SaveProgress,
    claim?: ClaimBatch,
  ): Promise<void> {
    if (events.length === 0) return;
    this.#claim = claim;
    try {
      await this.#sink.transaction(async (sql) => {
        await claim?.(sql);
        // With dedupe, the batch's stream versions are read in one query and written in a few,
        // instead of a read and a write per event.
        const versions = this.#dedupe ? await this.#loadStreamVersions(sql, events) : undefined;
        if (this.definition.applyBatch) {
          const admitted: RecordedEvent[] = [];
          for (const event of events) {
            if (await this.#admit(sql, event, versions)) admitted.push(event);
          }
          if (admitted.length > 0) await this.#handleBatch(admitted, sql);
        } else {
          for (const event of events) await this.#applyOne(sql, event, versions);
        }
        if (versions) await this.#saveStreamVersions(sql, versions);
        await saveProgress(sql, events, events.length - 1);
      });
      return;
    } catch (error) {
      if (mustPropagate(this.#sink, error)) throw error;
      this.#logger.debug(
        { projection: this.definition.name, err: error },
        'batch failed; applying its events one at a time',
      );
    }
    for (let i = 0; i < events.length; i++) await this.#applyAlone(events, i, saveProgress);
  }

  async #applyAlone(
    events: readonly RecordedEvent[],
    index: number,
    saveProgress: SaveProgress,
  ): Promise<void> {
    const event = events[index]!;
    let delay = this.#retry.initialDelayMs;
    let lastError: unknown;
    for (let attempt = 1; attempt <= this.#retry.attempts; attempt++) {
      try {
        await this.#sink.transaction(async (sql) => {
          await this.#claim?.(sql);
          await this.#applyOne(sql, event);
          await saveProgress(sql, events, index);
        });
        return;
      } catch (error) {
        if (mustPropagate(this.#sink, error)) throw error;
        lastError = error;
        this.#logger.warn(
          {
            projection: this.definition.name,
            eventId: event.eventId,
            streamId: event.streamId,
            type: event.type,
            attempt,
            err: error,
          },
          'projection handler failed',
        );
        if (attempt < this.#retry.attempts) {
          await abortableDelay(delay, this.#signal);
          if (this.#signal?.aborted) throw this.#signal.reason ?? new Error('stopped');
          delay = Math.min(delay * 2, this.#retry.maxDelayMs);
        }
      }
    }
    const message = lastError instanceof Error ? lastError.message : String(lastError);
    await this.#sink.transaction(async (sql) => {
      await this.#claim?.(sql);
      await ledger.park(
        sql,
        this.definition.name,
        this.version,
        event,
        message,
        this.#retry.attempts,
      );
      await saveProgress(sql, events, index);
    });
    this.#parkedStreams.add(event.streamId);
    this.#parkedCount++;
    this.#logger.error(
      {
        projection: this.definition.name,
        eventId: event.eventId,
        streamId: event.streamId,
        err: lastError,
      },
      'event parked after its retries; later events of its stream park behind it',
    );
  }

  async #loadStreamVersions(
    sql: SqlExecutor,
    events: readonly RecordedEvent[],
  ): Promise<StreamVersions> {
    const versions: StreamVersions = { applied: new Map(), changed: new Set() };
    const streams = [...new Set(events.map((e) => e.streamId))];
    for (let i = 0; i < streams.length; i += STREAMS_PER_STATEMENT) {
      const chunk = streams.slice(i, i + STREAMS_PER_STATEMENT);
      const rows = await sql.query<{ stream_id: string; stream_version: number | string }>(
        `SELECT stream_id, stream_version FROM tm_projection_streams
         WHERE name = $1 AND version = $2 AND stream_id IN (${chunk.map((_, j) => `$${j + 3}`).join(', ')})`,
        [this.definition.name, this.version, ...chunk],
      );
      for (const row of rows) versions.applied.set(row.stream_id, Number(row.stream_version));
    }
    return versions;
  }

  async #saveStreamVersions(sql: SqlExecutor, versions: StreamVersions): Promise<void> {
    const changed = [...versions.changed];
    for (let i = 0; i < changed.length; i += STREAMS_PER_STATEMENT) {
      const chunk = changed.slice(i, i + STREAMS_PER_STATEMENT);
      const params: unknown[] = [this.definition.name, this.version];
      const rows = chunk.map((streamId) => {
        params.push(streamId, versions.applied.get(streamId)!);
        return `($1, $2, $${params.length - 1}, $${params.length})`;
      });
      await sql.execute(
        `INSERT INTO tm_projection_streams (name, version, stream_id, stream_version) VALUES ${rows.join(', ')}
         ON CONFLICT (name, version, stream_id) DO UPDATE SET stream_version = excluded.stream_version`,
        params,
      );
    }
  }

  /**
   * Everything but the handler, for one event of a batch: skips what was applied before, parks
   * what waits behind a parked event, records the stream's version. True when the handler must
   * run for it.
   */
  async #admit(
    sql: SqlExecutor,
    event: RecordedEvent,
    versions?: StreamVersions,
  ): Promise<boolean> {
    const { name } = this.definition;
    if (this.#dedupe) {
      const applied = versions
        ? (versions.applied.get(event.streamId) ?? 0)
        : await ledger.streamVersion(sql, name, this.version, event.streamId);
      if (event.streamVersion <= applied) return false;
    }
    if (this.#parkedStreams.has(event.streamId)) {
      if (await ledger.isStreamParked(sql, name, this.version, event.streamId)) {
        await ledger.park(
          sql,
          name,
          this.version,
          event,
          'held behind an earlier parked event of its stream',
          0,
        );
        this.#parkedCount++;
        return false;
      }
      this.#parkedStreams.delete(event.streamId);
    }
    if (versions) {
      versions.applied.set(event.streamId, event.streamVersion);
      versions.changed.add(event.streamId);
    } else if (this.#dedupe) {
      await ledger.saveStreamVersion(sql, name, this.version, event.streamId, event.streamVersion);
    }
    return this.#handles.has(event.type);
  }

  /** The projection's batch handler, with a span per traced event continuing its trace. */
  async #handleBatch(events: readonly RecordedEvent[], sql: SqlExecutor): Promise<void> {
    const traces = [];
    for (const event of events) {
      const { traceparent, tracestate } = event.metadata;
      if (traceparent === undefined) continue;
      traces.push(
        startSpan(
          `project ${this.definition.name}`,
          SpanKind.CONSUMER,
          { traceparent, tracestate },
          {
            'tidemark.projection': this.definition.name,
            'tidemark.event.type': event.type,
            'tidemark.stream.id': event.streamId,
            'tidemark.batch.size': events.length,
          },
        ),
      );
    }
    try {
      await this.definition.applyBatch!(events, this.context(sql));
    } catch (error) {
      for (const trace of traces) endSpan(trace.span, error);
      throw error;
    }
    for (const trace of traces) endSpan(trace.span);
    if (this.#logger.isLevelEnabled?.('debug')) {
      for (const event of events) this.#logApplied(event);
    }
  }

  #logApplied(event: RecordedEvent): void {
    this.#logger.debug(
      {
        projection: this.definition.name,
        version: this.version,
        eventId: event.eventId,
        type: event.type,
        streamId: event.streamId,
        streamVersion: event.streamVersion,
        traceId: traceIdOf(event.metadata.traceparent),
        correlationId: event.metadata.correlationId,
      },
      'event applied',
    );
  }

  async #applyOne(
    sql: SqlExecutor,
    event: RecordedEvent,
    versions?: StreamVersions,
  ): Promise<void> {
    if (await this.#admit(sql, event, versions)) await this.#handle(event, sql);
  }

  /** Calls the projection's handler, inside a span continuing the event's trace. */
  async #handle(event: RecordedEvent, sql: SqlExecutor): Promise<void> {
    const { traceparent, tracestate } = event.metadata;
    if (traceparent === undefined) return this.definition.apply(event, this.context(sql));
    const trace = startSpan(
      `project ${this.definition.name}`,
      SpanKind.CONSUMER,
      { traceparent, tracestate },
      {
        'tidemark.projection': this.definition.name,
        'tidemark.event.type': event.type,
        'tidemark.stream.id': event.streamId,
      },
    );
    try {
      await this.definition.apply(event, this.context(sql));
      endSpan(trace.span);
    } catch (error) {
      endSpan(trace.span, error);
      throw error;
    }
    if (this.#logger.isLevelEnabled?.('debug')) this.#logApplied(event);
  }

  /**
   * Applies the parked events of one stream, in order, in one transaction, and unparks them.
   * All or nothing: if one still fails, they all stay parked and the error is thrown.
   */
  async retryParked(streamId: string): Promise<number> {
    const { name } = this.definition;
    let total = 0;
    // Loop: a runner may park one more behind them while we work (PostgreSQL lets it).
    for (;;) {
      const applied = await this.#sink.transaction(async (sql) => {
        const parked = await ledger.parked(sql, { name, version: this.version, streamId });
        for (const { event } of parked) {
          const context = this.context(sql);
          if (this.#dedupe) {
            const done = await ledger.streamVersion(sql, name, this.version, streamId);
            if (event.streamVersion <= done) {
              await ledger.unpark(sql, name, this.version, event.eventId);
              continue;
            }
          }
          if (this.#handles.has(event.type)) await this.definition.apply(event, context);
          if (this.#dedupe)
            await ledger.saveStreamVersion(sql, name, this.version, streamId, event.streamVersion);
          await ledger.unpark(sql, name, this.version, event.eventId);
        }
        return parked.length;
      });
      total += applied;
      this.#parkedCount = Math.max(0, this.#parkedCount - applied);
      if (applied === 0) break;
    }
    this.#parkedStreams.delete(streamId);
    return total;
  }

  /** Drops one parked event without applying it. The stream stays parked while others remain. */
  async skipParked(eventId: string): Promise<boolean> {
    const removed = await this.#sink.transaction((sql) =>
      ledger.unpark(sql, this.definition.name, this.version, eventId),
    );
    if (removed > 0) this.#parkedCount = Math.max(0, this.#parkedCount - removed);
    return removed > 0;
  }
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function abortableDelay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
