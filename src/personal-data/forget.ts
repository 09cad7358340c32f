/**
 * Forgetting a data subject (crypto-shredding): its key is deleted, so every sealed copy of its
 * personal fields (store, snapshots, Kafka, archives, backups taken after) is unreadable at once;
 * then the read models that copied its data in clear are redacted through their projections'
 * `forget` hooks.
 */
import {
  InvalidArgumentError,
  SubjectForgottenError,
  UnknownSubjectError,
  silentLogger,
  validateSubject,
  type ConsistencyToken,
  type EventStore,
  type Logger,
  type ProjectionDefinition,
  type ProjectionSink,
  type SubjectKeyStore,
} from '../core/index.ts';
import { ledger, ledgerMigrations, projectionContext } from '../projections/ledger.ts';
import type { Storage } from '../storage.ts';

export interface ForgetSubjectOptions {
  keys: SubjectKeyStore;
  /** The read-model database; with `projections`, their `forget` hooks redact it. */
  sink?: ProjectionSink;
  projections?: readonly ProjectionDefinition[];
  /**
   * Closes the one race of forgetting: a projection batch that opened the subject's fields just
   * before the key was deleted, and commits just after the redaction, would leave them in clear.
   * With it, forgetting waits (after deleting the key, before redacting) until the hooked
   * projections have applied each of the subject's streams as it was then, for at most
   * `timeoutMs` (default 5000). `waitFor` is `ReadModels.waitFor`. A wait that times out (a
   * projection stopped or far behind) is reported as `settled: false`, logged, and the
   * redaction runs anyway; forget again once the projection caught up.
   */
  settle?: {
    store: Pick<EventStore, 'listStreams'>;
    waitFor(
      token: ConsistencyToken,
      projections: readonly string[],
      timeoutMs: number,
    ): Promise<boolean>;
    timeoutMs?: number;
  };
  logger?: Logger;
}

export interface ForgetSubjectResult {
  subject: string;
  /** The streams that held the subject's personal data. */
  streamIds: string[];
  /** The physical read-model versions whose `forget` hook ran. */
  redacted: { projection: string; version: number }[];
  /**
   * With `settle`: whether the projections had applied the subject's streams before the
   * redaction (`false`: the wait timed out). Absent without `settle`.
   */
  settled?: boolean;
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
  let settled: boolean | undefined;
  if (options.settle && hooked.length > 0) {
    settled = await settle(
      options.settle,
      streamIds,
      hooked.map((p) => p.name),
    );
    if (!settled) {
      logger.warn(
        { subject, streams: streamIds.length },
        "forgetting: projections had not applied the subject's streams in time; redacting anyway (forget again once they caught up)",
      );
    }
  }
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
  return { subject, streamIds, redacted, ...(settled === undefined ? {} : { settled }) };
}

/** What {@link forgetter} forgets with. */
export interface ForgetterParts {
  /** The key store, the read-model database and the store (for the streams' versions now). */
  storage: Pick<Storage, 'store' | 'sink' | 'subjectKeys'>;
  /** Waits for the projections (`ReadModels`: local runners or the ledger). */
  readModels: Pick<NonNullable<ForgetSubjectOptions['settle']>, 'waitFor'>;
  /** The projections whose `forget` hooks redact the read models. */
  projections: readonly ProjectionDefinition[];
  logger?: Logger;
}

/**
 * {@link forgetSubject} wired the way a service and the CLI use it: every hooked projection
 * redacted, after the wait that closes the race with projections in flight (`settle`).
 */
export function forgetter(
  parts: ForgetterParts,
): (subject: string) => Promise<ForgetSubjectResult> {
  const { storage, readModels } = parts;
  const options: ForgetSubjectOptions = {
    keys: storage.subjectKeys,
    sink: storage.sink,
    projections: parts.projections,
    settle: {
      store: storage.store,
      waitFor: (token, projections, timeoutMs) => readModels.waitFor(token, projections, timeoutMs),
    },
    ...(parts.logger ? { logger: parts.logger } : {}),
  };
  return (subject) => forgetSubject(subject, options);
}

/**
 * Waits until `projections` have applied every stream in `streamIds` up to its version now.
 * Any batch that opened the subject's fields with the key read before it was deleted holds
 * events at or below those versions, so once they are applied, no such batch is in flight.
 */
async function settle(
  options: NonNullable<ForgetSubjectOptions['settle']>,
  streamIds: readonly string[],
  projections: readonly string[],
): Promise<boolean> {
  const timeoutMs = options.timeoutMs ?? 5000;
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 0) {
    throw new InvalidArgumentError('settle.timeoutMs', 'must be a non-negative integer');
  }
  const deadline = Date.now() + timeoutMs;
  for (const streamId of streamIds) {
    const [info] = await options.store.listStreams({ prefix: streamId, limit: 1 });
    if (!info || info.streamId !== streamId) continue;
    const token = { streamId, streamVersion: info.version, position: info.position };
    const left = Math.max(0, deadline - Date.now());
    if (!(await options.waitFor(token, projections, left))) return false;
  }
  return true;
}
