/**
 * Command routes: a request becomes a command on one stream, handled with the expected version
 * `If-Match` pins, once per `Idempotency-Key`, and answered with `ETag` and `Consistency-Token`.
 */
import type { FastifyInstance, FastifyRequest, FastifySchema } from 'fastify';
import {
  ANY,
  STREAM_EXISTS,
  encodeConsistencyToken,
  isTidemarkError,
  type Command,
  type CommandHandler,
  type CommandResult,
  type Event,
  type ExpectedVersion,
} from '../core/index.ts';
import { SpanKind, endSpan, startSpan, traceIdOf } from '../tracing.ts';
import { principalOf, type Principal } from './auth.ts';
import type { CommandContext } from './context.ts';
import { idempotencyKeyOf, runIdempotent, type StoredResponse } from './idempotency.ts';
import {
  CORRELATION_ID_PATTERN,
  IDEMPOTENCY_KEY_PATTERN,
  IF_MATCH_PATTERN,
  RESPONSE_HEADERS,
  headerParameter,
  parameters,
  problemResponse,
} from './openapi.ts';
import { HttpProblem, PROBLEM_CONTENT_TYPE, problem } from './problem.ts';
import { strictObject, type JsonSchema, type PathParams, type TypedSchema } from './validation.ts';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyHandler = CommandHandler<any, any, any>;

/** What a command route's functions see of the request. */
export interface CommandRequest<Params = Record<string, string>, Body = unknown> {
  params: Params;
  body: Body;
  /** The time the request arrived, ISO 8601: the command's clock. */
  at: string;
  headers: FastifyRequest['headers'];
  /** Who sent it, when the plugin has an authenticator (its `subject` becomes `actor`). */
  principal?: Principal;
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
  /**
   * The JSON Schema of a success's body, for the OpenAPI document (answers are not filtered by
   * it). Default: any JSON value.
   */
  responseSchema?: JsonSchema;
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

/** A command route of any params and body, as the plugin takes them. */
export type AnyCommandRoute = CommandRoute<never, never>;

/**
 * Declares a command route with its types inferred: params from the path (`/orders/:orderId`
 * gives `{ orderId: string }`), the body from a {@link schemaOf} schema (none: `undefined`).
 */
export function commandRoute<const Url extends string, Body = undefined>(
  route: Omit<CommandRoute<PathParams<Url>, Body>, 'url' | 'body'> & {
    url: Url;
    body?: TypedSchema<Body>;
  },
): AnyCommandRoute {
  // The plugin validates params and body against the schemas before these functions run.
  return route as AnyCommandRoute;
}

/**
 * A version no stream ever reaches: what an entity tag pins when it names no version (`"0"`,
 * `"01"`), so that it fails like any other version that is not the current one.
 */
const NO_VERSION = Number.MAX_SAFE_INTEGER;

/**
 * Parses `If-Match` into a pinned expected version. `*` means the stream must exist. Entity tags
 * are compared strongly, that is exactly (RFC 9110, 8.8.3.2): `"01"` is not the tag `"1"` of
 * version 1, and neither it nor `"0"` is the tag of any version, so they never match.
 */
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
  const version = Number(match[1]);
  return version >= 1 && String(version) === match[1] ? version : NO_VERSION;
}

/** `X-Correlation-Id`: stored in every event of the command, so it is bounded. */
const CORRELATION_ID = new RegExp(CORRELATION_ID_PATTERN);

function correlationIdOf(header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined;
  if (typeof header !== 'string' || !CORRELATION_ID.test(header)) {
    throw new HttpProblem(
      400,
      'invalid_correlation_id',
      'Invalid X-Correlation-Id',
      'use 1 to 128 visible ASCII characters',
    );
  }
  return header;
}

