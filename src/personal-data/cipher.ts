/**
 * AES-256-GCM, the one cipher of envelope version 1 (docs/personal-data.md). A fresh random
 * 96-bit nonce per seal: with one key per subject and far fewer than 2^32 seals per key, the
 * chance of a nonce repeating stays negligible (NIST SP 800-38D, section 8.3).
 */
import { createCipheriv, createDecipheriv, randomBytes, randomUUID } from 'node:crypto';
import {
  PERSONAL_DATA_ALGORITHM,
  StorageError,
  type EncryptedField,
  type SubjectKey,
} from '../core/index.ts';

const IV_BYTES = 12;
const TAG_BYTES = 16;
export const KEY_BYTES = 32;

/** A new random key for a subject. */
export function newSubjectKey(): { keyId: string; key: Uint8Array } {
  return { keyId: randomUUID(), key: randomBytes(KEY_BYTES) };
}

/**
 * Seals a JSON value under the subject's key. The subject is the additional authenticated data,
 * so an envelope moved to another subject's name does not open.
 */
export function seal(value: unknown, key: SubjectKey & { key: Uint8Array }): EncryptedField {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key.key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(Buffer.from(key.subject, 'utf8'));
  const ciphertext = Buffer.concat([
    cipher.update(JSON.stringify(value) ?? 'null', 'utf8'),
    cipher.final(),
  ]);
  return {
    $personal: PERSONAL_DATA_ALGORITHM,
    subject: key.subject,
    keyId: key.keyId,
    iv: iv.toString('base64'),
    tag: cipher.getAuthTag().toString('base64'),
    ciphertext: ciphertext.toString('base64'),
  };
}

/**
 * Opens an envelope with its subject's key. A wrong key id, a failed tag or broken JSON is a
 * {@link StorageError}: the stored bytes are not what was sealed, which must never pass silently.
 */
export function open(field: EncryptedField, key: SubjectKey & { key: Uint8Array }): unknown {
  if (field.keyId !== key.keyId || field.subject !== key.subject) {
    throw new StorageError(
      `personal field of subject '${field.subject}' was sealed with key ${field.keyId}, not the subject's key ${key.keyId}`,
    );
  }
  try {
    const decipher = createDecipheriv('aes-256-gcm', key.key, Buffer.from(field.iv, 'base64'), {
      authTagLength: TAG_BYTES,
    });
    decipher.setAAD(Buffer.from(field.subject, 'utf8'));
    decipher.setAuthTag(Buffer.from(field.tag, 'base64'));
    const text = Buffer.concat([
      decipher.update(Buffer.from(field.ciphertext, 'base64')),
      decipher.final(),
    ]).toString('utf8');
    return JSON.parse(text);
  } catch (error) {
    throw new StorageError(
      `personal field of subject '${field.subject}' does not open with its key (tampered or corrupt)`,
      { cause: error },
    );
  }
}
