import {
  ClosedError,
  DuplicateEventIdError,
  checkExpectedVersion,
  noUpcasters,
  type AppendOptions,
  type AppendResult,
  type Event,
  type FullEventStore,
  type IdempotencyClaim,
  type ListStreamsOptions,
  type NewEvent,
  type ReadAllOptions,
  type ReadStreamOptions,
  type RecordedEvent,
  type Snapshot,
  type StoredEvent,
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
} from '../core/preparation.ts';

export interface MemoryEventStoreOptions {
  upcasters?: Upcasters;
  /** The clock that stamps `recordedAt`. Default: the system clock. */
  now?: () => Date;
}

/** A stored row: data and metadata kept as JSON text, so reads hand out fresh copies. */
interface Row {
  eventId: string;
  streamId: string;
  streamVersion: number;
  position: number;
  type: string;
  schemaVersion: number;
  data: string;
  metadata: string;
  recordedAt: number;
}

interface IdempotencyRow {
  fingerprint: string;
  response?: string;
  claimedAt: number;
}

interface MemoryData {
  log: Row[];
  streams: Map<string, Row[]>;
  eventIds: Set<string>;
  snapshots: Map<string, string>;
  idempotency: Map<string, IdempotencyRow>;
  listeners: Set<(position: number) => void>;
  /** The store's identity: one per data set (a reopened store shares it). */
  storeId: string;
}

function newData(): MemoryData {
  return {
    log: [],
    streams: new Map(),
    eventIds: new Set(),
    snapshots: new Map(),
    idempotency: new Map(),
    listeners: new Set(),
    storeId: crypto.randomUUID(),
  };
}

/**
 * The reference event store, in memory. Everything the port promises, with nothing durable: for
 * tests, examples and as the executable description of the contract.
 */
export class MemoryEventStore implements FullEventStore {
  readonly #data: MemoryData;
  readonly #log: Row[];
  readonly #streams: Map<string, Row[]>;
  readonly #eventIds: Set<string>;
  readonly #snapshots: Map<string, string>;
  readonly #idempotency: Map<string, IdempotencyRow>;
  readonly #listeners: Set<(position: number) => void>;
  readonly #upcasters: Upcasters;
  readonly #now: () => Date;
  #closed = false;

  constructor(options: MemoryEventStoreOptions = {}, data: MemoryData = newData()) {
    this.#upcasters = options.upcasters ?? noUpcasters;
    this.#now = options.now ?? (() => new Date());
    this.#data = data;
    ({
      log: this.#log,
      streams: this.#streams,
      eventIds: this.#eventIds,
      snapshots: this.#snapshots,
      idempotency: this.#idempotency,
      listeners: this.#listeners,
    } = data);
  }

