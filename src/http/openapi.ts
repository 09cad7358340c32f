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

  /** Adds an operation; `url` is the route's full Fastify path (prefix included). */
  add(url: string, method: string, operation: Record<string, unknown>): void {
    const path = openApiPath(url);
    this.#paths[path] = { ...this.#paths[path], [method.toLowerCase()]: operation };
  }

  toJSON(info: { title: string; version: string; description?: string }) {
    return { openapi: '3.1.0', info, paths: this.#paths };
  }
}
