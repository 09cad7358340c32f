/**
 * Query routes: a read model answer, waiting (bounded) for the write a `Consistency-Token` names
 * and saying whether the answer is `fresh` or `stale`.
 */
import type { FastifyInstance, FastifyRequest, FastifySchema } from 'fastify';
import { decodeConsistencyToken, type ConsistencyToken } from '../core/index.ts';
import { principalOf, type Principal } from './auth.ts';
import type { RouteContext } from './context.ts';
import {
  CONSISTENCY_TOKEN_PATTERN,
  RESPONSE_HEADERS,
  headerParameter,
  parameters,
  problemResponses,
} from './openapi.ts';
import { strictObject, type JsonSchema, type PathParams, type TypedSchema } from './validation.ts';

export interface QueryRequest<Params = Record<string, string>, Query = Record<string, unknown>> {
  params: Params;
  query: Query;
  headers: FastifyRequest['headers'];
  /** Set headers on the answer (an ETag, say). */
  setHeader(name: string, value: string): void;
  /** Who asked, when the plugin has an authenticator. */
  principal?: Principal;
}

export interface QueryRoute<Params = Record<string, string>, Query = Record<string, unknown>> {
  url: string;
  summary?: string;
  params?: JsonSchema;
  querystring?: JsonSchema;
  /** The read models the answer comes from: a `Consistency-Token` waits for these. */
  projections: readonly string[];
  /**
   * The JSON Schema of the answer's body, for the OpenAPI document (answers are not filtered by
   * it). Default: any JSON value.
   */
  responseSchema?: JsonSchema;
  /** Headers the handler sets (with `setHeader`), for the OpenAPI document. */
  responseHeaders?: Record<
    string,
    { description?: string; required?: boolean; schema: JsonSchema }
  >;
  /** Returns the JSON body; throw {@link HttpProblem} for a problem (404, say). */
  handler: (request: QueryRequest<Params, Query>) => Promise<unknown>;
}

/** A query route of any params and query, as the plugin takes them. */
export type AnyQueryRoute = QueryRoute<never, never>;

/**
 * Declares a query route with its types inferred: params from the path, the query string from a
 * {@link schemaOf} schema (none: `{}`).
 */
export function queryRoute<const Url extends string, Query = Record<string, never>>(
  route: Omit<QueryRoute<PathParams<Url>, Query>, 'url' | 'querystring'> & {
    url: Url;
    querystring?: TypedSchema<Query>;
  },
): AnyQueryRoute {
  // The plugin validates params and query string against the schemas before the handler runs.
  return route as unknown as AnyQueryRoute;
}

/** Waits until read models have applied a write (`ReadModels` is one). */
export interface ConsistencyWaiter {
  waitFor(
    token: ConsistencyToken,
    projections: readonly string[],
    timeoutMs: number,
  ): Promise<boolean>;
}

export interface QueryContext extends RouteContext {
  consistency: ConsistencyWaiter | undefined;
  consistencyTimeoutMs: number;
}

export function registerQueryRoute(
  app: FastifyInstance,
  context: QueryContext,
  route: QueryRoute,
): void {
  const { consistency, consistencyTimeoutMs, instruments } = context;
  const schema: FastifySchema = {
    ...(route.params ? { params: strictObject(route.params) } : {}),
    ...(route.querystring ? { querystring: strictObject(route.querystring) } : {}),
  };
  const guard = context.auth?.guard('queries');
  app.route({
    method: 'GET',
    url: route.url,
    schema,
    ...(guard ? { onRequest: guard } : {}),
    handler: async (request, reply) => {
      const tokenHeader = request.headers['consistency-token'];
      if (typeof tokenHeader === 'string' && consistency && route.projections.length > 0) {
        const token = decodeConsistencyToken(tokenHeader);
        const fresh = await consistency.waitFor(token, route.projections, consistencyTimeoutMs);
        instruments.consistencyWaits.inc({ outcome: fresh ? 'fresh' : 'stale' });
        reply.header('consistency', fresh ? 'fresh' : 'stale');
      } else if (typeof tokenHeader === 'string') {
        // Nothing to wait for, but a malformed token is still the client's error.
        decodeConsistencyToken(tokenHeader);
        reply.header('consistency', 'fresh');
      }
      const body = await route.handler({
        params: request.params as Record<string, string>,
        query: request.query as Record<string, unknown>,
        headers: request.headers,
        setHeader: (name, value) => void reply.header(name, value),
        ...(principalOf(request) ? { principal: principalOf(request)! } : {}),
      });
      return reply.send(body);
    },
  });
  const hasParams = Object.keys((route.params?.properties as object | undefined) ?? {}).length > 0;
  context.openapi.add(
    `${context.prefix}${route.url}`,
    'GET',
    {
      summary: route.summary,
      parameters: [
        ...parameters(route.params, 'path'),
        ...parameters(route.querystring, 'query'),
        headerParameter(
          'Consistency-Token',
          CONSISTENCY_TOKEN_PATTERN,
          "A command answer's token: wait (bounded) until the read models have that write",
        ),
      ],
      responses: {
        '200': {
          description: 'The answer',
          headers: { Consistency: RESPONSE_HEADERS.consistency, ...route.responseHeaders },
          content: { 'application/json': { schema: route.responseSchema ?? {} } },
        },
        ...problemResponses([400, ...(hasParams ? [404, 414] : []), 503]),
      },
    },
    context.auth?.rolesFor('queries'),
  );
}