  /** Another store over the same data, with other options (new upcasters, say). */
  reopen(options: MemoryEventStoreOptions = {}): MemoryEventStore {
    return new MemoryEventStore(options, this.#data);
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
    this.#open();
    validateStreamId(streamId);
    const expected = appendExpectation(options);
    const prepared = prepareEvents(events, this.#upcasters, () => crypto.randomUUID());
    const stream = this.#streams.get(streamId) ?? [];
    checkExpectedVersion(streamId, expected, stream.length);
    const ids = new Set<string>();
    for (const event of prepared) {
      if (this.#eventIds.has(event.eventId) || ids.has(event.eventId)) {
        throw new DuplicateEventIdError(event.eventId);
      }
      ids.add(event.eventId);
    }
    const recordedAt = this.#now().getTime();
    const rows = prepared.map((event, i): Row => ({
      eventId: event.eventId,
      streamId,
      streamVersion: stream.length + i + 1,
      position: this.#log.length + i + 1,
      type: event.type,
      schemaVersion: event.schemaVersion,
      data: event.data,
      metadata: event.metadata,
      recordedAt,
    }));
    for (const row of rows) {
      this.#log.push(row);
      stream.push(row);
      this.#eventIds.add(row.eventId);
    }
    this.#streams.set(streamId, stream);
    const last = rows[rows.length - 1]!;
    const recorded = rows.map((row) => this.#toRecorded(row) as RecordedEvent<E>);
    queueMicrotask(() => this.#notify(last.position));
    return { nextExpectedVersion: last.streamVersion, position: last.position, events: recorded };
  }

  async readStream<E extends Event = Event>(
    streamId: string,
    options?: ReadStreamOptions,
  ): Promise<RecordedEvent<E>[]> {
    this.#open();
    validateStreamId(streamId);
    const { forwards, fromVersion, toVersion, maxCount } = streamReadRange(options);
    const stream = this.#streams.get(streamId) ?? [];
    let rows = stream.slice(fromVersion - 1, Math.min(toVersion, stream.length));
    if (!forwards) rows = rows.reverse();
    return rows.slice(0, maxCount).map((row) => this.#toRecorded(row) as RecordedEvent<E>);
  }

  async readAll<E extends Event = Event>(options?: ReadAllOptions): Promise<RecordedEvent<E>[]> {
    this.#open();
    const { after, maxCount } = allReadRange(options);
    const upcast = options?.upcast !== false;
    return this.#log
      .slice(after, after + maxCount)
      .map((row) => this.#toRecorded(row, upcast) as RecordedEvent<E>);
  }

  async streamVersion(streamId: string): Promise<number> {
    this.#open();
    validateStreamId(streamId);
    return this.#streams.get(streamId)?.length ?? 0;
  }

  async headPosition(): Promise<number> {
    this.#open();
    return this.#log.length;
  }

  /** This store's identity: random, one per instance (and the stores {@link reopen} makes). */
  async storeId(): Promise<string> {
    this.#open();
    return this.#data.storeId;
  }

  async listStreams(options: ListStreamsOptions = {}): Promise<StreamInfo[]> {
    this.#open();
    const limit = listLimit(options.limit);
    const prefix = options.prefix ?? '';
    const after = options.after;
    return [...this.#streams.keys()]
      .filter((id) => id.startsWith(prefix) && (after === undefined || id > after))
      .sort()
      .slice(0, limit)
      .map((id) => {
        const rows = this.#streams.get(id)!;
        const last = rows[rows.length - 1]!;
        return {
          streamId: id,
          version: last.streamVersion,
          position: last.position,
          updatedAt: new Date(last.recordedAt),
        };
      });
  }

  onAppended(listener: (position: number) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async readSnapshot(streamId: string): Promise<Snapshot | undefined> {
    this.#open();
    validateStreamId(streamId);
    const text = this.#snapshots.get(streamId);
    if (text === undefined) return undefined;
    const stored = JSON.parse(text) as Omit<Snapshot, 'takenAt'> & { takenAt: number };
    return { ...stored, takenAt: new Date(stored.takenAt) };
  }

  async writeSnapshot(snapshot: Omit<Snapshot, 'takenAt'>): Promise<void> {
    this.#open();
    validateStreamId(snapshot.streamId);
    const existing = await this.readSnapshot(snapshot.streamId);
    if (
      existing &&
      existing.stateVersion === snapshot.stateVersion &&
      existing.streamVersion > snapshot.streamVersion
    ) {
      return;
    }
    const text = toJson({ ...snapshot, takenAt: this.#now().getTime() }, 'snapshot');
    this.#snapshots.set(snapshot.streamId, text);
  }

  async claimIdempotencyKey(
    key: string,
    fingerprint: string,
    leaseMs: number,
  ): Promise<IdempotencyClaim> {
    this.#open();
    const now = this.#now().getTime();
    const row = this.#idempotency.get(key);
    if (row?.response !== undefined) {
      return {
        outcome: 'completed',
        fingerprint: row.fingerprint,
        response: JSON.parse(row.response),
      };
    }
    if (row && now - row.claimedAt < leaseMs)
      return { outcome: 'pending', fingerprint: row.fingerprint };
    this.#idempotency.set(key, { fingerprint, claimedAt: now });
    return row ? { outcome: 'claimed', takenOver: true } : { outcome: 'claimed' };
  }

  async completeIdempotencyKey(key: string, response: unknown): Promise<void> {
    this.#open();
    const row = this.#idempotency.get(key);
    if (row) row.response = toJson(response, 'idempotent response');
  }

  async releaseIdempotencyKey(key: string): Promise<void> {
    this.#open();
    if (this.#idempotency.get(key)?.response === undefined) this.#idempotency.delete(key);
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  #notify(position: number): void {
    for (const listener of this.#listeners) listener(position);
  }

  #toRecorded(row: Row, upcast = true): RecordedEvent {
    const stored: StoredEvent = {
      eventId: row.eventId,
      streamId: row.streamId,
      streamVersion: row.streamVersion,
      position: row.position,
      type: row.type,
      schemaVersion: row.schemaVersion,
      data: JSON.parse(row.data),
      metadata: JSON.parse(row.metadata),
      recordedAt: new Date(row.recordedAt),
    };
    return (upcast ? this.#upcasters.upcast(stored) : stored) as RecordedEvent;
  }

  #open(): void {
    if (this.#closed) throw new ClosedError('MemoryEventStore');
  }
}
