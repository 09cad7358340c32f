/**
 * The Fastify application a Tidemark service runs in. Server-wide behaviour lives here, not in
 * the plugin: a plugin registered in someone else's application must not decide that
 * application's 404 answer or server options.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from '../core/index.ts';
import type { Registry } from '../metrics.ts';
import { httpInstruments } from './context.ts';
import { problem, problemMapper, sendProblem } from './problem.ts';
import { serverErrorOptions, useServerErrors } from './server-errors.ts';

export interface HttpAppOptions {
  /** Largest accepted body in bytes. Default 1 MiB. */
  bodyLimit?: number;
  /** A Fastify logger (pino) for request logs. Default: none. */
  httpLogger?: object;
  /** Where 5xx answers outside the plugin's routes are logged. */
  logger?: Logger;
  /**
   * The longest path parameter the router accepts (decoded, in UTF-16 code units); longer ones
   * are refused before any schema sees them. Set it from the longest id your routes accept, so
   * that every id a client could create can also be addressed. Default 100 (Fastify's).
   */
  maxParamLength?: number;
  /**
   * Where to count requests that matched no route (404, 405, and the router's and parser's own
   * refusals) in `tidemark_http_requests_total`, under route `unmatched`. The plugin counts its
   * own routes; a host application's routes are its own business. Default: not counted.
   */
  metrics?: Registry;
}

/**
 * A Fastify instance as Tidemark services use it: unknown routes and errors outside the plugin's
 * routes answer with Problem Details, and so do the router's and Node's parser's own refusals
 * (server-errors.ts); a path with routes for other methods answers 405 with `Allow`; request
 * ids are UUIDs (they become correlation and causation ids); a closing server answers 503.
 */
export function createHttpApp(options: HttpAppOptions = {}): FastifyInstance {
  const maxParamLength = options.maxParamLength ?? 100;
  const app = Fastify({
    ...(options.httpLogger ? { loggerInstance: options.httpLogger as never } : {}),
    bodyLimit: options.bodyLimit ?? 1024 * 1024,
    // Clients resend on a dropped connection; keep-alive makes that rare.
    keepAliveTimeout: 10_000,
    // A closing server still answers requests already on their way over kept-alive
    // connections: with a problem document (the hook below), not Fastify's own JSON shape.
    return503OnClosing: false,
    routerOptions: { maxParamLength },
    // Router and parser errors as problem documents (server-errors.ts).
    ...serverErrorOptions(maxParamLength),
    // Request ids become correlation and causation ids: unique across processes and restarts.
    genReqId: () => crypto.randomUUID(),
  });
  const notFound = useServerErrors(app as unknown as FastifyInstance);
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  // Callback-style hooks: they run on every request, and an async one costs a promise each.
  app.addHook('onRequest', (request, reply, done) => {
    if (!closing) return done();
    // The client may send it again to another instance, or to this one once it is back.
    reply.header('connection', 'close').header('retry-after', '1');
    void sendProblem(reply, {
      ...problem(503, 'unavailable', 'Service unavailable', 'The server is shutting down.'),
      instance: request.url,
    });
  });
  const toProblem = problemMapper(undefined);
  app.setErrorHandler((error, request, reply) => {
    // No route took the request, and reading its body failed (a QUERY without a content type,
    // say): what matters is that there is no such route (404) or method (405).
    if (request.is404) return notFound(request, reply);
    const body = toProblem(error, false);
    if (body.status >= 500)
      options.logger?.error({ err: error, url: request.url }, 'request failed');
    return sendProblem(reply, { ...body, instance: request.url });
  });
  const requests = options.metrics ? httpInstruments(options.metrics).requests : undefined;
  app.addHook('onResponse', (request, reply, done) => {
    // A connection that was busy when close() began becomes idle only now; without this it
    // would hold the shutdown until its keep-alive timeout ran out.
    if (closing) app.server.closeIdleConnections();
    // Requests a route took are the plugin's (or the host's) to count. Without this, a scan of
    // unknown paths or a client calling a removed route would not show in the request rate.
    if (requests && request.routeOptions.url === undefined)
      requests.inc({ method: request.method, route: 'unmatched', status: reply.statusCode });
    done();
  });
  return app;
}
