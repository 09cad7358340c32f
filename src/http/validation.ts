/**
 * Parsing and validation of the plugin's routes: JSON bodies only, validated exactly; params and
 * query strings coerced from text. Everything here is set on the plugin's own (encapsulated)
 * context, so a host application's parsers and validator compiler stay as they are.
 */
import Ajv from 'ajv';
import type { FastifyInstance } from 'fastify';
import { HttpProblem } from './problem.ts';

export type JsonSchema = Record<string, unknown>;

/** The two validators: bodies exactly (no coercion, no defaults), params and queries coerced. */
export interface Validators {
  /** Compiles a body schema the way routes validate bodies (for optional bodies). */
  body: Ajv.default;
  text: Ajv.default;
}

export function createValidators(): Validators {
  return {
    // Bodies are validated exactly: no coercion ("5" is not 5), unknown fields are errors.
    body: new Ajv.default({
      allErrors: true,
      coerceTypes: false,
      removeAdditional: false,
      useDefaults: false,
    }),
    // Params and query strings arrive as text, so they are coerced to the schema's types.
    text: new Ajv.default({
      allErrors: true,
      coerceTypes: true,
      removeAdditional: false,
      useDefaults: true,
    }),
  };
}

/** An object schema that says nothing about other fields rejects them. */
export function strictObject(schema: JsonSchema | undefined): JsonSchema | undefined {
  if (!schema) return undefined;
  return schema.type === 'object' && schema.additionalProperties === undefined
    ? { ...schema, additionalProperties: false }
    : schema;
}

/**
 * Sets the context's validator compiler and makes JSON its only content type. Call it on the
 * plugin's own context: on a host application it would replace the host's parsers.
 */
export function useStrictJson(app: FastifyInstance, validators: Validators, bodyLimit: number) {
  app.setValidatorCompiler(({ schema, httpPart }) =>
    (httpPart === 'body' ? validators.body : validators.text).compile(schema as JsonSchema),
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
}
