/**
 * Action routes: an operation that is not a command on one stream (forgetting a data subject,
 * say), with the plugin's validation, Problem Details, request metrics and OpenAPI entry. They
 * take no `If-Match` and no `Idempotency-Key` and answer no `ETag` or `Consistency-Token`: an
 * action a client may repeat must be idempotent by itself.
 */
import type { FastifyInstance, FastifyRequest, FastifySchema } from 'fastify';
import type { RouteContext } from './context.ts';
import { parameters, problemResponse } from './openapi.ts';
import { HttpProblem } from './problem.ts';
import { strictObject, type JsonSchema, type PathParams, type TypedSchema } from './validation.ts';

/** What an action route's handler sees of the request. */
export interface ActionRequest<Params = Record<string, string>, Body = unknown> {
  params: Params;
  body: Body;
  headers: FastifyRequest['headers'];
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
  app.route({
    method: route.method,
    url: route.url,
    bodyLimit: context.bodyLimit,
    schema,
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
      });
      reply.code(successStatus);
      return successStatus === 204 ? reply.send() : reply.send(answer);
    },
  });
  context.openapi.add(path, route.method, {
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
              content: { 'application/json': { schema: { type: 'object' } } },
            },
      '400': problemResponse,
      '404': problemResponse,
      '409': problemResponse,
      '413': problemResponse,
      '415': problemResponse,
    },
  });
}
