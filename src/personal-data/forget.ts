/**
 * Forgetting a data subject (crypto-shredding): its key is deleted, so every sealed copy of its
 * personal fields (store, snapshots, Kafka, archives, backups taken after) is unreadable at once;
 * then the read models that copied its data in clear are redacted through their projections'
 * `forget` hooks.
 */
import {
  SubjectForgottenError,
  UnknownSubjectError,
  silentLogger,
  validateSubject,
  type Logger,
  type ProjectionDefinition,
  type ProjectionSink,
  type SubjectKeyStore,
} from '../core/index.ts';
import { ledger, ledgerMigrations, projectionContext } from '../projections/ledger.ts';

export interface ForgetSubjectOptions {
  keys: SubjectKeyStore;
  /** The read-model database; with `projections`, their `forget` hooks redact it. */
  sink?: ProjectionSink;
  projections?: readonly ProjectionDefinition[];
  logger?: Logger;
}

export interface ForgetSubjectResult {
  subject: string;
  /** The streams that held the subject's personal data. */
  streamIds: string[];
  /** The physical read-model versions whose `forget` hook ran. */
  redacted: { projection: string; version: number }[];
}

/**
 * Forgets `subject`. Throws {@link UnknownSubjectError} when the key store never held personal
 * data for it, and {@link SubjectForgottenError} when it was forgotten before; in that case the
 * read models are redacted again first, which finishes a forget that was interrupted between
 * deleting the key and redacting them.
 */
export async function forgetSubject(
  subject: string,
  options: ForgetSubjectOptions,
): Promise<ForgetSubjectResult> {
  validateSubject(subject);
  const logger = options.logger ?? silentLogger;
  const streamIds = await options.keys.streamsOf(subject);
  // The key goes first: from here on no reader (this process or any other) can open the fields,
  // so nothing redacted below can come back in clear from a projection applying new events.
  const outcome = await options.keys.forget(subject);
  if (outcome === 'unknown') throw new UnknownSubjectError(subject);
  const redacted: ForgetSubjectResult['redacted'] = [];
  const { sink, projections = [] } = options;
  const hooked = projections.filter((p) => typeof p.forget === 'function');
  if (sink && hooked.length > 0) {
    await sink.migrate('projections', ledgerMigrations);
    for (const definition of hooked) {
      for (const row of await ledger.projections(sink, definition.name)) {
        await sink.transaction(async (sql) => {
          await definition.forget!(
            { subject, streamIds },
            projectionContext(definition, row.version, sql),
          );
        });
        redacted.push({ projection: definition.name, version: row.version });
      }
    }
  }
  // Last, so that the WAL frames of the redactions above are truncated too (SQLite).
  await options.keys.scrub?.();
  logger.info(
    { subject, streams: streamIds.length, readModels: redacted.length, outcome },
    'subject forgotten',
  );
  if (outcome === 'already_forgotten') {
    throw new SubjectForgottenError(
      subject,
      `the personal data of subject '${subject}' was already forgotten (read models redacted again)`,
    );
  }
  return { subject, streamIds, redacted };
}
