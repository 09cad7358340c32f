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
  isTidemarkError,
  silentLogger,
  type Logger,
  type ProjectionContext,
  type ProjectionDefinition,
  type ProjectionSink,
  type RecordedEvent,
  type KeyRing,
  type PersonalDataReader,
  type SqlExecutor,
  type Upcasters,
} from '../core/index.ts';
import { SpanKind, endSpan, startSpan, traceIdOf } from '../tracing.ts';
import { ledger, physicalTables, projectionContext } from './ledger.ts';
import { DeferredWrites, canDefer } from './deferred-writes.ts';

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
  changed: Map<string, number>;
}

// An unreachable key store (personal data) is an outage like the sink's own, not the event's
// fault: the batch is retried later instead of its events being parked.
const mustPropagate = (sink: ProjectionSink, error: unknown) =>
  error instanceof ProgressMovedError ||
  sink.isTransientError(error) ||
  isTidemarkError(error, 'unavailable');

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
  /**
   * The application's upcasters: every event reaches `apply`, `applyBatch` and a parked retry
   * in the current schema. Events arrive (and are parked) as stored, so an event no upcaster
   * can handle fails like a handler would: it is retried, then parked as it came, and a retry
   * once the upcaster is deployed applies it.
   */
  upcasters?: Upcasters;
  /**
   * Opens sealed personal fields after upcasting, right before a handler sees the event (the
   * plaintext while the subject's key exists, a redaction after). Events are parked sealed.
   */
  personalData?: PersonalDataReader;
  logger?: Logger;
  /** Aborted when the runner stops: backoff waits end at once. */
  signal?: AbortSignal;
}

/**
 * What one physical version must apply of a feed's batch, and how its checkpoint moves. The
 * feed makes one per version per batch; the applier calls `claim` first in every transaction,
 * `save` last, and `committed` after the transaction committed.
 */
export interface SlotWork {
  /** The events this version has not applied yet, in feed order (as stored: not upcast). */
  readonly events: readonly RecordedEvent[];
  /**
   * Runs first in every transaction: throws {@link ProgressMovedError} when the version may not
   * apply (retired meanwhile, or its checkpoint moved by another runner), before any handler.
   */
  claim(sql: SqlExecutor): Promise<void>;
  /**
   * Optional: {@link claim} and the applied version of each of `streamIds` (the redelivery
   * guard's read) in one round trip. Used on PostgreSQL when the applier dedupes by stream.
   */
  claimReading?(sql: SqlExecutor, streamIds: readonly string[]): Promise<Map<string, number>>;
  /**
   * Stores the checkpoint after `events[upTo]`; `upTo === events.length - 1` means the whole
   * batch (which may reach past its last event: offsets of records that are not events). With
   * `streamVersions` (the streams' versions the batch applied, per stream), stores those too.
   */
  save(sql: SqlExecutor, upTo: number, streamVersions?: ReadonlyMap<string, number>): Promise<void>;
  /** The transaction that ran `save(sql, upTo)` committed. */
  committed(upTo: number): void;
}

export class ProjectionApplier {
  readonly definition: ProjectionDefinition;
  readonly version: number;
  readonly #sink: ProjectionSink;
  readonly #retry: RetryPolicy;
  readonly #dedupe: boolean;
  readonly #logger: Logger;
  readonly #signal: AbortSignal | undefined;
  readonly #handles: Set<string>;
  readonly #upcasters: Upcasters | undefined;
  readonly #personalData: PersonalDataReader | undefined;
  /** The keys of the batch being applied, loaded once for it (handlers of one event reuse them). */
  #keys: KeyRing | undefined;
  /** Streams with parked events; confirmed against the ledger before use (others may unpark). */
  readonly #parkedStreams = new Set<string>();
  #parkedCount = 0;

