/**
 * `tidemark/http`: a Fastify plugin that turns command and query definitions into routes.
 *
 * What it does for every route, so applications only describe their commands and queries:
 * - JSON only (415 otherwise), a body limit (413), strict JSON Schema validation of bodies,
 *   params and query strings (unknown fields rejected, no type coercion of bodies);
 * - errors as Problem Details (RFC 9457) with a stable `code`;
 * - `If-Match: "<version>"` pins the expected version (412 on mismatch); answers carry
 *   `ETag: "<version>"` and a `Consistency-Token`;
 * - `Idempotency-Key`: the first answer (2xx or 4xx) is stored and replayed to repeats;
 *   a repeat while the first runs gets 409 and never executes; another request under the same
 *   key gets 422; the events carry the key in their metadata, so a repeat after an execution
 *   that died before storing its answer answers from those events instead of running again;
 * - queries that send a `Consistency-Token` wait (bounded) for their read models and answer
 *   `Consistency: fresh` or `stale`;
 * - /health, /ready, /metrics and /openapi.json.
 */
import { createHash } from 'node:crypto';
import Ajv from 'ajv';
import type { FastifyInstance, FastifyReply, FastifyRequest, FastifySchema } from 'fastify';
import {
  ANY,
  STREAM_EXISTS,
  decodeConsistencyToken,
  encodeConsistencyToken,
  isTidemarkError,
  type Command,
  type CommandHandler,
  type CommandResult,
  type ConsistencyToken,
  type Event,
  type ExpectedVersion,
  type IdempotencyStore,
  type Logger,
} from '../core/index.ts';
import { SpanKind, endSpan, startSpan, traceIdOf } from '../tracing.ts';
import { METRICS_CONTENT_TYPE, MetricsRegistry } from './metrics.ts';
import {
  HttpProblem,
  PROBLEM_CONTENT_TYPE,
  problem,
  problemForFrameworkError,
  problemForTidemarkError,
  type Problem,
} from './problem.ts';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyHandler = CommandHandler<any, any, any>;
export type JsonSchema = Record<string, unknown>;

/** What a command route's functions see of the request. */
export interface CommandRequest<Params = Record<string, string>, Body = unknown> {
  params: Params;
  body: Body;
  /** The time the request arrived, ISO 8601: the command's clock. */
  at: string;
  headers: FastifyRequest['headers'];
}

export interface CommandRoute<Params = Record<string, string>, Body = unknown> {
  method: 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  url: string;
  summary?: string;
  params?: JsonSchema;
  /** The body's schema; a route without one takes no body. */
  body?: JsonSchema;
  /** A body is optional (missing means `{}`). Default false when `body` is given. */
  bodyOptional?: boolean;
  handler: AnyHandler;
  streamId: (request: CommandRequest<Params, Body>) => string;
  command: (request: CommandRequest<Params, Body>) => Command;
  /** Answer 404 when the stream has no events. Default true. */
  requireStream?: boolean;
  /** Status of a success. Default 200. */
  successStatus?: number;
  /** Body of a success. */
  response: (
    result: CommandResult<unknown, Event>,
    request: CommandRequest<Params, Body>,
  ) => unknown;
  /** `Location` of a success (for creations). */
  location?: (
    result: CommandResult<unknown, Event>,
    request: CommandRequest<Params, Body>,
  ) => string;
}

export interface QueryRequest<Params = Record<string, string>, Query = Record<string, unknown>> {
  params: Params;
  query: Query;
  headers: FastifyRequest['headers'];
  /** Set headers on the answer (an ETag, say). */
  setHeader(name: string, value: string): void;
}

export interface QueryRoute<Params = Record<string, string>, Query = Record<string, unknown>> {
  url: string;
  summary?: string;
  params?: JsonSchema;
  querystring?: JsonSchema;
  /** The read models the answer comes from: a `Consistency-Token` waits for these. */
  projections: readonly string[];
  /** Returns the JSON body; throw {@link HttpProblem} for a problem (404, say). */
  handler: (request: QueryRequest<Params, Query>) => Promise<unknown>;
}

