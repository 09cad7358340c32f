/**
 * Problem Details (RFC 9457) and the mapping from errors to them. This is the one place where
 * Tidemark error codes meet HTTP status codes.
 */
import type { FastifyReply } from 'fastify';
import { isTidemarkError, type TidemarkError } from '../core/index.ts';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/** A problem document. `code` is a stable, documented, snake_case identifier. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  code: string;
  detail?: string;
  instance?: string;
  [extension: string]: unknown;
}

/** `type` is a URN per code: stable, and no promise of a web page behind it. */
export const problemType = (code: string) => `urn:tidemark:problem:${code}`;

export function problem(
  status: number,
  code: string,
  title: string,
  detail?: string,
  extensions: Record<string, unknown> = {},
): Problem {
  return {
    type: problemType(code),
    title,
    status,
    code,
    ...(detail ? { detail } : {}),
    ...extensions,
  };
}

/** Throw from a route to answer with a problem document. */
export class HttpProblem extends Error {
  readonly problem: Problem;
  constructor(
    status: number,
    code: string,
    title: string,
    detail?: string,
    extensions?: Record<string, unknown>,
  ) {
    super(detail ?? title);
    this.name = 'HttpProblem';
    this.problem = problem(status, code, title, detail, extensions);
  }
}

/**
 * The problem for a Tidemark error. `pinned`: the client sent `If-Match`, so a version
 * conflict is a failed precondition (412) rather than a conflict (409).
 */
export function problemForTidemarkError(error: TidemarkError, pinned: boolean): Problem {
  switch (error.code) {
    case 'invalid_argument':
    case 'serialization_failed':
    case 'invalid_consistency_token':
      return problem(400, error.code, 'Invalid request', error.message);
    case 'wrong_expected_version':
      return pinned
        ? problem(412, error.code, 'Precondition failed', error.message, versions(error))
        : problem(409, error.code, 'Conflict', error.message, versions(error));
    case 'duplicate_event_id':
      return problem(409, error.code, 'Conflict', error.message);
    case 'stream_archived':
      return problem(409, error.code, 'Stream archived', error.message);
    case 'stream_not_found':
      return problem(404, error.code, 'Not found', error.message);
    case 'business_rule_violated': {
      const rule = (error as TidemarkError & { rule: string; details?: Record<string, unknown> })
        .rule;
      const details = (error as { details?: Record<string, unknown> }).details;
      return problem(
        409,
        rule,
        'Business rule violated',
        error.message,
        details ? { details } : {},
      );
    }
    case 'subject_forgotten':
      return problem(409, error.code, 'Personal data forgotten', error.message);
    case 'unknown_subject':
      return problem(404, error.code, 'Not found', error.message);
    case 'unauthenticated':
      return problem(401, error.code, 'Unauthenticated', error.message, {
        reason: (error as TidemarkError & { reason: string }).reason,
      });
    case 'forbidden':
      return problem(403, error.code, 'Forbidden', error.message, {
        required: (error as TidemarkError & { required: readonly string[] }).required,
      });
    case 'closed':
    case 'unavailable':
      return problem(503, error.code, 'Service unavailable', error.message);
    default:
      return problem(500, error.code, 'Internal error', error.message);
  }
}

function versions(error: TidemarkError): Record<string, unknown> {
  const { actual } = error as TidemarkError & { actual?: number };
  return actual === undefined ? {} : { currentVersion: actual };
}

/** Fastify's own errors (parsing, limits, content types, validation). */
export function problemForFrameworkError(error: unknown): Problem | undefined {
  const e = error as {
    code?: string;
    statusCode?: number;
    message?: string;
    validation?: {
      instancePath?: string;
      message?: string;
      keyword?: string;
      params?: Record<string, unknown>;
    }[];
    validationContext?: string;
  };
  if (e?.validation) {
    const where = e.validationContext ?? 'request';
    const errors = e.validation.map((v) => {
      const extra =
        v.keyword === 'additionalProperties' ? ` '${String(v.params?.additionalProperty)}'` : '';
      return {
        in: where,
        path: v.instancePath || '/',
        message: `${v.message ?? 'is invalid'}${extra}`,
      };
    });
    const first = errors[0];
    return problem(
      400,
      'validation_failed',
      'Invalid request',
      first ? `${where}${first.path === '/' ? '' : first.path} ${first.message}` : undefined,
      { errors },
    );
  }
  switch (e?.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return problem(
        415,
        'unsupported_media_type',
        'Unsupported media type',
        'send the body as application/json',
      );
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return problem(413, 'body_too_large', 'Body too large', e.message);
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return problem(400, 'invalid_content_length', 'Invalid request', e.message);
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return problem(400, 'malformed_json', 'Malformed JSON', e.message);
  }
  if (typeof e?.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return problem(e.statusCode, 'bad_request', 'Bad request', e.message);
  }
  return undefined;
}

/** Turns any error into a problem; `pinned`: the request sent `If-Match`. */
export type ProblemMapper = (error: unknown, pinned: boolean) => Problem;

/**
 * The mapping the plugin uses: the application's `mapError` first, then thrown problems, Tidemark
 * errors, Fastify's own errors, and 500 for anything else.
 */
export function problemMapper(
  mapError: ((error: unknown) => Problem | undefined) | undefined,
): ProblemMapper {
  return (error, pinned) => {
    const mapped = mapError?.(error);
    if (mapped) return mapped;
    if (error instanceof HttpProblem) return error.problem;
    if (isTidemarkError(error)) return problemForTidemarkError(error, pinned);
    return problemForFrameworkError(error) ?? problem(500, 'internal_error', 'Internal error');
  };
}

/** Answers with a problem document. */
export const sendProblem = (reply: FastifyReply, body: Problem) =>
  reply.code(body.status).header('content-type', PROBLEM_CONTENT_TYPE).send(body);
