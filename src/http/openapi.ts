/**
 * The OpenAPI 3.1 document of the plugin's routes, served at `/openapi.json`. Each operation is
 * built as its route registers, from the same JSON Schemas the route validates with (params,
 * query string, body) and the response schema it declares, plus what the plugin itself adds:
 * the headers it reads (If-Match, Idempotency-Key, X-Correlation-Id, Consistency-Token, each
 * with its format), the headers it answers with (ETag, Location, Consistency-Token, Consistency,
 * Idempotent-Replayed) and the problem documents of every status it can answer. Precise enough
 * for a contract checker to fail it: CI runs one (scripts/schemathesis.mjs).
 *
 * The patterns below are the plugin's own rules, stated once: the code that checks a header
 * uses the same expression.
 */
import { PROBLEM_CONTENT_TYPE } from './problem.ts';
import type { JsonSchema } from './validation.ts';

/** Fastify paths (`/orders/:id`) as OpenAPI paths (`/orders/{id}`). */
const openApiPath = (url: string) => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

/** `If-Match`: one strong entity tag, or `*`. */
export const IF_MATCH_PATTERN = '^(\\*|"[0-9]{1,15}")$';
/** `Idempotency-Key`: 1 to 255 visible ASCII characters. */
export const IDEMPOTENCY_KEY_PATTERN = '^[\\x21-\\x7e]{1,255}$';
/** `X-Correlation-Id`: 1 to 128 visible ASCII characters (it is stored in every event). */
export const CORRELATION_ID_PATTERN = '^[\\x21-\\x7e]{1,128}$';
/**
 * `Consistency-Token`: `1:<position>:<stream version>:<stream id, URL-encoded>` (positions and
 * versions from 1, safe integers).
 */
export const CONSISTENCY_TOKEN_PATTERN =
  "^1:[1-9][0-9]{0,14}:[1-9][0-9]{0,14}:([A-Za-z0-9_.!~*'()-]|%[0-9A-Fa-f]{2})+$";

const PROBLEM_SCHEMA: JsonSchema = {
  type: 'object',
  description: 'Problem Details (RFC 9457) with a stable `code`',
  required: ['type', 'title', 'status', 'code'],
  properties: {
    type: { type: 'string' },
    title: { type: 'string' },
    status: { type: 'integer', minimum: 400, maximum: 599 },
    code: { type: 'string', pattern: '^[a-z][a-z0-9_]*$' },
    detail: { type: 'string' },
    instance: { type: 'string' },
    errors: {
      type: 'array',
      description: 'validation_failed: each broken rule',
      items: {
        type: 'object',
        required: ['in', 'path', 'message'],
        properties: {
          in: { type: 'string' },
          path: { type: 'string' },
          message: { type: 'string' },
        },
      },
    },
    currentVersion: {
      type: 'integer',
      minimum: 0,
      description: 'wrong_expected_version: the version the stream is at',
    },
  },
};

/** What each status means, with its codes (docs/orders-api.md has the full table). */
const PROBLEMS: Record<number, string> = {
  400: 'Invalid request: validation_failed, malformed_json, unexpected_body, invalid_if_match, invalid_idempotency_key, invalid_correlation_id, invalid_consistency_token, invalid_cursor, invalid_url, malformed_request',
  404: 'Not found (order_not_found, version_not_found, …)',
  409: 'Conflict: a business rule, order_already_exists, wrong_expected_version (no If-Match), idempotency_in_progress',
  412: 'Precondition failed: If-Match names another version (wrong_expected_version, currentVersion)',
  413: 'Body over the limit (body_too_large)',
  414: 'A path segment over the limit (uri_too_long)',
  415: 'Not application/json, or a Content-Encoding (unsupported_media_type)',
  422: 'Idempotency-Key reused with another method, path or body (idempotency_key_reused)',
  503: 'Storage or read models unreachable or not built yet, or the server is closing (unavailable)',
};

export function problemResponse(status: number, headers?: Record<string, unknown>) {
  return {
    description: PROBLEMS[status] ?? 'Problem',
    ...(headers ? { headers } : {}),
    content: { [PROBLEM_CONTENT_TYPE]: { schema: { $ref: '#/components/schemas/Problem' } } },
  };
}

export const problemResponses = (statuses: readonly number[]) =>
  Object.fromEntries(statuses.map((s) => [String(s), problemResponse(s)]));

/** A request header the plugin reads. */
export const headerParameter = (name: string, pattern: string, description: string) => ({
  name,
  in: 'header',
  required: false,
  description,
  schema: { type: 'string', pattern },
});

/** Response headers the plugin sets. */
export const RESPONSE_HEADERS = {
  etag: {
    description: 'The strong entity tag of the stream version: "<version>"',
    required: true,
    schema: { type: 'string', pattern: '^"[1-9][0-9]*"$' },
  },
  consistencyToken: {
    description: 'Send it back on a query to wait until its read models have this write',
    required: true,
    schema: { type: 'string', pattern: CONSISTENCY_TOKEN_PATTERN },
  },
  location: {
    description: 'Where the created resource is read',
    required: true,
    schema: { type: 'string', format: 'uri-reference' },
  },
  idempotentReplayed: {
    description: 'A repeat of an Idempotency-Key: the stored first answer',
    required: false,
    schema: { type: 'string', enum: ['true'] },
  },
  consistency: {
    description:
      'Sent when the request had a Consistency-Token: fresh (the write is in the answer) or stale',
    required: false,
    schema: { type: 'string', enum: ['fresh', 'stale'] },
  },
} as const;

/** The parameters of a params or querystring schema. */
export const parameters = (params: JsonSchema | undefined, where: 'path' | 'query') =>
  Object.entries((params?.properties as Record<string, JsonSchema> | undefined) ?? {}).map(
    ([name, schema]) => ({
      name,
      in: where,
      required:
        where === 'path' || ((params?.required as string[] | undefined) ?? []).includes(name),
      schema,
    }),
  );

export class OpenApiDocument {
  readonly #paths: Record<string, Record<string, unknown>> = {};
  #secured = false;

  /**
   * Adds an operation; `url` is the route's full Fastify path (prefix included). `roles`: the
   * operation needs a bearer token with one of them (OpenAPI 3.1 lets a security requirement
   * of a non-OAuth scheme list role names), and may answer 401 and 403.
   */
  add(
    url: string,
    method: string,
    operation: Record<string, unknown>,
    roles?: readonly string[],
  ): void {
    const path = openApiPath(url);
    const secured = roles
      ? {
          ...operation,
          security: [{ bearer: [...roles] }],
          responses: {
            ...(operation.responses as Record<string, unknown>),
            '401': problemResponse(401),
            '403': problemResponse(403),
          },
        }
      : operation;
    if (roles) this.#secured = true;
    this.#paths[path] = { ...this.#paths[path], [method.toLowerCase()]: secured };
  }

  toJSON(info: { title: string; version: string; description?: string }) {
    return {
      openapi: '3.1.0',
      info,
      paths: this.#paths,
      components: {
        schemas: { Problem: PROBLEM_SCHEMA },
        ...(this.#secured
          ? { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } }
          : {}),
      },
    };
  }
}
