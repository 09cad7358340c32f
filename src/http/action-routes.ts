/**
 * Action routes: an operation that is not a command on one stream (forgetting a data subject,
 * say), with the plugin's validation, Problem Details, request metrics, role guard and OpenAPI
 * entry. They take no `If-Match` and no `Idempotency-Key` and answer no `ETag` or
 * `Consistency-Token`: an action a client may repeat must be idempotent by itself.
 */
import type { FastifyInstance, FastifyRequest, FastifySchema } from 'fastify';
import { principalOf, type Principal, type RouteKind } from './auth.ts';
import type { RouteContext } from './context.ts';
import { parameters, problemResponses } from './openapi.ts';
import { HttpProblem } from './problem.ts';
import { strictObject, type JsonSchema, type PathParams, type TypedSchema } from './validation.ts';

/** What an action route's handler sees of the request. */
export interface ActionRequest<Params = Record<string, string>, Body = unknown> {
  params: Params;
  body: Body;
  headers: FastifyRequest['headers'];
  /** Who sent it, when the plugin has an authenticator. */
  principal?: Principal;
}

export interface ActionRoute<Params = Record<string, string>, Body = unknown> {
  method: 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  url: string;
  summary?: string;
  params?: JsonSchema;
  /** The body's schema; a route without one takes no body. */
  body?: JsonSchema;
  /** Status of a success. Default 200; 204 answers without a body. */
  successStatus?: number;
  /** The JSON Schema of a success's body, for the OpenAPI document. Default: any JSON value. */
  responseSchema?: JsonSchema;
  /**
   * The kind of route whose roles may call it (auth.ts): `commands` (default) for what a writer
   * may do, `operations` for what needs an operator.
   */
  kind?: Extract<RouteKind, 'commands' | 'operations'>;
  /** Does the work and returns the body of a success; throw for a problem. */
  handler: (request: ActionRequest<Params, Body>) => Promise<unknown>;
}

/** An action route of any params and body, as the plugin takes them. */
export type AnyActionRoute = ActionRoute<never, never>;

/**
 * Declares an action route with its types inferred: params from the path, the body from a
 * {@link schemaOf} schema (none: `undefined`).
 */
export function actionRoute<const Url extends string, Body = undefined>(
  route: Omit<ActionRoute<PathParams<Url>, Body>, 'url' | 'body'> & {
    url: Url;
    body?: TypedSchema<Body>;
  },
): AnyActionRoute {
  // The plugin validates params and body against the schemas before the handler runs.
  return route as AnyActionRoute;
}

export function registerActionRoute(
  app: FastifyInstance,
  context: RouteContext,
  route: ActionRoute,
): void {
  const body = strictObject(route.body);
  const schema: FastifySchema = {
    ...(route.params ? { params: strictObject(route.params) } : {}),
    ...(body ? { body } : {}),
  };
  const successStatus = route.successStatus ?? 200;
  const path = `${context.prefix}${route.url}`;
  const kind = route.kind ?? 'commands';
  const guard = context.auth?.guard(kind);
  app.route({
    method: route.method,
    url: route.url,
    bodyLimit: context.bodyLimit,
    schema,
    // Before the body is read or anything is done: a refused request changes nothing.
    ...(guard ? { onRequest: guard } : {}),
    handler: async (request, reply) => {
      if (!body && request.body !== undefined) {
        throw new HttpProblem(
          400,
          'unexpected_body',
          'Invalid request',
          `${route.method} ${path} takes no body`,
        );
      }
      const answer = await route.handler({
        params: request.params as Record<string, string>,
        body: request.body,
        headers: request.headers,
        ...(principalOf(request) ? { principal: principalOf(request)! } : {}),
      });
      reply.code(successStatus);
      return successStatus === 204 ? reply.send() : reply.send(answer);
    },
  });
  const hasParams = Object.keys((route.params?.properties as object | undefined) ?? {}).length > 0;
  context.openapi.add(
    path,
    route.method,
    {
      summary: route.summary,
      parameters: parameters(route.params, 'path'),
      ...(body
        ? { requestBody: { required: true, content: { 'application/json': { schema: body } } } }
        : {}),
      responses: {
        [String(successStatus)]:
          successStatus === 204
            ? { description: 'Done' }
            : {
                description: 'Done',
                content: { 'application/json': { schema: route.responseSchema ?? {} } },
              },
        ...problemResponses([400, ...(hasParams ? [404, 414] : []), 409, 413, 415, 503]),
      },
    },
    context.auth?.rolesFor(kind),
  );
}