  constructor(options: ApplierOptions) {
    this.definition = options.definition;
    this.version = options.version;
    this.#sink = options.sink;
    this.#retry = { ...defaultRetryPolicy, ...options.retry };
    this.#dedupe = options.dedupeByStream ?? false;
    this.#logger = options.logger ?? silentLogger;
    this.#signal = options.signal;
    this.#handles = new Set(options.definition.handles);
    this.#upcasters =
      options.upcasters && !options.upcasters.isEmpty ? options.upcasters : undefined;
    this.#personalData = options.personalData;
  }

  /** Physical table names of this version. */
  get tables(): string[] {
    return physicalTables(this.definition, this.version);
  }

  get parkedCount(): number {
    return this.#parkedCount;
  }

  /** True when the stream has parked events, as far as this applier knows. */
  isParked(streamId: string): boolean {
    return this.#parkedStreams.has(streamId);
  }

  context(sql: SqlExecutor): ProjectionContext {
    return projectionContext(this.definition, this.version, sql);
  }

  /** The projection's writes while a transaction defers them (deferWrites), else undefined. */
  #writes: DeferredWrites | undefined;

  /**
   * Runs `work` with the handler's writes deferred when the projection asks for it and the
   * database can take them in one round trip; sends them before returning, so they commit with
   * the transaction (a failure to send rejects, and the transaction rolls back).
   */
  async #withWrites<T>(sql: SqlExecutor, work: () => Promise<T>): Promise<T> {
    if (!this.definition.deferWrites || !canDefer(sql)) return work();
    const outer = this.#writes;
    const writes = new DeferredWrites(sql);
    this.#writes = writes;
    try {
      const result = await work();
      await writes.flush();
      return result;
    } finally {
      this.#writes = outer;
    }
  }

  /** Loads which streams have parked events (call once before the first batch). */
  async loadParked(): Promise<void> {
    const streams = await ledger.parkedStreams(this.#sink, this.definition.name, this.version);
    this.#parkedStreams.clear();
    for (const s of streams) this.#parkedStreams.add(s);
    this.#parkedCount = await ledger.parkedCount(this.#sink, this.definition.name, this.version);
  }

  /**
   * Applies a whole batch inside the caller's transaction (several versions share one
   * transaction this way). Throws on any failure; the caller rolls back and falls back to
   * {@link applyBatch}, which isolates the failing event.
   */
  async applyIn(sql: SqlExecutor, work: SlotWork): Promise<void> {
    const { events } = work;
    let versions: StreamVersions | undefined;
    if (this.#dedupe && work.claimReading && sql.dialect === 'postgres') {
      const streams = [...new Set(events.map((e) => e.streamId))];
      versions = { applied: await work.claimReading(sql, streams), changed: new Map() };
    } else {
      await work.claim(sql);
    }
    // Loaded fresh per batch, never cached longer: a subject forgotten meanwhile reads redacted.
    this.#keys = this.#personalData ? await this.#personalData.loadKeys(events) : undefined;
    try {
      await this.#withWrites(sql, () => this.#applyIn(sql, work, versions));
    } finally {
      this.#keys = undefined;
    }
  }

  async #applyIn(sql: SqlExecutor, work: SlotWork, claimed?: StreamVersions): Promise<void> {
    const { events } = work;
    // With dedupe, the batch's stream versions are read in one query (with the claim, when the
    // feed can) and written in one, instead of a read and a write per event.
    const versions =
      claimed ?? (this.#dedupe ? await this.#loadStreamVersions(sql, events) : undefined);
    const drains = new Set<string>();
    if (this.definition.applyBatch) {
      const admitted: RecordedEvent[] = [];
      for (const event of events) {
        if (await this.#admit(sql, event, versions, drains)) admitted.push(event);
      }
      if (admitted.length > 0) await this.#handleBatch(admitted, sql);
      for (const streamId of drains) await this.#drain(sql, streamId, versions);
    } else {
      for (const event of events) await this.#applyOne(sql, event, versions);
    }
    // The stream versions go with the checkpoint: the feed stores both, in one statement where
    // the store allows (Kafka-fed on PostgreSQL).
    await work.save(
      sql,
      events.length - 1,
      versions && versions.changed.size > 0 ? versions.changed : undefined,
    );
  }

  /**
   * Applies `work.events` in order and saves progress, in transactions of its own. Resolves when
   * every event is applied or parked; rejects only on transient database errors and on
   * {@link ProgressMovedError} (retry the same batch later, or reload).
   */
  async applyBatch(work: SlotWork): Promise<void> {
    try {
      await this.#sink.transaction((sql) => this.applyIn(sql, work));
      work.committed(work.events.length - 1);
      return;
    } catch (error) {
      if (mustPropagate(this.#sink, error)) throw error;
      this.#logger.debug(
        { projection: this.definition.name, err: error },
        'batch failed; applying its events one at a time',
      );
    }
    for (let i = 0; i < work.events.length; i++) await this.#applyAlone(work, i);
  }

  async #applyAlone(work: SlotWork, index: number): Promise<void> {
    const event = work.events[index]!;
    let delay = this.#retry.initialDelayMs;
    let lastError: unknown;
    for (let attempt = 1; attempt <= this.#retry.attempts; attempt++) {
      try {
        await this.#sink.transaction(async (sql) => {
          await work.claim(sql);
          await this.#withWrites(sql, () => this.#applyOne(sql, event));
          await work.save(sql, index);
        });
        work.committed(index);
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
      await work.claim(sql);
      await ledger.park(
        sql,
        this.definition.name,
        this.version,
        event,
        message,
        this.#retry.attempts,
      );
      await work.save(sql, index);
    });
    work.committed(index);
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
    const streams = [...new Set(events.map((e) => e.streamId))];
    const applied = await ledger.streamVersions(sql, this.definition.name, this.version, streams);
    return { applied, changed: new Map() };
  }

  /**
   * Everything but the handler, for one event of a batch: skips what was applied before, parks
   * what waits behind a parked event, records the stream's version. True when the handler must
   * run for it.
   */
  async #admit(
    sql: SqlExecutor,
    event: RecordedEvent,
    versions: StreamVersions | undefined,
    drains: Set<string>,
  ): Promise<boolean> {
    const { name } = this.definition;
    const { streamId } = event;
    let applied = 0;
    if (this.#dedupe) {
      applied = versions
        ? (versions.applied.get(streamId) ?? 0)
        : await ledger.streamVersion(sql, name, this.version, streamId);
      // Delivered before (a redelivery, a duplicate): no second effect.
      if (event.streamVersion <= applied) return false;
    }
    if (this.#parkedStreams.has(streamId)) {
      const hold = await ledger.streamHold(sql, name, this.version, streamId);
      if (hold === undefined) {
        this.#parkedStreams.delete(streamId);
      } else if (hold === 'gap' && event.streamVersion === applied + 1) {
        // The missing version came: it applies, and then what was held behind the gap.
        drains.add(streamId);
      } else {
        await ledger.park(
          sql,
          name,
          this.version,
          event,
          'held behind an earlier parked event of its stream',
          0,
          'held',
        );
        this.#parkedCount++;
        return false;
      }
    }
    if (this.#dedupe && event.streamVersion !== applied + 1) {
      // Only a stream's next version applies: a later one means a version is missing here (lost,
      // or not yet delivered). Hold the stream, loudly, rather than apply past the hole.
      await ledger.park(
        sql,
        name,
        this.version,
        event,
        `gap: ${streamId} is at version ${applied} here; version ${event.streamVersion} came before ${applied + 1}`,
        0,
        'gap',
      );
      this.#parkedStreams.add(streamId);
      this.#parkedCount++;
      this.#logger.warn(
        {
          projection: name,
          version: this.version,
          streamId,
          applied,
          arrived: event.streamVersion,
          eventId: event.eventId,
        },
        'stream held: a version is missing (a gap); it goes on when the missing version arrives',
      );
      return false;
    }
    if (versions) this.#recordVersion(event, versions);
    else if (this.#dedupe) {
      await ledger.saveStreamVersion(sql, name, this.version, streamId, event.streamVersion);
    }
    return this.#handles.has(event.type);
  }

  #recordVersion(event: RecordedEvent, versions: StreamVersions): void {
    versions.applied.set(event.streamId, event.streamVersion);
    versions.changed.set(event.streamId, event.streamVersion);
  }

  /**
   * After the missing version of a gap-held stream applied: applies the events held behind it,
   * in order, while each is the stream's next version; what is left (another gap) holds the
   * stream again.
   */
  async #drain(
    sql: SqlExecutor,
    streamId: string,
    versions: StreamVersions | undefined,
  ): Promise<void> {
    const { name } = this.definition;
    let applied = versions
      ? (versions.applied.get(streamId) ?? 0)
      : await ledger.streamVersion(sql, name, this.version, streamId);
    const parked = await ledger.parked(sql, { name, version: this.version, streamId });
    let drained = 0;
    for (const { event } of parked) {
      if (event.streamVersion > applied + 1) {
        await ledger.setParkReason(sql, name, this.version, event.eventId, 'gap');
        break;
      }
      if (event.streamVersion === applied + 1) {
        if (this.#handles.has(event.type)) await this.#handle(event, sql);
        applied = event.streamVersion;
        if (versions) this.#recordVersion(event, versions);
        else await ledger.saveStreamVersion(sql, name, this.version, streamId, applied);
      }
      await ledger.unpark(sql, name, this.version, event.eventId);
      drained++;
    }
    this.#parkedCount = Math.max(0, this.#parkedCount - drained);
    if (drained === parked.length) this.#parkedStreams.delete(streamId);
    this.#logger.info(
      { projection: name, version: this.version, streamId, applied: drained },
      'gap filled: the held events of the stream applied',
    );
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
      const upcasters = this.#upcasters;
      const current = upcasters ? events.map((e) => upcasters.upcast(e)) : events;
      await this.definition.applyBatch!(
        this.#personalData ? await this.#personalData.reveal(current, this.#keys) : current,
        this.context(this.#writes ?? sql),
      );
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
    const drains = new Set<string>();
    if (await this.#admit(sql, event, versions, drains)) await this.#handle(event, sql);
    for (const streamId of drains) await this.#drain(sql, streamId, versions);
  }

  /** Calls the projection's handler, inside a span continuing the event's trace. */
  async #handle(event: RecordedEvent, sql: SqlExecutor): Promise<void> {
    const { traceparent, tracestate } = event.metadata;
    if (traceparent === undefined) return this.#apply(event, sql);
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
      await this.#apply(event, sql);
      endSpan(trace.span);
    } catch (error) {
      endSpan(trace.span, error);
      throw error;
    }
    if (this.#logger.isLevelEnabled?.('debug')) this.#logApplied(event);
  }

  /** The projection's `apply`, given the event in the current schema, personal fields open. */
  async #apply(event: RecordedEvent, sql: SqlExecutor): Promise<void> {
    const current = this.#upcasters ? this.#upcasters.upcast(event) : event;
    const [readable] = this.#personalData
      ? await this.#personalData.reveal([current], this.#keys)
      : [current];
    await this.definition.apply(readable!, this.context(this.#writes ?? sql));
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
      const applied = await this.#sink.transaction(async (sql) =>
        this.#withWrites(sql, async () => {
          const parked = await ledger.parked(sql, { name, version: this.version, streamId });
          for (const { event } of parked) {
            if (this.#dedupe) {
              const done = await ledger.streamVersion(sql, name, this.version, streamId);
              if (event.streamVersion <= done) {
                await ledger.unpark(sql, name, this.version, event.eventId);
                continue;
              }
            }
            if (this.#handles.has(event.type)) await this.#apply(event, sql);
            if (this.#dedupe)
              await ledger.saveStreamVersion(
                sql,
                name,
                this.version,
                streamId,
                event.streamVersion,
              );
            await ledger.unpark(sql, name, this.version, event.eventId);
          }
          return parked.length;
        }),
      );
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
