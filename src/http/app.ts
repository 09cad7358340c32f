/**
 * The Fastify application a Tidemark service runs in. Server-wide behaviour lives here, not in
 * the plugin: a plugin registered in someone else's application must not decide that
 * application's 404 answer or server options.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from '../core/index.ts';
import { problem, problemMapper, sendProblem } from './problem.ts';

export interface HttpAppOptions {
  /** Largest accepted body in bytes. Default 1 MiB. */
  bodyLimit?: number;
  /** A Fastify logger (pino) for request logs. Default: none. */
  httpLogger?: object;
  /** Where 5xx answers outside the plugin's routes are logged. */
  logger?: Logger;
}

/**
 * A Fastify instance as Tidemark services use it: unknown routes and errors outside the plugin's
 * routes answer with Problem Details, request ids are UUIDs (they become correlation and
 * causation ids), and a closing server answers 503.
 */
export function createHttpApp(options: HttpAppOptions = {}): FastifyInstance {
  const app = Fastify({
    ...(options.httpLogger ? { loggerInstance: options.httpLogger as never } : {}),
    bodyLimit: options.bodyLimit ?? 1024 * 1024,
    // Clients resend on a dropped connection; keep-alive makes that rare.
    keepAliveTimeout: 10_000,
    return503OnClosing: true,
    // Request ids become correlation and causation ids: unique across processes and restarts.
    genReqId: () => crypto.randomUUID(),
  });
  const toProblem = problemMapper(undefined);
  app.setErrorHandler((error, request, reply) => {
    const body = toProblem(error, false);
    if (body.status >= 500)
      options.logger?.error({ err: error, url: request.url }, 'request failed');
    return sendProblem(reply, { ...body, instance: request.url });
  });
  app.setNotFoundHandler((request, reply) =>
    sendProblem(
      reply,
      problem(404, 'route_not_found', 'Not found', `no route for ${request.method} ${request.url}`),
    ),
  );
  return app;
}
