/**
 * An event store that keeps personal data sealed at rest: appends seal the declared fields before
 * the inner store sees them; reads open them (plaintext while the key exists, a redaction after);
 * raw reads (`upcast: false`: the relay, projection feeds) hand out the stored envelopes as they
 * are, so Kafka and archives only ever get ciphertext. Snapshots of streams holding personal data
 * are sealed whole (see {@link PersonalDataCodec.sealSnapshot}).
 */
import type {
  AppendOptions,
  AppendResult,
  Event,
  FullEventStore,
  IdempotencyClaim,
  ListStreamsOptions,
  NewEvent,
  ReadAllOptions,
  ReadStreamOptions,
  RecordedEvent,
  Snapshot,
  StreamInfo,
  Upcasters,
} from '../core/index.ts';
import { PersonalDataCodec, type PersonalDataCodecOptions } from './codec.ts';

export type ProtectedEventStore = FullEventStore & {
  /** The reader projection feeds hand to their appliers (`Feed.personalData`). */
  readonly personalData: PersonalDataCodec;
  /** The store underneath (events as stored). */
  readonly inner: FullEventStore;
  /** Always there: snapshot and tail in one read where the inner store can, two reads otherwise. */
  readFromSnapshot: NonNullable<FullEventStore['readFromSnapshot']>;
};

/**
 * Wraps `store` so that the personal fields `options.personalData` declares are sealed with
 * their subject's key from `options.keys`. Hand the wrapper to everything: command handlers (and
 * their snapshot policy), queries, the relay, projection hosts.
 */
export function protectPersonalData(
  store: FullEventStore,
  options: PersonalDataCodecOptions,
): ProtectedEventStore {
  return new PersonalDataStore(store, new PersonalDataCodec(options));
}

class PersonalDataStore implements ProtectedEventStore {
  readonly inner: FullEventStore;
  readonly personalData: PersonalDataCodec;
  readonly storeId?: () => Promise<string>;
  readonly isArchived?: (streamId: string) => Promise<boolean>;

  constructor(inner: FullEventStore, codec: PersonalDataCodec) {
    this.inner = inner;
    this.personalData = codec;
    if (inner.storeId) this.storeId = () => inner.storeId!();
    if (inner.isArchived) this.isArchived = (streamId) => inner.isArchived!(streamId);
  }

  get upcasters(): Upcasters | undefined {
    return this.inner.upcasters;
  }

  async appendToStream<E extends Event>(
    streamId: string,
    events: readonly NewEvent<E>[],
    options?: AppendOptions,
  ): Promise<AppendResult<E>> {
    const sealed = Array.isArray(events)
      ? await this.personalData.protect(streamId, events)
      : events;
    const result = await this.inner.appendToStream<E>(streamId, sealed, options);
    if (sealed === events || result.events.length !== events.length) return result;
    // The caller gets back the data it gave (in clear), not what was stored.
    return {
      ...result,
      events: result.events.map((recorded, i) =>
        recorded.data === events[i]!.data ? recorded : { ...recorded, data: events[i]!.data },
      ) as RecordedEvent<E>[],
    };
  }

  async readStream<E extends Event = Event>(
    streamId: string,
    options?: ReadStreamOptions,
  ): Promise<RecordedEvent<E>[]> {
    return this.personalData.reveal(await this.inner.readStream<E>(streamId, options));
  }

  async readFromSnapshot<E extends Event = Event>(
    streamId: string,
    stateVersion: number,
  ): Promise<{ snapshot: Snapshot | undefined; events: RecordedEvent<E>[] }> {
    const read = this.inner.readFromSnapshot
      ? await this.inner.readFromSnapshot<E>(streamId, stateVersion)
      : undefined;
    const stored = read ? read.snapshot : await this.inner.readSnapshot(streamId);
    const snapshot = stored && (await this.#openSnapshot(stored));
    if (!read || (stored && !snapshot && stored.stateVersion === stateVersion)) {
      // No combined read, or a snapshot that cannot be opened (a subject forgotten): read the
      // events after what is usable.
      const from = snapshot?.stateVersion === stateVersion ? snapshot.streamVersion + 1 : 1;
      return { snapshot, events: await this.readStream<E>(streamId, { fromVersion: from }) };
    }
    return { snapshot, events: await this.personalData.reveal(read.events) };
  }

  async readAll<E extends Event = Event>(options?: ReadAllOptions): Promise<RecordedEvent<E>[]> {
    const events = await this.inner.readAll<E>(options);
    // Raw reads stay as stored: the relay publishes ciphertext, feeds reveal at consumption.
    return options?.upcast === false ? events : this.personalData.reveal(events);
  }

  streamVersion(streamId: string): Promise<number> {
    return this.inner.streamVersion(streamId);
  }

  headPosition(): Promise<number> {
    return this.inner.headPosition();
  }

  listStreams(options?: ListStreamsOptions): Promise<StreamInfo[]> {
    return this.inner.listStreams(options);
  }

  onAppended(listener: (position: number) => void): () => void {
    return this.inner.onAppended(listener);
  }

  async readSnapshot(streamId: string): Promise<Snapshot | undefined> {
    const snapshot = await this.inner.readSnapshot(streamId);
    return snapshot && this.#openSnapshot(snapshot);
  }

  async writeSnapshot(snapshot: Omit<Snapshot, 'takenAt'>): Promise<void> {
    const sealed = await this.personalData.sealSnapshot(snapshot.streamId, snapshot.state);
    // A forgotten subject's stream gets no new snapshot: its state is folded from events.
    if (sealed) await this.inner.writeSnapshot({ ...snapshot, state: sealed.state });
  }

  async #openSnapshot(snapshot: Snapshot): Promise<Snapshot | undefined> {
    const opened = await this.personalData.openSnapshot(snapshot.state);
    return opened && (opened.state === snapshot.state ? snapshot : { ...snapshot, ...opened });
  }

  claimIdempotencyKey(
    key: string,
    fingerprint: string,
    leaseMs: number,
  ): Promise<IdempotencyClaim> {
    return this.inner.claimIdempotencyKey(key, fingerprint, leaseMs);
  }

  completeIdempotencyKey(key: string, response: unknown): Promise<void> {
    return this.inner.completeIdempotencyKey(key, response);
  }

  releaseIdempotencyKey(key: string): Promise<void> {
    return this.inner.releaseIdempotencyKey(key);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
