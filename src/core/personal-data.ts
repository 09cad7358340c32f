/**
 * Personal data: which event fields hold it, whose it is, and the ports that keep it
 * forgettable (crypto-shredding). Declarations and value shapes only: the cipher and the key
 * stores live outside the core (`src/personal-data`, and each storage adapter).
 *
 * The model (docs/personal-data.md): each declared field is stored as an {@link EncryptedField}
 * sealed with its subject's key; forgetting the subject deletes the key, and every copy of the
 * field (store, snapshots, Kafka, archives) becomes unreadable at once. A field whose key is gone
 * reads as a {@link RedactedField}.
 */
import { InvalidArgumentError } from './errors.ts';
import type { StoredEvent } from './messages.ts';

/** The one algorithm of envelope version 1. */
export const PERSONAL_DATA_ALGORITHM = 'aes-256-gcm';

/**
 * A personal field as stored (and published to Kafka): the field's JSON value, encrypted with
 * AES-256-GCM under the subject's key. The format is a public contract (docs/personal-data.md).
 */
export interface EncryptedField {
  /** Envelope version 1: `aes-256-gcm`. */
  readonly $personal: typeof PERSONAL_DATA_ALGORITHM;
  /** The data subject whose key sealed it (also the cipher's additional authenticated data). */
  readonly subject: string;
  /** The id of that key (a subject has one key in its life; the id tells keys apart anyway). */
  readonly keyId: string;
  /** The 12-byte nonce, base64. */
  readonly iv: string;
  /** The 16-byte authentication tag, base64. */
  readonly tag: string;
  /** The UTF-8 JSON text of the field's value, encrypted, base64. */
  readonly ciphertext: string;
}

/** What a personal field reads as once its subject was forgotten. */
export interface RedactedField {
  readonly $personal: 'redacted';
  readonly subject: string;
}

export function isEncryptedField(value: unknown): value is EncryptedField {
  const v = value as Partial<EncryptedField> | null;
  return (
    typeof v === 'object' &&
    v !== null &&
    v.$personal === PERSONAL_DATA_ALGORITHM &&
    typeof v.subject === 'string' &&
    typeof v.keyId === 'string' &&
    typeof v.iv === 'string' &&
    typeof v.tag === 'string' &&
    typeof v.ciphertext === 'string'
  );
}

export function isRedactedField(value: unknown): value is RedactedField {
  const v = value as Partial<RedactedField> | null;
  return typeof v === 'object' && v !== null && v.$personal === 'redacted';
}

/** The value a forgotten field reads as. */
export function redactedField(subject: string): RedactedField {
  return { $personal: 'redacted', subject };
}

/** How one event type holds personal data. */
export interface PersonalDataRule {
  /**
   * Whose data it is: the name of a top-level field of the event's data holding the subject's
   * id (`'customerId'`), or a function of the data. The subject id itself is stored in clear:
   * make it a pseudonymous id, never a name or an email.
   */
  readonly subject: string | ((data: Record<string, unknown>) => unknown);
  /** Top-level fields of the event's data that are personal. Absent or `undefined`: skipped. */
  readonly fields: readonly string[];
}

/** Per event type, how it holds personal data. Types not listed hold none. */
export type PersonalDataSpec = Readonly<Record<string, PersonalDataRule>>;

/** Longest subject id accepted. */
export const MAX_SUBJECT_LENGTH = 256;

/** Checks a subject id; throws {@link InvalidArgumentError} naming `argument`. */
export function validateSubject(subject: unknown, argument = 'subject'): asserts subject is string {
  if (typeof subject !== 'string' || subject.length === 0 || subject.length > MAX_SUBJECT_LENGTH) {
    throw new InvalidArgumentError(
      argument,
      `must be a non-empty string of at most ${MAX_SUBJECT_LENGTH} characters`,
    );
  }
}

/** A checked {@link PersonalDataSpec}: what the protecting store consults per event. */
export class PersonalData {
  readonly #rules = new Map<
    string,
    {
      subject: (data: Record<string, unknown>) => unknown;
      fields: readonly string[];
      field?: string;
    }
  >();

