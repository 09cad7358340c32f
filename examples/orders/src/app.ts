/**
 * The Orders service, assembled: storage, the write side, projections, HTTP. Roles choose what
 * runs in this process: `api` (HTTP commands and queries), `projector` (projection runners),
 * `relay` (publishing to Kafka). Configuration arrives as arguments; only main.ts reads the
 * environment.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import {
  CommandHandler,
  ProjectionHost,
  ReadModels,
  openStorage,
  silentLogger,
  type Logger,
  type ProjectionRunner,
  type Storage,
} from 'tidemark';
import { MetricsRegistry, tidemarkHttp } from 'tidemark/http';
import { orderDecider } from './domain.ts';
import { orderProjections } from './projections.ts';
import { mapOrderErrors, orderCommandRoutes, orderQueryRoutes } from './routes.ts';

export type Role = 'api' | 'projector' | 'relay';
export const ALL_ROLES: readonly Role[] = ['api', 'projector', 'relay'];

export interface OrdersServiceOptions {
  /** A SQLite file path or `sqlite:` URL, or a `postgres://` URL. */
  databaseUrl: string;
  roles?: readonly Role[];
  /** Longest a query waits for a consistency token. Default 5000 ms. */
  consistencyTimeoutMs?: number;
  /** Readiness fails when a projection lags more than this many events. Default: never. */
  maxReadyLagEvents?: number;
  bodyLimit?: number;
  logger?: Logger;
  /** A Fastify logger (pino) for request logs. Default: none. */
  httpLogger?: object;
}

export interface OrdersService {
  app: FastifyInstance;
  storage: Storage;
  handler: CommandHandler<unknown, never, never>;
  /** Runs the projections (role projector); absent otherwise. */
  projections: ProjectionHost | undefined;
  /** The projection runners now running in this process. */
  runners(): readonly ProjectionRunner[];
  readModels: ReadModels;
  metrics: MetricsRegistry;
  /** Starts the runners (the caller listens on the app). */
  start(): Promise<void>;
  /** Stops taking requests, finishes what is in flight, checkpoints, closes storage. */
  stop(): Promise<void>;
}

export async function createOrdersService(options: OrdersServiceOptions): Promise<OrdersService> {
  const roles = new Set(options.roles ?? ALL_ROLES);
  const logger = options.logger ?? silentLogger;
  const storage = await openStorage(options.databaseUrl, { logger });
  const { store, sink } = storage;

  const handler = new CommandHandler({
    decider: orderDecider,
    store,
    snapshots: { store, every: 100, stateVersion: 1 },
    logger,
  });
  const projections = roles.has('projector')
    ? new ProjectionHost({ projections: orderProjections, store, sink, logger })
    : undefined;
  const runners = () => projections?.runners ?? [];
  const readModels = new ReadModels({ sink, projections: orderProjections, runners });
  const metrics = new MetricsRegistry();
  registerProjectionMetrics(metrics, runners);

  const app = Fastify({
    ...(options.httpLogger ? { loggerInstance: options.httpLogger as never } : {}),
    bodyLimit: options.bodyLimit ?? 1024 * 1024,
    // Clients resend on a dropped connection; keep-alive makes that rare.
    keepAliveTimeout: 10_000,
    return503OnClosing: true,
    // Request ids become correlation and causation ids: unique across processes and restarts.
    genReqId: () => crypto.randomUUID(),
  });
  await app.register(tidemarkHttp, {
    ...(roles.has('api')
      ? {
          commands: orderCommandRoutes(handler, () => crypto.randomUUID()),
          queries: orderQueryRoutes(readModels, store),
          idempotency: store,
          consistency: readModels,
        }
      : {}),
    ...(options.consistencyTimeoutMs !== undefined
      ? { consistencyTimeoutMs: options.consistencyTimeoutMs }
      : {}),
    ...(options.bodyLimit !== undefined ? { bodyLimit: options.bodyLimit } : {}),
    metrics,
    mapError: mapOrderErrors,
    logger,
    openapi: {
      title: 'Tidemark Orders',
      version: '1.0.0',
      description: 'The Tidemark reference service',
    },
    readiness: async () => {
      const head = await store.headPosition();
      const statuses = await Promise.all(runners().map((r) => r.status()));
      const lagging = statuses.filter(
        (p) =>
          p.state === 'stopped' ||
          (options.maxReadyLagEvents !== undefined && p.lagEvents > options.maxReadyLagEvents),
      );
      return {
        ready: lagging.length === 0,
        details: {
          head,
          roles: [...roles],
          projections: statuses.map(({ name, version, state, lagEvents }) => ({
            name,
            version,
            state,
            lagEvents,
          })),
        },
      };
    },
  });

  let stopped = false;
  return {
    app,
    storage,
    handler: handler as unknown as CommandHandler<unknown, never, never>,
    projections,
    runners,
    readModels,
    metrics,
    async start() {
      await projections?.start();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await app.close();
      await projections?.stop();
      await storage.close();
    },
  };
}

function registerProjectionMetrics(
  metrics: MetricsRegistry,
  runners: () => readonly ProjectionRunner[],
): void {
  const statuses = () => Promise.all(runners().map((r) => r.status()));
  const per = (pick: (s: Awaited<ReturnType<ProjectionRunner['status']>>) => number) => async () =>
    (await statuses()).map((s) => ({
      labels: { projection: s.name, version: s.version },
      value: pick(s),
    }));
  metrics.gauge(
    'tidemark_projection_position',
    'Last global log position applied, per projection.',
    per((s) => s.position),
  );
  metrics.gauge(
    'tidemark_projection_lag_events',
    'Events between the log head and the projection.',
    per((s) => s.lagEvents),
  );
  metrics.gauge(
    'tidemark_projection_lag_seconds',
    'Age of the oldest event not yet applied.',
    per((s) => s.lagSeconds),
  );
  metrics.gauge(
    'tidemark_projection_parked_events',
    'Events parked (dead letters) per projection.',
    per((s) => s.parked),
  );
}
