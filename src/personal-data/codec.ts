/**
 * Seals the personal fields of events on their way into the store, and opens them on the way
 * out: the one place where the declaration ({@link PersonalData}), the key store and the cipher
 * meet. Used by the protecting store (appends, reads, snapshots) and by projection appliers
 * (at consumption, whatever the feed).
 */
import {
  SubjectForgottenError,
  StorageError,
  isEncryptedField,
  isRedactedField,
  redactedField,
  type KeyRing,
  type NewEvent,
  type PersonalData,
  type PersonalDataReader,
  type StoredEvent,
  type SubjectKey,
  type SubjectKeyStore,
} from '../core/index.ts';
import { newSubjectKey, open, seal } from './cipher.ts';

type LiveKey = SubjectKey & { key: Uint8Array };
const live = (key: SubjectKey | undefined): key is LiveKey => key?.key !== undefined;
const EMPTY: KeyRing = new Map();

const NONE: readonly string[] = [];

/**
 * The encrypted top-level fields of `data`, if it is an object holding any. Every event read
 * passes here (a type no longer declared personal may still hold sealed fields from before), so
 * it allocates nothing for the usual event that holds none: no entries array, a shared empty
 * answer, and only values that are objects are looked at.
 */
function encryptedFields(data: unknown): readonly string[] {
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return NONE;
  const record = data as Record<string, unknown>;
  let fields: string[] | undefined;
  for (const name in record) {
    const value = record[name];
    if (typeof value === 'object' && value !== null && Object.hasOwn(record, name)) {
      if (isEncryptedField(value)) (fields ??= []).push(name);
    }
  }
  return fields ?? NONE;
}

export interface PersonalDataCodecOptions {
  personalData: PersonalData;
  keys: SubjectKeyStore;
}

export class PersonalDataCodec implements PersonalDataReader {
  readonly personalData: PersonalData;
  readonly keys: SubjectKeyStore;

  constructor(options: PersonalDataCodecOptions) {
    this.personalData = options.personalData;
    this.keys = options.keys;
  }

  /**
   * The events with their personal fields sealed, ready for the store. Makes the keys of new
   * subjects and links the stream to its subjects first (a link without events is harmless).
   * Throws {@link SubjectForgottenError} when a subject was forgotten: nothing is written, in
   * clear or under a new key.
   */
  async protect<E extends NewEvent>(streamId: string, events: readonly E[]): Promise<E[]> {
    const plans = events.map((event, i) => {
      const found = this.personalData.personalFields(event?.type, event?.data, `events[${i}].data`);
      if (!found) return undefined;
      const data = event.data as Record<string, unknown>;
      // Already an envelope (an event copied from another store) or a redaction: nothing in clear.
      const fields = found.fields.filter(
        (f) => !isEncryptedField(data[f]) && !isRedactedField(data[f]),
      );
      return fields.length > 0 ? { subject: found.subject, fields } : undefined;
    });
    const subjects = [...new Set(plans.flatMap((p) => (p ? [p.subject] : [])))];
    if (subjects.length === 0) return [...events];
    const keys = new Map(await this.keys.readKeys(subjects));
    for (const subject of subjects) {
      if (!keys.has(subject)) {
        const made = newSubjectKey();
        keys.set(subject, await this.keys.createKey(subject, made.keyId, made.key));
      }
      if (!live(keys.get(subject))) throw new SubjectForgottenError(subject);
    }
    for (const subject of subjects) await this.keys.linkStream(subject, streamId);
    return events.map((event, i) => {
      const plan = plans[i];
      if (!plan) return event;
      const key = keys.get(plan.subject) as LiveKey;
      const data = { ...(event.data as Record<string, unknown>) };
      for (const field of plan.fields) data[field] = seal(data[field], key);
      return { ...event, data };
    });
  }

  async loadKeys(events: readonly StoredEvent[]): Promise<KeyRing> {
    const subjects = new Set<string>();
    for (const event of events) {
      const data = event.data as Record<string, unknown>;
      for (const field of encryptedFields(data)) {
        subjects.add((data[field] as { subject: string }).subject);
      }
    }
    return subjects.size === 0 ? EMPTY : this.keys.readKeys([...subjects]);
  }

  async reveal<T extends StoredEvent>(events: readonly T[], keys?: KeyRing): Promise<T[]> {
    let ring = keys ?? EMPTY;
    // Scanned once per event (it was twice): the fields, then which keys are missing.
    const sealed = events.map((event) => encryptedFields(event.data));
    const missing = events.filter((event, i) =>
      sealed[i]!.some(
        (f) => !ring.has((event.data as Record<string, { subject: string }>)[f]!.subject),
      ),
    );
    if (missing.length > 0) ring = new Map([...ring, ...(await this.loadKeys(missing))]);
    return events.map((event, i) => this.#reveal(event, sealed[i]!, ring));
  }

  #reveal<T extends StoredEvent>(event: T, fields: readonly string[], ring: KeyRing): T {
    if (fields.length === 0) return event;
    const data = { ...(event.data as Record<string, unknown>) };
    for (const field of fields) {
      const sealed = data[field] as Parameters<typeof open>[0];
      const key = ring.get(sealed.subject);
      if (key === undefined) {
        // Never a silent redaction: a key store that has never heard of the subject is not the
        // one these events were sealed for (a wrong database, a lost table).
        throw new StorageError(
          `event ${event.eventId}: no key and no tombstone for subject '${sealed.subject}' in the key store`,
        );
      }
      data[field] = live(key) ? open(sealed, key) : redactedField(sealed.subject);
    }
    return { ...event, data };
  }

  /**
   * A snapshot's state as it may be stored: sealed under the key of every subject whose personal
   * data the stream holds (nested, so forgetting any of them makes it unreadable); the state as
   * it is when the stream holds none; `undefined` (write nothing) when one was forgotten.
   */
  async sealSnapshot(streamId: string, state: unknown): Promise<{ state: unknown } | undefined> {
    const subjects = (await this.keys.subjectsOf(streamId)).sort();
    if (subjects.length === 0) return { state };
    const keys = await this.keys.readKeys(subjects);
    let sealed = state;
    for (const subject of subjects) {
      const key = keys.get(subject);
      if (!live(key)) return undefined;
      sealed = seal(sealed, key);
    }
    return { state: sealed };
  }

  /** A stored snapshot state opened; `undefined` when a key it needs is gone. */
  async openSnapshot(state: unknown): Promise<{ state: unknown } | undefined> {
    let current = state;
    while (isEncryptedField(current)) {
      const keys = await this.keys.readKeys([current.subject]);
      const key = keys.get(current.subject);
      if (!live(key)) return undefined;
      current = open(current, key);
    }
    return { state: current };
  }
}