export interface ConsistencyWaiter {
  waitFor(
    token: ConsistencyToken,
    projections: readonly string[],
    timeoutMs: number,
  ): Promise<boolean>;
}

export interface ReadinessCheck {
  /** Resolves with details when ready; throws (or resolves `ready: false`) when not. */
  (): Promise<{ ready: boolean; details?: Record<string, unknown> }>;
}

export interface TidemarkHttpOptions {
  commands?: readonly CommandRoute<never, never>[];
  queries?: readonly QueryRoute<never, never>[];
  /** Where idempotency records live (the event store, usually). Without it the header is ignored. */
  idempotency?: IdempotencyStore;
  /** How long a first execution may hold its key before a repeat may take it over. Default 30 s. */
  idempotencyLeaseMs?: number;
  consistency?: ConsistencyWaiter;
  /** Longest a query waits for a token. Default 5000 ms. */
  consistencyTimeoutMs?: number;
  /** Largest accepted body in bytes. Default 1 MiB. */
  bodyLimit?: number;
  metrics?: MetricsRegistry;
  readiness?: ReadinessCheck;
  openapi?: { title: string; version: string; description?: string };
  /** Turns an error into a problem before the defaults (return undefined to pass). */
  mapError?: (error: unknown) => Problem | undefined;
  logger?: Logger;
}

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;
const REPLAYED_HEADERS = ['etag', 'location', 'consistency-token'] as const;

interface StoredResponse {
  status: number;
  headers: Record<string, string>;
  body: unknown;
}

/** Parses `If-Match` into a pinned expected version. `*` means the stream must exist. */
export function parseIfMatch(header: string | undefined): ExpectedVersion | undefined {
  if (header === undefined) return undefined;
  const value = header.trim();
  if (value === '*') return STREAM_EXISTS;
  const match = /^"(\d{1,15})"$/.exec(value);
  if (!match) {
    throw new HttpProblem(
      400,
      'invalid_if_match',
      'Invalid If-Match',
      'If-Match must be one strong entity tag, "<version>" (or *)',
    );
  }
  return Number(match[1]);
}

function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const keys = Object.keys(value).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
}

function fingerprint(method: string, path: string, body: unknown): string {
  return createHash('sha256')
    .update(`${method} ${path}\n${canonicalJson(body ?? null)}`)
    .digest('base64url');
}

/** Fastify paths (`/orders/:id`) as OpenAPI paths (`/orders/{id}`). */
const openApiPath = (url: string) => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

function strictObject(schema: JsonSchema | undefined): JsonSchema | undefined {
  if (!schema) return undefined;
  return schema.type === 'object' && schema.additionalProperties === undefined
    ? { ...schema, additionalProperties: false }
    : schema;
}

