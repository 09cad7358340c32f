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
  storeFeed,
  type Logger,
  type ProjectionStatus,
  type Storage,
} from 'tidemark';
import { MetricsRegistry, tidemarkHttp } from 'tidemark/http';
// Types only: Kafka's client is loaded when the service runs in Kafka mode (an embedded
// service never pays for it, about 12 MB of memory and 60 ms of start).
import type { KafkaConnection, KafkaRelay } from 'tidemark/kafka';
import { orderDecider } from './domain.ts';
import { orderPersonalData, registerForgetRoute } from './personal-data.ts';
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
  /**
   * Kafka mode: the relay publishes the store to Kafka, and projectors are fed from Kafka
   * (consumer groups) instead of the store's log. Unset: embedded, no Kafka.
   */
  kafka?: OrdersKafkaOptions;
}

/** Kafka settings of the Orders service (main.ts reads them from KAFKA_* variables). */
export interface OrdersKafkaOptions {
  connection: KafkaConnection;
  /** The topic of the `order` category. Default `order-events`. */
  topic?: string;
  /** Partitions of topics Tidemark creates. Default 6. */
  partitions?: number;
  /** Replication factor of topics Tidemark creates. Default: the broker's. */
  replicationFactor?: number;
  /** `ce_source` of published events. Default `tidemark://orders`. */
  source?: string;
  /** The relay's name: its transactional id is `tidemark-relay-<name>`. Default `orders`. */
  relayName?: string;
  /** Prefix of the projectors' consumer groups. Default `tidemark-orders`. */
  groupPrefix?: string;
  /** Static group membership: a stable id per projector process (a pod name). */
  instanceId?: string;
}

export interface OrdersService {
  app: FastifyInstance;
  storage: Storage;
  handler: CommandHandler<unknown, never, never>;
  /** Runs the projections (role projector), on the store's log or on Kafka; absent otherwise. */
  projections: ProjectionHost | undefined;
  /** Kafka mode: the relay (role relay). */
  relay: KafkaRelay | undefined;
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
  // Personal fields are sealed before they reach the store (docs/personal-data.md).
  const storage = await openStorage(options.databaseUrl, {
    logger,
    personalData: orderPersonalData,
  });
  const { store, sink } = storage;

  const handler = new CommandHandler({
    decider: orderDecider,
    store,
    snapshots: { store, every: 100, stateVersion: 1 },
    logger,
  });
  const kafka = options.kafka;
  const k = kafka ? await import('tidemark/kafka') : undefined;
  const topics = kafka
    ? new k!.EventTopics({
        categories: { order: kafka.topic ?? 'order-events' },
        settings: {
          partitions: kafka.partitions ?? 6,
          ...(kafka.replicationFactor !== undefined
            ? { replicationFactor: kafka.replicationFactor }
            : {}),
        },
      })
    : undefined;
  // The relay reads the store raw (events as stored, whatever upcasters the store has).
  const relay =
    kafka && topics && roles.has('relay')
      ? new k!.KafkaRelay({
          connection: kafka.connection,
          store,
          topics,
          source: kafka.source ?? 'tidemark://orders',
          name: kafka.relayName ?? 'orders',
          logger,
        })
      : undefined;
  // The one place where the two modes differ on the read side: where events come from.
  const feed = kafka
    ? k!.kafkaFeed({
        connection: kafka.connection,
        topics: topics!.listed,
        groupPrefix: kafka.groupPrefix ?? 'tidemark-orders',
        // Records from any other producer on the topic are parked as foreign, never applied.
        sources: [kafka.source ?? 'tidemark://orders'],
        // Records carry sealed personal fields; the store's key table opens them.
        ...(store.personalData ? { personalData: store.personalData } : {}),
        ...(kafka.instanceId !== undefined ? { groupInstanceId: kafka.instanceId } : {}),
      })
    : storeFeed(store);
  const projections = roles.has('projector')
    ? new ProjectionHost({ projections: orderProjections, feed, sink, logger })
    : undefined;
  const readModels = new ReadModels({
    sink,
    projections: orderProjections,
    ...(projections ? { local: projections } : {}),
  });
  const metrics = new MetricsRegistry();
  const statuses = async (): Promise<ProjectionStatus[]> => (await projections?.status()) ?? [];
  registerProjectionMetrics(metrics, statuses);
  if (relay) registerRelayMetrics(metrics, relay);
  if (kafka && projections) registerPartitionMetrics(metrics, statuses);

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
      const current = await statuses();
      const relayStatus = await relay?.status();
      const lagging = current.filter(
        (p) =>
          p.state === 'stopped' ||
          (options.maxReadyLagEvents !== undefined && p.lagEvents > options.maxReadyLagEvents),
      );
      return {
        ready:
          lagging.length === 0 && (relayStatus === undefined || relayStatus.state === 'running'),
        details: {
          head,
          roles: [...roles],
          ...(relayStatus
            ? {
                relay: {
                  state: relayStatus.state,
                  position: relayStatus.position,
                  backlog: relayStatus.backlog,
                  pastHead: relayStatus.pastHead,
                  parkedStreams: relayStatus.parked.length,
                  ...(relayStatus.refusal ? { refusal: relayStatus.refusal } : {}),
                },
              }
            : {}),
          projections: current.map(({ name, version, state, lagEvents }) => ({
            name,
            version,
            state,
            lagEvents,
          })),
        },
      };
    },
  });

  if (roles.has('api')) {
    registerForgetRoute(app, {
      keys: storage.subjectKeys,
      sink,
      projections: orderProjections,
      store,
      readModels,
      logger,
    });
  }

  let stopped = false;
  return {
    app,
    storage,
    handler: handler as unknown as CommandHandler<unknown, never, never>,
    projections,
    relay,
    readModels,
    metrics,
    async start() {
      if (topics && projections && !relay) {
        // A projector may start before any relay: create the topic it subscribes to.
        const admin = new k!.KafkaAdmin(kafka!.connection);
        try {
          await topics.ensure(admin);
        } finally {
          await admin.close();
        }
      }
      await relay?.start();
      await projections?.start();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await app.close();
      await relay?.stop();
      await projections?.stop();
      await feed.close?.();
      await storage.close();
    },
  };
}

