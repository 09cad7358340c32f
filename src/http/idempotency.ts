/**
 * `Idempotency-Key` for command routes (the IETF Idempotency-Key draft's semantics): the first
 * answer (2xx or 4xx) is stored and replayed to repeats; a repeat while the first runs gets 409
 * and never executes; another request under the same key gets 422.
 */
import { createHash } from 'node:crypto';
import type { IdempotencyStore } from '../core/index.ts';
import { IDEMPOTENCY_KEY_PATTERN } from './openapi.ts';
import { HttpProblem } from './problem.ts';

const IDEMPOTENCY_KEY = new RegExp(IDEMPOTENCY_KEY_PATTERN);
/** Headers of an answer that a replay repeats (besides its content type). */
const REPLAYED_HEADERS: readonly string[] = ['etag', 'location', 'consistency-token'];

/** An answer as stored for replays. */
export interface StoredResponse {
  status: number;
  headers: Record<string, string>;
  body: unknown;
}

/** The `Idempotency-Key` header of a request, checked: 1 to 255 visible ASCII characters. */
export function idempotencyKeyOf(header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined;
  if (typeof header !== 'string' || !IDEMPOTENCY_KEY.test(header)) {
    throw new HttpProblem(
      400,
      'invalid_idempotency_key',
      'Invalid Idempotency-Key',
      'use 1 to 255 visible ASCII characters',
    );
  }
  return header;
}

function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const keys = Object.keys(value).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
}

/**
 * What makes two requests "the same request": method, path and body (key order ignored), and
 * who sent it: another subject reusing a key gets 422, never the first subject's answer.
 * Without a subject the print is what it was before authentication existed.
 */
function fingerprint(method: string, path: string, body: unknown, subject?: string): string {
  const who = subject === undefined ? '' : `\n${JSON.stringify(subject)}`;
  return createHash('sha256')
    .update(`${method} ${path}\n${canonicalJson(body ?? null)}${who}`)
    .digest('base64url');
}

/** One request under an `Idempotency-Key`. */
export interface IdempotentRequest {
  key: string | undefined;
  method: string;
  url: string;
  payload: unknown;
  /** The authenticated subject, when there is one: part of what makes requests the same. */
  subject?: string | undefined;
  /** Executes the command and gives its answer. */
  run: () => Promise<StoredResponse>;
  /** The answer an execution that died after appending would have given, from its events. */
  recover: () => Promise<StoredResponse | undefined>;
}

/**
 * Runs a command once per Idempotency-Key: the first answer (2xx or 4xx) is stored and
 * replayed; 5xx answers (thrown) release the key so a retry can run. A claim taken over from an
 * execution that died (its lease ran out) first asks `recover` for the answer that execution
 * would have given, rebuilt from the events it appended, and runs the command only if there
 * are none. Without a key or a store the command simply runs.
 */
export async function runIdempotent(
  store: IdempotencyStore | undefined,
  leaseMs: number,
  request: IdempotentRequest,
): Promise<StoredResponse & { replayed?: boolean }> {
  const { key, run, recover } = request;
  if (key === undefined || !store) return run();
  const print = fingerprint(request.method, request.url, request.payload, request.subject);
  const claim = await store.claimIdempotencyKey(key, print, leaseMs);
  if (claim.outcome !== 'claimed' && claim.fingerprint !== print) {
    throw new HttpProblem(
      422,
      'idempotency_key_reused',
      'Idempotency key reused',
      'this Idempotency-Key was first used with another method, path or body',
    );
  }
  if (claim.outcome === 'pending') {
    throw new HttpProblem(
      409,
      'idempotency_in_progress',
      'Request in progress',
      'the first request with this Idempotency-Key is still running; retry later',
    );
  }
  if (claim.outcome === 'completed')
    return { ...(claim.response as StoredResponse), replayed: true };
  let response: StoredResponse;
  let recovered = false;
  try {
    const earlier = claim.takenOver ? await recover() : undefined;
    recovered = earlier !== undefined;
    response = earlier ?? (await run());
  } catch (error) {
    await store.releaseIdempotencyKey(key).catch(() => {});
    throw error;
  }
  const kept = Object.fromEntries(
    Object.entries(response.headers).filter(
      ([name]) => REPLAYED_HEADERS.includes(name) || name === 'content-type',
    ),
  );
  await store.completeIdempotencyKey(key, { ...response, headers: kept });
  return recovered ? { ...response, replayed: true } : response;
}