async function tidemarkHttpPlugin(
  app: FastifyInstance,
  options: TidemarkHttpOptions,
): Promise<void> {
  const metrics = options.metrics ?? new MetricsRegistry();
  const bodyLimit = options.bodyLimit ?? 1024 * 1024;
  const consistencyTimeoutMs = options.consistencyTimeoutMs ?? 5000;
  const leaseMs = options.idempotencyLeaseMs ?? 30_000;
  const logger = options.logger;

  const requests = metrics.counter(
    'tidemark_http_requests_total',
    'HTTP requests answered, by route and status.',
  );
  const commandSeconds = metrics.histogram(
    'tidemark_command_duration_seconds',
    'Time to handle a command (load, decide, append), by command route.',
  );
  const conflicts = metrics.counter(
    'tidemark_command_conflicts_total',
    'Commands refused because the stream moved (409/412 wrong_expected_version).',
  );
  const consistencyWaits = metrics.counter(
    'tidemark_consistency_waits_total',
    'Queries that waited for a consistency token, by outcome (fresh or stale).',
  );

  // Bodies are validated exactly: no coercion ("5" is not 5), unknown fields are errors.
  // Params and query strings arrive as text, so they are coerced to the schema's types.
  const strictAjv = new Ajv.default({
    allErrors: true,
    coerceTypes: false,
    removeAdditional: false,
    useDefaults: false,
  });
  const coercingAjv = new Ajv.default({
    allErrors: true,
    coerceTypes: true,
    removeAdditional: false,
    useDefaults: true,
  });
  app.setValidatorCompiler(({ schema, httpPart }) =>
    (httpPart === 'body' ? strictAjv : coercingAjv).compile(schema as JsonSchema),
  );

  // JSON only. An empty body is "no body" (commands without a body need no Content-Type).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(
    'application/json',
    { parseAs: 'string', bodyLimit },
    (_request, text, done) => {
      const body = text as string;
      if (body.trim() === '') return done(null, undefined);
      try {
        done(null, JSON.parse(body));
      } catch (error) {
        done(
          new HttpProblem(400, 'malformed_json', 'Malformed JSON', (error as Error).message),
          undefined,
        );
      }
    },
  );

  const send = (reply: FastifyReply, body: Problem) =>
    reply.code(body.status).header('content-type', PROBLEM_CONTENT_TYPE).send(body);

  const toProblem = (error: unknown, pinned: boolean): Problem => {
    const mapped = options.mapError?.(error);
    if (mapped) return mapped;
    if (error instanceof HttpProblem) return error.problem;
    if (isTidemarkError(error)) return problemForTidemarkError(error, pinned);
    return problemForFrameworkError(error) ?? problem(500, 'internal_error', 'Internal error');
  };

  app.setErrorHandler((error, request, reply) => {
    const body = toProblem(error, request.headers['if-match'] !== undefined);
    if (body.status >= 500) logger?.error({ err: error, url: request.url }, 'request failed');
    return send(reply, { ...body, instance: request.url });
  });
  app.setNotFoundHandler((request, reply) =>
    send(
      reply,
      problem(404, 'route_not_found', 'Not found', `no route for ${request.method} ${request.url}`),
    ),
  );
  app.addHook('onResponse', async (request, reply) => {
    requests.inc({
      route: request.routeOptions.url ?? 'unknown',
      method: request.method,
      status: reply.statusCode,
    });
  });

  const openapiPaths: Record<string, Record<string, unknown>> = {};
  const document = (url: string, method: string, operation: Record<string, unknown>) => {
    const path = openApiPath(url);
    openapiPaths[path] = { ...openapiPaths[path], [method.toLowerCase()]: operation };
  };
  const problemResponse = {
    description: 'Problem Details',
    content: { [PROBLEM_CONTENT_TYPE]: { schema: { type: 'object' } } },
  };
  const parameters = (params: JsonSchema | undefined, where: 'path' | 'query') =>
    Object.entries((params?.properties as Record<string, JsonSchema> | undefined) ?? {}).map(
      ([name, schema]) => ({
        name,
        in: where,
        required:
          where === 'path' || ((params?.required as string[] | undefined) ?? []).includes(name),
        schema,
      }),
    );

  /**
   * Runs a command once per Idempotency-Key: the first answer (2xx or 4xx) is stored and
   * replayed; 5xx answers release the key so a retry can run. A claim taken over from an
   * execution that died (its lease ran out) first asks `recover` for the answer that execution
   * would have given, rebuilt from the events it appended, and runs the command only if there
   * are none.
   */
  const idempotent = async (
    key: string | undefined,
    method: string,
    url: string,
    payload: unknown,
    run: () => Promise<StoredResponse>,
    recover: () => Promise<StoredResponse | undefined>,
  ): Promise<StoredResponse & { replayed?: boolean }> => {
    const store = options.idempotency;
    if (key === undefined || !store) return run();
    const print = fingerprint(method, url, payload);
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
        ([name]) =>
          (REPLAYED_HEADERS as readonly string[]).includes(name) || name === 'content-type',
      ),
    );
    await store.completeIdempotencyKey(key, { ...response, headers: kept });
    return recovered ? { ...response, replayed: true } : response;
  };

  for (const route of (options.commands ?? []) as CommandRoute[]) {
    const body = strictObject(route.body);
    const schema: FastifySchema = {
      ...(route.params ? { params: strictObject(route.params) } : {}),
      ...(body && !route.bodyOptional ? { body } : {}),
    };
    const requireStream = route.requireStream ?? true;
    const successStatus = route.successStatus ?? 200;
    const validateOptionalBody = body && route.bodyOptional ? strictAjv.compile(body) : undefined;

    app.route({
      method: route.method,
      url: route.url,
      bodyLimit,
      schema,
      handler: async (request, reply) => {
        const started = performance.now();
        let payload: unknown = request.body;
        if (!body && payload !== undefined) {
          throw new HttpProblem(
            400,
            'unexpected_body',
            'Invalid request',
            `${route.method} ${route.url} takes no body`,
          );
        }
        if (validateOptionalBody) {
          payload ??= {};
          if (!validateOptionalBody(payload)) {
            throw Object.assign(new Error('invalid body'), {
              validation: validateOptionalBody.errors,
              validationContext: 'body',
            });
          }
        }
        const pinned = parseIfMatch(request.headers['if-match']);
        const key = request.headers['idempotency-key'];
        if (key !== undefined && (typeof key !== 'string' || !IDEMPOTENCY_KEY.test(key))) {
          throw new HttpProblem(
            400,
            'invalid_idempotency_key',
            'Invalid Idempotency-Key',
            'use 1 to 255 visible ASCII characters',
          );
        }
        const commandRequest: CommandRequest = {
          params: request.params as Record<string, string>,
          body: payload,
          at: new Date().toISOString(),
          headers: request.headers,
        };

        const correlationId =
          (request.headers['x-correlation-id'] as string | undefined) ?? request.id;
        const trace = startSpan(
          `${route.method} ${route.url}`,
          SpanKind.SERVER,
          { traceparent: request.headers.traceparent, tracestate: request.headers.tracestate },
          { 'http.request.method': route.method, 'http.route': route.url },
        );
        const success = (
          result: CommandResult<unknown, Event>,
          streamId: string,
        ): StoredResponse => {
          const headers: Record<string, string> = { etag: `"${result.nextExpectedVersion}"` };
          if (result.position !== undefined) {
            headers['consistency-token'] = encodeConsistencyToken({
              position: result.position,
              streamId,
              streamVersion: result.nextExpectedVersion,
            });
          }
          if (route.location) headers.location = route.location(result, commandRequest);
          return { status: successStatus, headers, body: route.response(result, commandRequest) };
        };
        const run = async (): Promise<StoredResponse> => {
          try {
            const streamId = route.streamId(commandRequest);
            const command = route.command(commandRequest);
            const expectedVersion: ExpectedVersion | undefined =
              pinned ?? (requireStream ? STREAM_EXISTS : ANY);
            const result = await route.handler.handle(streamId, command, {
              expectedVersion,
              metadata: {
                correlationId,
                causationId: request.id,
                traceparent: trace.traceparent,
                ...(trace.tracestate ? { tracestate: trace.tracestate } : {}),
                // Lets a retry find these events if this process dies before the answer is stored.
                ...(key !== undefined && options.idempotency ? { idempotencyKey: key } : {}),
              },
            });
            return success(result, streamId);
          } catch (error) {
            const answer = toProblem(error, pinned !== undefined);
            if (answer.code === 'wrong_expected_version') conflicts.inc({ route: route.url });
            if (answer.status >= 500) throw error;
            return {
              status: answer.status,
              headers: { 'content-type': PROBLEM_CONTENT_TYPE },
              body: { ...answer, instance: request.url },
            };
          }
        };

        let response: StoredResponse & { replayed?: boolean };
        try {
          response = await idempotent(key, request.method, request.url, payload, run, async () => {
            const streamId = route.streamId(commandRequest);
            const earlier = await route.handler.findExecution(streamId, 'idempotencyKey', key!);
            return earlier ? success(earlier, streamId) : undefined;
          });
        } catch (error) {
          endSpan(trace.span, error);
          throw error;
        }
        endSpan(trace.span);
        if (response.replayed) reply.header('idempotent-replayed', 'true');
        else
          commandSeconds.observe((performance.now() - started) / 1000, {
            route: `${route.method} ${route.url}`,
          });
        logger?.debug(
          {
            command: `${route.method} ${route.url}`,
            status: response.status,
            correlationId,
            traceId: traceIdOf(trace.traceparent),
            ms: Math.round((performance.now() - started) * 100) / 100,
          },
          'command handled',
        );
        return reply.code(response.status).headers(response.headers).send(response.body);
      },
    });

    document(route.url, route.method, {
      summary: route.summary,
      parameters: [
        ...parameters(route.params, 'path'),
        {
          name: 'If-Match',
          in: 'header',
          required: false,
          schema: { type: 'string' },
          description: '"<version>": fail with 412 unless the stream is at it',
        },
        {
          name: 'Idempotency-Key',
          in: 'header',
          required: false,
          schema: { type: 'string', maxLength: 255 },
        },
      ],
      ...(body
        ? {
            requestBody: {
              required: !route.bodyOptional,
              content: { 'application/json': { schema: body } },
            },
          }
        : {}),
      responses: {
        [String(successStatus)]: {
          description: 'Done',
          headers: {
            ETag: { schema: { type: 'string' } },
            'Consistency-Token': { schema: { type: 'string' } },
          },
          content: { 'application/json': { schema: { type: 'object' } } },
        },
        '400': problemResponse,
        '404': problemResponse,
        '409': problemResponse,
        '412': problemResponse,
        '413': problemResponse,
        '415': problemResponse,
        '422': problemResponse,
      },
    });
  }

  for (const route of (options.queries ?? []) as QueryRoute[]) {
    const schema: FastifySchema = {
      ...(route.params ? { params: strictObject(route.params) } : {}),
      ...(route.querystring ? { querystring: strictObject(route.querystring) } : {}),
    };
    app.route({
      method: 'GET',
      url: route.url,
      schema,
      handler: async (request, reply) => {
        const tokenHeader = request.headers['consistency-token'];
        if (
          typeof tokenHeader === 'string' &&
          options.consistency &&
          route.projections.length > 0
        ) {
          const token = decodeConsistencyToken(tokenHeader);
          const fresh = await options.consistency.waitFor(
            token,
            route.projections,
            consistencyTimeoutMs,
          );
          consistencyWaits.inc({ outcome: fresh ? 'fresh' : 'stale' });
          reply.header('consistency', fresh ? 'fresh' : 'stale');
        } else if (typeof tokenHeader === 'string') {
          decodeConsistencyToken(tokenHeader);
          reply.header('consistency', 'fresh');
        }
        const body = await route.handler({
          params: request.params as Record<string, string>,
          query: request.query as Record<string, unknown>,
          headers: request.headers,
          setHeader: (name, value) => void reply.header(name, value),
        });
        return reply.send(body);
      },
    });
    document(route.url, 'GET', {
      summary: route.summary,
      parameters: [
        ...parameters(route.params, 'path'),
        ...parameters(route.querystring, 'query'),
        { name: 'Consistency-Token', in: 'header', required: false, schema: { type: 'string' } },
      ],
      responses: {
        '200': {
          description: 'OK',
          content: { 'application/json': { schema: { type: 'object' } } },
        },
        '400': problemResponse,
        '404': problemResponse,
      },
    });
  }

  app.get('/health', async () => ({ status: 'ok' }));
  app.get('/ready', async (_request, reply) => {
    if (!options.readiness) return { ready: true };
    try {
      const report = await options.readiness();
      return reply.code(report.ready ? 200 : 503).send(report);
    } catch (error) {
      return reply.code(503).send({ ready: false, error: (error as Error).message });
    }
  });
  app.get('/metrics', async (_request, reply) =>
    reply.header('content-type', METRICS_CONTENT_TYPE).send(await metrics.render()),
  );
  if (options.openapi) {
    const openapi = {
      openapi: '3.1.0',
      info: options.openapi,
      paths: openapiPaths,
    };
    app.get('/openapi.json', async () => openapi);
  }
}

// The plugin configures the application it is registered on (error handler, parsers), so it
// must not be encapsulated: Fastify's skip-override marker does that without a dependency.
Object.assign(tidemarkHttpPlugin, {
  [Symbol.for('skip-override')]: true,
  [Symbol.for('fastify.display-name')]: 'tidemark-http',
});

export const tidemarkHttp = tidemarkHttpPlugin;
