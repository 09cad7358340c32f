/**
 * The answers a whole application gives before (or instead of) any route: requests the router
 * cannot take (bad percent-encoding, an over-long path segment), requests Node's parser cannot
 * read (oversized headers, an unknown method, malformed framing), paths that exist but not for
 * the method (405 with `Allow`) and paths that do not exist (404). All are Problem Details with
 * documented codes
 * (docs/orders-api.md); none echoes the request line back.
 *
 * These are server-wide settings (Fastify's `frameworkErrors`, `clientErrorHandler`, the root
 * not-found handler), so they belong to the application, set by {@link createHttpApp}; the
 * encapsulated plugin never sets them on a host's application.
 */
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { PROBLEM_CONTENT_TYPE, problem, sendProblem, type Problem } from './problem.ts';

/** Fastify's `frameworkErrors`: errors of the router, before any route or hook runs. */
export function frameworkErrorProblem(error: { code?: string }, maxParamLength: number): Problem {
  switch (error.code) {
    case 'FST_ERR_BAD_URL':
      return problem(
        400,
        'invalid_url',
        'Invalid URL',
        'the path is not valid percent-encoded UTF-8',
      );
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return problem(
        414,
        'uri_too_long',
        'URI too long',
        `a path segment is longer than ${maxParamLength} characters`,
      );
    default:
      return problem(500, 'internal_error', 'Internal error');
  }
}

/**
 * The answer to a request Node's HTTP parser refused (Fastify's `clientErrorHandler`): written
 * on the socket as it is, since no request object exists, then the connection is closed.
 */
export function clientErrorResponse(error: { code?: string }): Problem | undefined {
  switch (error.code) {
    case 'ECONNRESET':
      return undefined;
    case 'HPE_HEADER_OVERFLOW':
      return problem(
        431,
        'headers_too_large',
        'Request header fields too large',
        'the request line and headers are over the size limit',
      );
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return problem(408, 'request_timeout', 'Request timeout', 'the request took too long');
    case 'HPE_INVALID_METHOD':
      // RFC 9110, 15.6.2: a method the server does not recognise is 501.
      return problem(
        501,
        'method_not_implemented',
        'Method not implemented',
        'the request method is not one this server knows',
      );
    default:
      return problem(
        400,
        'malformed_request',
        'Malformed request',
        'the request is not valid HTTP/1.1',
      );
  }
}

function writeClientError(error: NodeJS.ErrnoException, socket: Socket): void {
  const body = socket.destroyed ? undefined : clientErrorResponse(error);
  if (body && socket.writable) {
    const text = JSON.stringify(body);
    socket.write(
      `HTTP/1.1 ${body.status} ${STATUS_CODES[body.status] ?? ''}\r\n` +
        `Content-Type: ${PROBLEM_CONTENT_TYPE}\r\nContent-Length: ${Buffer.byteLength(text)}\r\n` +
        `Connection: close\r\n\r\n${text}`,
    );
  }
  socket.destroy(error);
}

/** The Fastify options that route these errors here. */
export function serverErrorOptions(maxParamLength: number) {
  return {
    frameworkErrors: (error: { code?: string }, _request: FastifyRequest, reply: FastifyReply) =>
      void sendProblem(reply, frameworkErrorProblem(error, maxParamLength)),
    clientErrorHandler: writeClientError,
  };
}

/** A path pattern of the router (`/orders/:id`, `/files/*`) as a regular expression. */
function patternOf(url: string): RegExp {
  const source = url
    .split('/')
    .map((segment) =>
      segment === '*'
        ? '.*'
        : segment.startsWith(':')
          ? '[^/]+'
          : segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'),
    )
    .join('/');
  return new RegExp(`^${source}/?$`);
}

/**
 * Not-found answers: 404 `route_not_found`, or 405 `method_not_allowed` with `Allow` when the
 * path has routes for other methods. Call on the application itself;
 * returns the not-found answer, for errors of requests no route took (a body the 404 route
 * could not parse, say).
 */
export function useServerErrors(
  app: FastifyInstance,
): (request: FastifyRequest, reply: FastifyReply) => FastifyReply {
  const routes: { pattern: RegExp; methods: Set<string> }[] = [];
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    const pattern = patternOf(route.url ?? route.path);
    const known = routes.find((r) => r.pattern.source === pattern.source);
    if (known) for (const m of methods) known.methods.add(m);
    else routes.push({ pattern, methods: new Set(methods) });
  });
  const notFound = (request: FastifyRequest, reply: FastifyReply) => {
    const path = request.url.split('?')[0]!;
    const allowed = new Set<string>();
    for (const route of routes) {
      if (route.pattern.test(path)) for (const m of route.methods) allowed.add(m);
    }
    if (allowed.size > 0 && !allowed.has(request.method)) {
      // RFC 9110, 15.5.6: a 405 lists the methods the resource has.
      const allow = [...allowed].sort().join(', ');
      return sendProblem(
        reply.header('allow', allow),
        problem(
          405,
          'method_not_allowed',
          'Method not allowed',
          `${request.method} is not allowed here; allowed: ${allow}`,
        ),
      );
    }
    return sendProblem(
      reply,
      problem(404, 'route_not_found', 'Not found', `no route for ${request.method} ${path}`),
    );
  };
  app.setNotFoundHandler(notFound);

  return notFound;
}
