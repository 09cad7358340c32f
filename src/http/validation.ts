/**
 * Parsing and validation of the plugin's routes: JSON bodies only, validated exactly; params and
 * query strings coerced from text. Everything here is set on the plugin's own (encapsulated)
 * context, so a host application's parsers and validator compiler stay as they are.
 */
import Ajv from 'ajv';
import type { FastifyInstance } from 'fastify';
import { HttpProblem, problem, sendProblem } from './problem.ts';

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
  // JSON text is UTF-8 (RFC 8259, section 8.1): bytes that are not are refused, not replaced
  // with U+FFFD and stored.
  const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  app.addContentTypeParser(
    'application/json',
    { parseAs: 'buffer', bodyLimit },
    (_request, bytes, done) => {
      let body: string;
      try {
        body = utf8.decode(bytes as Buffer);
      } catch {
        return done(
          new HttpProblem(400, 'malformed_json', 'Malformed JSON', 'the body is not valid UTF-8'),
          undefined,
        );
      }
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
  // A compressed body would reach the JSON parser as compressed bytes: say that only identity
  // is taken (RFC 9110, 15.5.16: 415, with Accept-Encoding).
  app.addHook('onRequest', async (request, reply) => {
    const encoding = request.headers['content-encoding'];
    if (encoding === undefined || /^\s*identity\s*$/i.test(encoding)) return;
    const hasBody =
      request.headers['transfer-encoding'] !== undefined ||
      (request.headers['content-length'] ?? '0') !== '0';
    if (!hasBody) return;
    return sendProblem(reply.header('accept-encoding', 'identity'), {
      ...problem(
        415,
        'unsupported_media_type',
        'Unsupported media type',
        `Content-Encoding ${encoding} is not taken: send the body uncompressed`,
      ),
      instance: request.url,
    });
  });
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
