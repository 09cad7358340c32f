/** Subject keys in memory: for tests and for the in-memory store. Lost when the process ends. */
import {
  ClosedError,
  validateSubject,
  type SubjectKey,
  type SubjectKeyStore,
} from '../core/index.ts';

export class MemorySubjectKeyStore implements SubjectKeyStore {
  readonly #keys = new Map<string, SubjectKey>();
  readonly #streams = new Map<string, Set<string>>();
  #closed = false;

  async readKeys(subjects: readonly string[]): Promise<Map<string, SubjectKey>> {
    this.#open();
    const found = new Map<string, SubjectKey>();
    for (const subject of subjects) {
      const key = this.#keys.get(subject);
      if (key) found.set(subject, key);
    }
    return found;
  }

  async createKey(subject: string, keyId: string, key: Uint8Array): Promise<SubjectKey> {
    this.#open();
    validateSubject(subject);
    const existing = this.#keys.get(subject);
    if (existing) return existing;
    const made: SubjectKey = {
      subject,
      keyId,
      key: Uint8Array.from(key),
      createdAt: new Date(),
      forgottenAt: undefined,
    };
    this.#keys.set(subject, made);
    return made;
  }

  async linkStream(subject: string, streamId: string): Promise<void> {
    this.#open();
    const streams = this.#streams.get(subject) ?? new Set();
    streams.add(streamId);
    this.#streams.set(subject, streams);
  }

  async subjectsOf(streamId: string): Promise<string[]> {
    this.#open();
    return [...this.#streams].filter(([, s]) => s.has(streamId)).map(([subject]) => subject);
  }

  async streamsOf(subject: string): Promise<string[]> {
    this.#open();
    return [...(this.#streams.get(subject) ?? [])].sort();
  }

  async forget(subject: string): Promise<'forgotten' | 'already_forgotten' | 'unknown'> {
    this.#open();
    const existing = this.#keys.get(subject);
    if (!existing) return 'unknown';
    if (existing.key === undefined) return 'already_forgotten';
    existing.key.fill(0);
    this.#keys.set(subject, { ...existing, key: undefined, forgottenAt: new Date() });
    return 'forgotten';
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  #open(): void {
    if (this.#closed) throw new ClosedError('MemorySubjectKeyStore');
  }
}
