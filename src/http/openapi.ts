/**
 * The OpenAPI 3.1 document of the plugin's routes, built as they are registered and served at
 * `/openapi.json`.
 */
import { PROBLEM_CONTENT_TYPE } from './problem.ts';
import type { JsonSchema } from './validation.ts';

/** Fastify paths (`/orders/:id`) as OpenAPI paths (`/orders/{id}`). */
const openApiPath = (url: string) => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

export const problemResponse = {
  description: 'Problem Details',
  content: { [PROBLEM_CONTENT_TYPE]: { schema: { type: 'object' } } },
};

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
            '401': problemResponse,
            '403': problemResponse,
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
      ...(this.#secured
        ? {
            components: {
              securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
            },
          }
        : {}),
    };
  }
}
