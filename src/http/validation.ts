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

declare const described: unique symbol;

/**
 * A JSON Schema that carries, for the type checker only, the type of the values it accepts:
 * route builders read it to type `body` and `query`. Write it with {@link schemaOf}.
 */
export type TypedSchema<T> = JsonSchema & { readonly [described]?: T };

/**
 * Declares the type a schema validates, e.g. `schemaOf<{ sku: string }>({ type: 'object', … })`.
 * The schema is what is enforced at run time; keeping the two in agreement is the author's part.
 */
export const schemaOf = <T>(schema: JsonSchema): TypedSchema<T> => schema as TypedSchema<T>;

type ParamNames<Url extends string> = Url extends `${string}:${infer Name}/${infer Rest}`
  ? Name | ParamNames<`/${Rest}`>
  : Url extends `${string}:${infer Name}`
    ? Name
    : never;

/** The params of a Fastify path: `'/orders/:orderId'` gives `{ orderId: string }`. */
export type PathParams<Url extends string> = string extends Url
  ? Record<string, string>
  : { [Name in ParamNames<Url>]: string };