  constructor(spec: PersonalDataSpec) {
    if (spec === null || typeof spec !== 'object') {
      throw new InvalidArgumentError('personalData', 'must map event types to rules');
    }
    for (const [type, rule] of Object.entries(spec)) {
      const where = `personalData.${type}`;
      if (!rule || !Array.isArray(rule.fields) || rule.fields.length === 0) {
        throw new InvalidArgumentError(`${where}.fields`, 'must list at least one field');
      }
      for (const field of rule.fields) {
        if (typeof field !== 'string' || field === '') {
          throw new InvalidArgumentError(`${where}.fields`, 'field names are non-empty strings');
        }
      }
      const subject = rule.subject;
      if (typeof subject === 'string') {
        if (subject === '' || rule.fields.includes(subject)) {
          throw new InvalidArgumentError(
            `${where}.subject`,
            'must name a field that is not itself personal (the subject id is stored in clear)',
          );
        }
        this.#rules.set(type, {
          subject: (data) => data[subject],
          fields: rule.fields,
          field: subject,
        });
      } else if (typeof subject === 'function') {
        this.#rules.set(type, { subject, fields: rule.fields });
      } else {
        throw new InvalidArgumentError(`${where}.subject`, 'must be a field name or a function');
      }
    }
  }

  /** True when no event type holds personal data. */
  get isEmpty(): boolean {
    return this.#rules.size === 0;
  }

  /** The event types that hold personal data. */
  get types(): string[] {
    return [...this.#rules.keys()];
  }

  /**
   * The personal fields present in `data` of an event of `type`, with their subject; `undefined`
   * when the event carries none. Throws {@link InvalidArgumentError} (naming `argument`) when it
   * carries some but no valid subject.
   */
  personalFields(
    type: string,
    data: unknown,
    argument = 'data',
  ): { subject: string; fields: string[] } | undefined {
    const rule = this.#rules.get(type);
    if (!rule || data === null || typeof data !== 'object' || Array.isArray(data)) return undefined;
    const record = data as Record<string, unknown>;
    const fields = rule.fields.filter((f) => record[f] !== undefined);
    if (fields.length === 0) return undefined;
    const subject = rule.subject(record);
    validateSubject(subject, rule.field ? `${argument}.${rule.field}` : `${argument} (subject)`);
    return { subject, fields };
  }
}

/** Checks a personal data declaration once, and returns it ready for the store. */
export function definePersonalData(spec: PersonalDataSpec): PersonalData {
  return new PersonalData(spec);
}

/** A subject's key as the key store holds it. */
export interface SubjectKey {
  readonly subject: string;
  readonly keyId: string;
  /** The 32-byte AES-256 key; `undefined` once the subject was forgotten (a tombstone). */
  readonly key: Uint8Array | undefined;
  readonly createdAt: Date;
  readonly forgottenAt: Date | undefined;
}

/**
 * Where subject keys live (a table in the store by default; an in-memory one for tests; a KMS
 * could implement it). Keys are made by the caller (random bytes); the store only keeps them.
 * A forgotten subject keeps a tombstone without key material, so that new personal data for
 * it is refused instead of being sealed under a fresh key.
 */
export interface SubjectKeyStore {
  /** The keys (and tombstones) of these subjects; subjects never seen are absent. */
  readKeys(subjects: readonly string[]): Promise<Map<string, SubjectKey>>;
  /**
   * Stores `key` for `subject` unless the subject already has a row (a key or a tombstone), and
   * returns the row that is there now: two writers racing agree on one key.
   */
  createKey(subject: string, keyId: string, key: Uint8Array): Promise<SubjectKey>;
  /** Records that `streamId` holds personal data of `subject` (idempotent). */
  linkStream(subject: string, streamId: string): Promise<void>;
  /** The subjects whose personal data `streamId` holds. */
  subjectsOf(streamId: string): Promise<string[]>;
  /** The streams that hold personal data of `subject`. */
  streamsOf(subject: string): Promise<string[]>;
  /**
   * Deletes the subject's key material and keeps a tombstone. `unknown`: no row;
   * `already_forgotten`: a tombstone was there.
   */
  forget(subject: string): Promise<'forgotten' | 'already_forgotten' | 'unknown'>;
  /**
   * Optional: erases what the database still keeps of deleted rows (SQLite: the WAL's old
   * frames; PostgreSQL: dead row versions, as far as VACUUM goes). `forgetSubject` calls it last.
   */
  scrub?(): Promise<void>;
  close?(): Promise<void>;
}

/** Keys loaded for a batch of events: subject → key (absent key material: forgotten). */
export type KeyRing = ReadonlyMap<string, SubjectKey>;

/**
 * Turns stored events (personal fields encrypted) into readable ones: the plaintext while the
 * subject's key exists, a {@link RedactedField} after. Projection appliers call it at
 * consumption, before upcasting, for store-fed and Kafka-fed projections alike.
 */
export interface PersonalDataReader {
  /** Loads the keys `events` need, in one read (none when no event holds an encrypted field). */
  loadKeys(events: readonly StoredEvent[]): Promise<KeyRing>;
  /** `events` with their encrypted fields opened with `keys` (keys missing there are loaded). */
  reveal<T extends StoredEvent>(events: readonly T[], keys?: KeyRing): Promise<T[]>;
}
