/**
 * The admin console: a small web app at `/admin` (built ahead of time, served from this package,
 * nothing from the network) and the JSON API it calls under `/admin/api`. The API is thin over
 * the library's operations (projectionStatus, listParked, retryParked, skipParked,
 * rebuildProjection, the store's reads, the relay's status): it writes no SQL of its own.
 *
 * Register it with a prefix (`{ prefix: '/admin' }`). It is an encapsulated plugin like
 * `tidemarkHttp`: its parser, validators and error handler apply to its own routes only.
 *
 * Access: the page itself (HTML, script, styles) holds no data and is served to anyone who can
 * reach it; every API route runs `authorize` first (the operator role). Without `authorize` the
 * plugin refuses to register unless `openForLocalDevelopment` is set, and then it logs that the
 * console is open.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  InvalidArgumentError,
  type Decider,
  type EventStore,
  type Feed,
  type FeedKind,
  type Logger,
  type ProjectionDefinition,
  type ProjectionSink,
  type ProjectionStatus,
  type Upcasters,
} from '../../index.ts';
import type { RelayInspection, RelayStatus } from '../../kafka/relay.ts';
import { problemMapper, sendProblem } from '../problem.ts';
import { createValidators, useStrictJson } from '../validation.ts';
import { adminProblem } from './problems.ts';
import { RebuildJobs } from './rebuilds.ts';
import { registerAdminRoutes } from './routes.ts';

/** Where the console reads a relay from: the relay of this process, or its progress in Kafka. */
export type AdminRelaySource =
  | { readonly status: () => Promise<RelayStatus> }
  | { readonly inspect: () => Promise<RelayInspection> };

/** How the console folds a stream's state: the decider of the streams whose ids start with `prefix`. */
export interface AdminStreamKind {
  prefix: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- any state, any event union
  decider: Pick<Decider<any, never, any>, 'initialState' | 'evolve'>;
}