function registerProjectionMetrics(
  metrics: MetricsRegistry,
  statuses: () => Promise<ProjectionStatus[]>,
): void {
  const per = (pick: (s: ProjectionStatus) => number) => async () =>
    (await statuses()).map((s) => ({
      labels: { projection: s.name, version: s.version },
      value: pick(s),
    }));
  metrics.gauge(
    'tidemark_projection_position',
    'Highest global log position applied, per projection.',
    per((s) => s.position),
  );
  metrics.gauge(
    'tidemark_projection_lag_events',
    'Events (store-fed) or records (Kafka-fed) not applied yet.',
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
  metrics.gauge(
    'tidemark_projection_gap_streams',
    'Streams held behind a missing version (a gap) per projection.',
    per((s) => s.gaps),
  );
  metrics.gauge(
    'tidemark_projection_up',
    '1 while the projection runs without a retried error, 0 otherwise.',
    per((s) => (s.state !== 'stopped' && s.lastError === undefined ? 1 : 0)),
  );
}
function registerRelayMetrics(metrics: MetricsRegistry, relay: KafkaRelay): void {
  const gauge = (pick: (s: Awaited<ReturnType<KafkaRelay['status']>>) => number) => async () => {
    const status = await relay.status();
    return [{ labels: { relay: status.name }, value: pick(status) }];
  };
  metrics.gauge(
    'tidemark_relay_position',
    'Last global log position published to Kafka (committed).',
    gauge((s) => s.position),
  );
  metrics.gauge(
    'tidemark_relay_backlog_events',
    'Positions between the store head and what the relay has published.',
    gauge((s) => s.backlog),
  );
  metrics.gauge(
    'tidemark_relay_up',
    '1 while the relay runs, 0 when retrying, stopped, fenced or refused.',
    gauge((s) => (s.state === 'running' ? 1 : 0)),
  );
  metrics.gauge(
    'tidemark_relay_refused',
    '1 while the relay refuses to publish (another store, past the head, partitions changed).',
    gauge((s) => (s.state === 'refused' ? 1 : 0)),
  );
  metrics.gauge(
    'tidemark_relay_parked_streams',
    'Streams the relay holds back: an event too big to publish, and the events after it.',
    gauge((s) => s.parked.length),
  );
}

function registerPartitionMetrics(
  metrics: MetricsRegistry,
  statuses: () => Promise<ProjectionStatus[]>,
): void {
  metrics.gauge(
    'tidemark_projection_partition_lag_events',
    'Offsets between the stored position and the end of each Kafka partition.',
    async () =>
      (await statuses()).flatMap((s) =>
        (s.partitions ?? []).map((p) => ({
          labels: { projection: s.name, topic: p.topic, partition: p.partition },
          value: p.lag,
        })),
      ),
  );
}