export function registerCommandRoute(
  app: FastifyInstance,
  context: CommandContext,
  route: CommandRoute,
): void {
  const { instruments, toProblem, logger } = context;
  const body = strictObject(route.body);
  const schema: FastifySchema = {
    ...(route.params ? { params: strictObject(route.params) } : {}),
    ...(body && !route.bodyOptional ? { body } : {}),
  };
  const requireStream = route.requireStream ?? true;
  const successStatus = route.successStatus ?? 200;
  const validateOptionalBody =
    body && route.bodyOptional ? context.validators.body.compile(body) : undefined;
  // Names in metrics, spans and logs carry the full path, prefix included.
  const path = `${context.prefix}${route.url}`;
  const name = `${route.method} ${path}`;

  const guard = context.auth?.guard('commands');
  app.route({
    method: route.method,
    url: route.url,
    bodyLimit: context.bodyLimit,
    schema,
    // Runs before the body is validated or anything is read or written: a refused request
    // changes nothing and learns nothing about the order.
    ...(guard ? { onRequest: guard } : {}),
    handler: async (request, reply) => {
      const started = performance.now();
      let payload: unknown = request.body;
      if (!body && payload !== undefined) {
        throw new HttpProblem(400, 'unexpected_body', 'Invalid request', `${name} takes no body`);
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
      const key = idempotencyKeyOf(request.headers['idempotency-key']);
      const principal = principalOf(request);
      const commandRequest: CommandRequest = {
        params: request.params as Record<string, string>,
        body: payload,
        at: new Date().toISOString(),
        headers: request.headers,
        ...(principal ? { principal } : {}),
      };

      const correlationId = correlationIdOf(request.headers['x-correlation-id']) ?? request.id;
      const trace = startSpan(
        name,
        SpanKind.SERVER,
        { traceparent: request.headers.traceparent, tracestate: request.headers.tracestate },
        { 'http.request.method': route.method, 'http.route': path },
      );
      const success = (result: CommandResult<unknown, Event>, streamId: string): StoredResponse => {
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
              ...(principal ? { actor: principal.subject } : {}),
              traceparent: trace.traceparent,
              ...(trace.tracestate ? { tracestate: trace.tracestate } : {}),
              // Lets a retry find these events if this process dies before the answer is stored.
              ...(key !== undefined && context.idempotency ? { idempotencyKey: key } : {}),
            },
          });
          return success(result, streamId);
        } catch (error) {
          const answer =
            pinned !== undefined && !requireStream && isTidemarkError(error, 'stream_not_found')
              ? // A create that sent If-Match: the tag names a version of a stream that does not
                // exist, so the precondition fails (RFC 9110, 13.1.1); without it the request
                // would have succeeded, so the precondition decides the answer.
                problem(
                  412,
                  'wrong_expected_version',
                  'Precondition failed',
                  'If-Match names a version, but there is none yet',
                  { currentVersion: 0 },
                )
              : toProblem(error, pinned !== undefined);
          if (answer.code === 'wrong_expected_version') instruments.conflicts.inc({ route: path });
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
        response = await runIdempotent(context.idempotency, context.idempotencyLeaseMs, {
          key,
          method: request.method,
          url: request.url,
          payload,
          subject: principal?.subject,
          run,
          recover: async () => {
            const streamId = route.streamId(commandRequest);
            const earlier = await route.handler.findExecution(streamId, 'idempotencyKey', key!);
            return earlier ? success(earlier, streamId) : undefined;
          },
        });
      } catch (error) {
        endSpan(trace.span, error);
        throw error;
      }
      endSpan(trace.span);
      if (response.replayed) reply.header('idempotent-replayed', 'true');
      else
        instruments.commandSeconds.observe({ route: name }, (performance.now() - started) / 1000);
      logger?.debug(
        {
          command: name,
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

  const hasParams = Object.keys((route.params?.properties as object | undefined) ?? {}).length > 0;
  const replayed = { 'Idempotent-Replayed': RESPONSE_HEADERS.idempotentReplayed };
  context.openapi.add(
    path,
    route.method,
    {
      summary: route.summary,
      parameters: [
        ...parameters(route.params, 'path'),
        headerParameter(
          'If-Match',
          IF_MATCH_PATTERN,
          '"<version>": fail with 412 unless the stream is at that version (compared exactly); *: the stream must exist',
        ),
        ...(context.idempotency
          ? [
              headerParameter(
                'Idempotency-Key',
                IDEMPOTENCY_KEY_PATTERN,
                'A repeat gets the first answer (keys are global)',
              ),
            ]
          : []),
        headerParameter(
          'X-Correlation-Id',
          CORRELATION_ID_PATTERN,
          "Stored in the events' metadata (default: the request id)",
        ),
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
          description: 'Done: the stream version after the command',
          headers: {
            ETag: RESPONSE_HEADERS.etag,
            'Consistency-Token': RESPONSE_HEADERS.consistencyToken,
            ...(route.location ? { Location: RESPONSE_HEADERS.location } : {}),
            ...replayed,
          },
          content: { 'application/json': { schema: route.responseSchema ?? {} } },
        },
        ...Object.fromEntries(
          [
            400,
            ...(requireStream ? [404] : []),
            409,
            412,
            413,
            ...(hasParams ? [414] : []),
            415,
            ...(context.idempotency ? [422] : []),
            503,
          ].map((status) => [String(status), problemResponse(status, replayed)]),
        ),
      },
    },
    context.auth?.rolesFor('commands'),
  );
}