export interface AdminConsoleOptions {
  store: EventStore;
  /** The read-model database (the projections' ledger lives there). */
  sink: ProjectionSink;
  /** The application's projections (retries apply them; rebuilds build them). */
  projections: readonly ProjectionDefinition[];
  /** The feeds this process can reach, for lag and rebuilds (`storeFeed(store)`, a Kafka feed). */
  feeds: Partial<Record<FeedKind, Feed>>;
  upcasters?: Upcasters;
  /** The process's projection host, when it runs one: adds whether each version runs here. */
  host?: { status(): Promise<ProjectionStatus[]> };
  /** Kafka mode: the relay to show. */
  relay?: AdminRelaySource;
  /** Deciders for the stream browser's state at a version (take them from the command handlers). */
  streams?: readonly AdminStreamKind[];
  /**
   * Runs first on every API route (an `onRequest` hook): answer 401/403 there (the operator role). Required unless
   * `openForLocalDevelopment` is set.
   */
  authorize?: (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>;
  /** No access check at all: for a developer's own machine only (logged at start). */
  openForLocalDevelopment?: boolean;
  /** How long a console rebuild keeps the old version's tables after the switch-over. Default 10 000 ms. */
  rebuildDropGraceMs?: number;
  /** How often the page polls, in ms (the lag chart's resolution). Default 2000. */
  refreshMs?: number;
  logger?: Logger;
}

export { ADMIN_PROBLEM_CODES, type AdminProblemCode } from './problems.ts';

const ASSETS = new URL('./assets/', import.meta.url);

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

async function loadAsset(name: string, type: string): Promise<Asset> {
  const body = await readFile(new URL(name, ASSETS));
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
  return { body, type, etag };
}

// The page loads only what this plugin serves; nothing inline, nothing from elsewhere.
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

async function adminConsolePlugin(app: FastifyInstance, options: AdminConsoleOptions) {
  if (!options.authorize && options.openForLocalDevelopment !== true) {
    throw new InvalidArgumentError(
      'authorize',
      'the admin console needs an authorize check (the operator role), or openForLocalDevelopment: true on a developer machine',
    );
  }
  if (!options.authorize) {
    options.logger?.warn(
      { prefix: app.prefix },
      'admin console open without authentication (local development)',
    );
  }
  const refreshMs = options.refreshMs ?? 2000;
  const validators = createValidators();
  const toProblem = problemMapper(undefined);
  useStrictJson(app, validators, 64 * 1024);
  app.setErrorHandler((error, request, reply) => {
    const body = toProblem(error, false);
    if (body.status >= 500)
      options.logger?.error({ err: error, url: request.url }, 'admin request failed');
    return sendProblem(reply, { ...body, instance: request.url });
  });

  const [script, styles] = await Promise.all([
    loadAsset('console.js', 'text/javascript; charset=utf-8'),
    loadAsset('console.css', 'text/css; charset=utf-8'),
  ]);
  const prefix = app.prefix;
  const page = Buffer.from(
    `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Tidemark admin</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="${prefix}/assets/console.css?v=${styles.etag.slice(1, 9)}">
</head>
<body data-api="${prefix}/api" data-refresh-ms="${refreshMs}">
<div id="app"></div>
<script type="module" src="${prefix}/assets/console.js?v=${script.etag.slice(1, 9)}"></script>
</body>
</html>
`,
  );
  const html: Asset = { body: page, type: 'text/html; charset=utf-8', etag: '' };
  const serve = (asset: Asset) => async (request: FastifyRequest, reply: FastifyReply) => {
    reply
      .header('content-type', asset.type)
      .header('cache-control', 'no-cache')
      .header('x-content-type-options', 'nosniff')
      .header('content-security-policy', CSP);
    if (asset.etag) {
      reply.header('etag', asset.etag);
      if (request.headers['if-none-match'] === asset.etag) return reply.code(304).send();
    }
    return reply.send(asset.body);
  };
  app.get('/', serve(html));
  app.get('/assets/console.js', serve(script));
  app.get('/assets/console.css', serve(styles));

  const ops = {
    sink: options.sink,
    feeds: options.feeds,
    ...(options.upcasters ? { upcasters: options.upcasters } : {}),
    // Parked events are kept sealed: a retry opens their personal fields with the store's keys.
    ...(options.store.personalData ? { personalData: options.store.personalData } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
  };
  const rebuilds = new RebuildJobs(ops, options.rebuildDropGraceMs ?? 10_000, options.logger);
  app.addHook('onClose', () => rebuilds.close());

  await app.register(
    async (api) => {
      // First thing, before the body is read or validated: a caller without the role learns nothing.
      if (options.authorize) api.addHook('onRequest', options.authorize);
      api.addHook('onRequest', refuseCrossOrigin);
      // The API's answers are about now: never cached.
      api.addHook('onSend', async (_request, reply) => {
        reply.header('cache-control', 'no-store');
      });
      registerAdminRoutes(api, { options, ops, rebuilds, refreshMs });
    },
    { prefix: '/api' },
  );
}

/**
 * Actions only from the console's own origin. A page elsewhere can make a browser send a plain
 * POST (no preflight) to a console it can reach, such as one open for local development on
 * 127.0.0.1: browsers say where such a request comes from (`Sec-Fetch-Site`, `Origin`), and a
 * request from another site is refused before it does anything. Clients that are not browsers
 * send neither header and are not affected.
 */
async function refuseCrossOrigin(request: FastifyRequest, reply: FastifyReply): Promise<void> {
  if (request.method === 'GET' || request.method === 'HEAD') return;
  const site = request.headers['sec-fetch-site'];
  const origin = request.headers.origin;
  let foreign = site !== undefined && site !== 'same-origin' && site !== 'none';
  if (!foreign && origin !== undefined) {
    try {
      // Compared as URLs of the same scheme, so a default port written or not is the same host.
      const from = new URL(origin);
      foreign = from.host !== new URL(`${from.protocol}//${request.headers.host ?? ''}`).host;
    } catch {
      foreign = true;
    }
  }
  if (foreign) {
    await sendProblem(reply, {
      ...adminProblem(
        'cross_origin_refused',
        'Cross-origin request refused',
        `actions are taken only from the console's own page (origin ${origin ?? 'unknown'}, fetch site ${site ?? 'unknown'})`,
      ).problem,
      instance: request.url,
    });
  }
}

/**
 * The admin console as a Fastify plugin: `app.register(tidemarkAdmin, { prefix: '/admin', ... })`.
 * See {@link AdminConsoleOptions}; docs/operations.md ("Admin console") shows the pages.
 */
export const tidemarkAdmin = adminConsolePlugin;
