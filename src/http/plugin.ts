/**
 * `tidemark/http`: a Fastify plugin that turns command and query definitions into routes.
 *
 * What it does for every route, so applications only describe their commands and queries:
 * - JSON only (415 otherwise), a body limit (413), strict JSON Schema validation of bodies,
 *   params and query strings (unknown fields rejected, no type coercion of bodies);
 * - errors as Problem Details (RFC 9457) with a stable `code`;
 * - `If-Match: "<version>"` pins the expected version (412 on mismatch); answers carry
 *   `ETag: "<version>"` and a `Consistency-Token` (command-routes.ts);
 * - `Idempotency-Key` (idempotency.ts);
 * - queries that send a `Consistency-Token` wait (bounded) for their read models and answer
 *   `Consistency: fresh` or `stale` (query-routes.ts);
 * - action routes, for operations that are not a command on one stream (action-routes.ts);
 * - /health, /ready, /metrics and /openapi.json (operational-routes.ts).
 *
 * The plugin is encapsulated, as Fastify plugins should be: its parser, validator compiler and
 * error handler apply to its own routes only, so registering it (under a prefix or not) changes
 * nothing for the host application's routes. What only a whole application should decide (its
 * 404 answer, server options) is set by {@link createHttpApp} (app.ts) instead.
 */
import type { FastifyInstance } from 'fastify';
import type { IdempotencyStore, Logger } from '../core/index.ts';
import { registerActionRoute, type ActionRoute, type AnyActionRoute } from './action-routes.ts';
import type { Authenticator } from './auth.ts';
import { registerCommandRoute, type AnyCommandRoute, type CommandRoute } from './command-routes.ts';
import { httpInstruments } from './context.ts';
import { createMetricsRegistry, type Registry } from '../metrics.ts';
import { OpenApiDocument } from './openapi.ts';
import { registerOperationalRoutes, type ReadinessCheck } from './operational-routes.ts';
import { problemMapper, sendProblem, type Problem } from './problem.ts';
import {
  registerQueryRoute,
  type AnyQueryRoute,
  type ConsistencyWaiter,
  type QueryRoute,
} from './query-routes.ts';
import { createValidators, useStrictJson } from './validation.ts';

export interface TidemarkHttpOptions {
  /** Command routes, declared with {@link commandRoute}. */
  commands?: readonly AnyCommandRoute[];
  /** Query routes, declared with {@link queryRoute}. */
  queries?: readonly AnyQueryRoute[];
  /** Action routes (operations that are not a command on one stream), declared with {@link actionRoute}. */
  actions?: readonly AnyActionRoute[];
  /** Where idempotency records live (the event store, usually). Without it the header is ignored. */
  idempotency?: IdempotencyStore;
  /** How long a first execution may hold its key before a repeat may take it over. Default 30 s. */
  idempotencyLeaseMs?: number;
  consistency?: ConsistencyWaiter;
  /** Longest a query waits for a token. Default 5000 ms. */
  consistencyTimeoutMs?: number;
  /** Largest accepted body in bytes. Default 1 MiB. */
  bodyLimit?: number;
  /**
   * The prom-client registry the plugin's metrics go to, and `/metrics` serves. Default: one of
   * its own, with prom-client's process metrics.
   */
  metrics?: Registry;
  readiness?: ReadinessCheck;
  openapi?: { title: string; version: string; description?: string };
  /** Turns an error into a problem before the defaults (return undefined to pass). */
  mapError?: (error: unknown) => Problem | undefined;
  logger?: Logger;
  /**
   * Who may call the routes (auth.ts): queries, commands and operational reads are guarded by
   * the roles it maps to them. Without it every route is open, and the plugin says so at warn
   * level when it registers (an application that authenticates elsewhere may want that).
   */
  auth?: Authenticator;
}

async function tidemarkHttpPlugin(
  app: FastifyInstance,
  options: TidemarkHttpOptions,
): Promise<void> {
  const metrics = options.metrics ?? createMetricsRegistry();
  const bodyLimit = options.bodyLimit ?? 1024 * 1024;
  const logger = options.logger;
  const validators = createValidators();
  const toProblem = problemMapper(options.mapError);
  const instruments = httpInstruments(metrics);
  if (!options.auth) {
    logger?.warn(
      { auth: 'none' },
      'no authentication configured: commands and queries are open to anyone',
    );
  }
  const context = {
    prefix: app.prefix,
    auth: options.auth,
    bodyLimit,
    validators,
    toProblem,
    instruments,
    openapi: new OpenApiDocument(),
    logger,
  };

  // All of these are set on this plugin's context, so they apply to its routes only.
  useStrictJson(app, validators, bodyLimit);
  app.setErrorHandler((error, request, reply) => {
    const body = toProblem(error, request.headers['if-match'] !== undefined);
    if (body.status >= 500) logger?.error({ err: error, url: request.url }, 'request failed');
    return sendProblem(reply, { ...body, instance: request.url });
  });
  app.addHook('onResponse', async (request, reply) => {
    instruments.requests.inc({
      method: request.method,
      route: request.routeOptions.url ?? 'unknown',
      status: reply.statusCode,
    });
  });

  const commandContext = {
    ...context,
    idempotency: options.idempotency,
    idempotencyLeaseMs: options.idempotencyLeaseMs ?? 30_000,
  };
  for (const route of (options.commands ?? []) as CommandRoute[])
    registerCommandRoute(app, commandContext, route);

  const queryContext = {
    ...context,
    consistency: options.consistency,
    consistencyTimeoutMs: options.consistencyTimeoutMs ?? 5000,
  };
  for (const route of (options.queries ?? []) as QueryRoute[])
    registerQueryRoute(app, queryContext, route);

  for (const route of (options.actions ?? []) as ActionRoute[])
    registerActionRoute(app, context, route);

  registerOperationalRoutes(app, {
    metrics,
    readiness: options.readiness,
    guard: options.auth?.guard('operationalReads'),
    openapi: options.openapi ? { document: context.openapi, info: options.openapi } : undefined,
  });
}

// Encapsulated on purpose (no skip-override marker): only the name is set, for Fastify's
// plugin tree and error messages.
Object.assign(tidemarkHttpPlugin, { [Symbol.for('fastify.display-name')]: 'tidemark-http' });

/** The Tidemark HTTP plugin: `app.register(tidemarkHttp, { commands, queries, ... })`. */
export const tidemarkHttp = tidemarkHttpPlugin;
