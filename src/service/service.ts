/**
 * The composition root: one call assembles a service from its storage URL, projections, routes
 * and optional Kafka settings, and gives back the Fastify application (and the plugin, for an
 * application of your own), start and stop, status, readiness and metrics.
 *
 * Roles choose what runs in a process: `api` (the HTTP commands and queries), `projector` (the
 * projection runners), `relay` (publishing the store to Kafka, Kafka mode only). Embedded (no
 * `kafka`) and Kafka mode differ in one place, where the projections' events come from; Kafka's
 * client is loaded only in Kafka mode, so an embedded service never pays for it.
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import {
  silentLogger,
  type FullEventStore,
  type Logger,
  type PersonalData,
  type ProjectionDefinition,
  type SegmentStore,
  type Upcasters,
} from '../core/index.ts';
import {
  tidemarkAdmin,
  type AdminConsoleOptions,
  type AdminStreamKind,
} from '../http/admin/plugin.ts';
import { createHttpApp } from '../http/app.ts';
import { createAuthenticator, type Authenticator, type AuthOptions } from '../http/auth.ts';
import { tidemarkHttp, type TidemarkHttpOptions } from '../http/plugin.ts';
import type { Problem } from '../http/problem.ts';
import type { KafkaConnection } from '../kafka/connection.ts';
import type { KafkaRelay, RelayStatus } from '../kafka/relay.ts';
import { createMetricsRegistry, type Registry } from '../metrics.ts';
import { forgetter, type ForgetSubjectResult } from '../personal-data/forget.ts';
import {
  ProjectionHost,
  ReadModels,
  storeFeed,
  type Feed,
  type ProjectionStatus,
} from '../projections/index.ts';
import { openStorage, type Storage } from '../storage.ts';
import { registerRunnerMetrics } from './metrics.ts';
import { judgeReadiness, type ReadinessReport, type ReadinessRules } from './readiness.ts';

export type Role = 'api' | 'projector' | 'relay';
export const ALL_ROLES: readonly Role[] = ['api', 'projector', 'relay'];

/** What the routes of a service are built from. */
export interface ServiceContext {
  storage: Storage;
  store: FullEventStore;
  readModels: ReadModels;
  logger: Logger;
  /** Forgets a data subject (docs/personal-data.md): see {@link Service.forget}. */
  forget: Service['forget'];
}

/** The routes of a service and how its domain errors become problems. */
export interface ServiceRoutes {
  commands?: TidemarkHttpOptions['commands'];
  queries?: TidemarkHttpOptions['queries'];
  /** Operations that are not a command on one stream (forgetting a data subject, say). */
  actions?: TidemarkHttpOptions['actions'];
  /** Turns a domain error into a problem before the defaults (undefined to pass). */
  mapError?: (error: unknown) => Problem | undefined;
  /**
   * The deciders of the service's streams, by stream id prefix (take them from the command
   * handlers: `{ prefix: 'order-', decider: handler.decider }`): the admin console folds a
   * stream's state at any version with them.
   */
  streams?: readonly AdminStreamKind[];
}

/** The admin console (docs/operations.md, "Admin console"), served at `/admin` by every role. */
export type ServiceAdminOptions = Pick<
  AdminConsoleOptions,
  'authorize' | 'openForLocalDevelopment' | 'rebuildDropGraceMs' | 'refreshMs'
> & {
  /** Where it is served. Default `/admin`. */
  prefix?: string;
};

/** Kafka mode: the relay publishes the store to Kafka and projections are fed from Kafka. */
export interface ServiceKafkaOptions {
  connection: KafkaConnection;
  /** Category → topic, e.g. `{ order: 'order-events' }`. */
  topics: Readonly<Record<string, string>>;
  /** Partitions of topics Tidemark creates. Default 6. */
  partitions?: number;
  /** Replication factor of topics Tidemark creates. Default: the broker's. */
  replicationFactor?: number;
  /** `ce_source` of published events; records of other sources are parked. Default `tidemark://<name>`. */
  source?: string;
  /** The relay's name: its transactional id is `tidemark-relay-<relayName>`. Default `<name>`. */
  relayName?: string;
  /** Prefix of the projectors' consumer groups. Default `tidemark-<name>`. */
  groupPrefix?: string;
  /** Static group membership: a stable id per projector process (a pod name). */
  instanceId?: string;
}

export interface ServiceOptions {
  /** Names the service: the defaults of the Kafka settings and of the OpenAPI title derive from it. */
  name: string;
  /** A SQLite file path or `sqlite:` URL, or a `postgres://` URL. */
  storage: string;
  /**
   * The archive of old streams (docs/retention.md): a directory of segment files, or another
   * segment store (`archive`, an `S3Archive` say). The store then reads archived streams too.
   */
  archiveDirectory?: string;
  archive?: SegmentStore;
  upcasters?: Upcasters;
  /**
   * Personal fields to seal under their data subject's key (docs/personal-data.md): the store
   * seals them, projections (store- or Kafka-fed) read them in clear until the subject is
   * forgotten.
   */
  personalData?: PersonalData;
  projections?: readonly ProjectionDefinition[];
  /** Builds the routes once storage is open (command handlers on `store`, queries on `readModels`). */
  routes?: (context: ServiceContext) => ServiceRoutes;
  /** Default: all of them. */
  roles?: readonly Role[];
  /** Unset: embedded, no Kafka. */
  kafka?: ServiceKafkaOptions;
  http?: {
    /** Largest accepted body in bytes. Default 1 MiB. */
    bodyLimit?: number;
    /** Longest a query waits for a consistency token. Default 5000 ms. */
    consistencyTimeoutMs?: number;
    openapi?: { title: string; version: string; description?: string };
    /** A Fastify logger (pino) for request logs. Default: none. */
    requestLogger?: object;
    /** The longest path parameter the routes take (createHttpApp's maxParamLength). */
    maxParamLength?: number;
  };
  readiness?: ReadinessRules;
  /**
   * Serves the admin console. Its API is behind the operator role of `auth`
   * (`auth.guard('operations')`) unless `authorize` is given; with `auth` in mode `off` it is
   * open (local development, logged); with neither, the service refuses to start. Unset: no
   * console.
   */
  admin?: ServiceAdminOptions;
  /**
   * Who may call the routes (src/http/auth.ts): bearer JWTs with roles (`mode: 'jwt'`), or
   * `mode: 'off'` for local development (it warns), or an authenticator built elsewhere. Unset:
   * the routes are open and the HTTP plugin warns.
   */
  auth?: AuthOptions | Authenticator;
  /** The prom-client registry to add the service's metrics to. Default: a new one with prom-client's process metrics. */
  metrics?: Registry;
  logger?: Logger;
}

/** What the runners of one process report. */
export interface ServiceStatus {
  name: string;
  roles: readonly Role[];
  projections: ProjectionStatus[];
  relay: RelayStatus | undefined;
}

export interface Service {
  readonly name: string;
  readonly roles: readonly Role[];
  /** A Fastify application serving the plugin (call `listen` after `start`). */
  readonly app: FastifyInstance;
  /** The service's HTTP plugin, to register in an application of your own (under a prefix, say). */
  readonly plugin: FastifyPluginAsync;
  readonly storage: Storage;
  readonly readModels: ReadModels;
  /** The routes built by `routes`. */
  readonly routes: ServiceRoutes;
  /** Runs the projections (role projector); absent otherwise. */
  readonly projections: ProjectionHost | undefined;
  /** Kafka mode, role relay: the relay. */
  readonly relay: KafkaRelay | undefined;
  readonly metrics: Registry;
  /** Guards routes by role; an admin surface puts `auth.guard('operations')` in front. */
  readonly auth: Authenticator | undefined;
  /** Starts the runners. */
  start(): Promise<void>;
  /** Stops taking requests, finishes what is in flight, checkpoints, closes storage. */
  stop(): Promise<void>;
  status(): Promise<ServiceStatus>;
  /** The readiness rules applied now (docs/operations.md); `/ready` answers with this. */
  readiness(): Promise<ReadinessReport>;
  /**
   * Forgets a data subject: deletes its key, waits for projections in flight, and redacts the
   * read models through the projections' `forget` hooks (`forgetSubject`).
   */
  forget(subject: string): Promise<ForgetSubjectResult>;
}

/** Assembles a service. Storage is opened here; runners start with {@link Service.start}. */
export async function createService(options: ServiceOptions): Promise<Service> {
  const roles = [...new Set(options.roles ?? ALL_ROLES)];
  const logger = options.logger ?? silentLogger;
  const definitions = options.projections ?? [];
  // Before anything is opened: a bad authentication setting fails here.
  const auth =
    options.auth === undefined
      ? undefined
      : 'requireRole' in options.auth
        ? options.auth
        : createAuthenticator({ logger, ...options.auth });
  const storage = await openStorage(options.storage, {
    logger,
    ...(options.upcasters ? { upcasters: options.upcasters } : {}),
    ...(options.personalData ? { personalData: options.personalData } : {}),
    ...(options.archiveDirectory !== undefined
      ? { archiveDirectory: options.archiveDirectory }
      : {}),
    ...(options.archive ? { archive: options.archive } : {}),
  });
  const { store, sink } = storage;
  const kafka = options.kafka;
  const k = kafka ? await import('../kafka/index.ts') : undefined;
  const source = kafka?.source ?? `tidemark://${options.name}`;
  const topics =
    kafka &&
    new k!.EventTopics({
      categories: kafka.topics,
      settings: {
        partitions: kafka.partitions ?? 6,
        ...(kafka.replicationFactor !== undefined
          ? { replicationFactor: kafka.replicationFactor }
          : {}),
      },
    });
  // The relay reads the store raw (events as stored, whatever upcasters the store has).
  const relay =
    kafka && roles.includes('relay')
      ? new k!.KafkaRelay({
          connection: kafka.connection,
          store,
          topics: topics!,
          source,
          name: kafka.relayName ?? options.name,
          logger,
        })
      : undefined;
  // The one place where the two modes differ on the read side: where events come from.
  const feed: Feed = kafka
    ? k!.kafkaFeed({
        connection: kafka.connection,
        topics: topics!.listed,
        groupPrefix: kafka.groupPrefix ?? `tidemark-${options.name}`,
        // Records from any other producer on the topic are parked as foreign, never applied.
        sources: [source],
        // Records carry sealed personal fields; the store's key table opens them.
        ...(store.personalData ? { personalData: store.personalData } : {}),
        ...(kafka.instanceId !== undefined ? { groupInstanceId: kafka.instanceId } : {}),
        // What a topic's retention dropped is filled from the store (docs/retention.md).
        backfill: { store, topics: topics! },
      })
    : storeFeed(store);
  const projections =
    roles.includes('projector') && definitions.length > 0
      ? new ProjectionHost({ projections: definitions, feed, sink, logger })
      : undefined;
  const readModels = new ReadModels({
    sink,
    projections: definitions,
    ...(projections ? { local: projections } : {}),
  });

  const status = async (): Promise<ServiceStatus> => ({
    name: options.name,
    roles,
    projections: (await projections?.status()) ?? [],
    relay: await relay?.status(),
  });
  const readiness = async () => {
    const head = await store.headPosition();
    return judgeReadiness(options.readiness ?? {}, { head, ...(await status()) });
  };

  const metrics = options.metrics ?? createMetricsRegistry();
  registerRunnerMetrics(metrics, {
    snapshot: async () => {
      // A status that cannot be read leaves its gauges out of this scrape (and says why).
      const seen = await status().catch((error: unknown) => {
        logger.warn({ err: error }, 'metrics: runner status unavailable');
        return { projections: [], relay: undefined };
      });
      return { projections: seen.projections, relay: seen.relay };
    },
    projections: projections !== undefined,
    relay: relay !== undefined,
    partitions: kafka !== undefined && projections !== undefined,
  });

  const forget = forgetter({ storage, readModels, projections: definitions, logger });
  const routes = options.routes?.({ storage, store, readModels, logger, forget }) ?? {};
  const http = options.http ?? {};
  const pluginOptions: TidemarkHttpOptions = {
    ...(roles.includes('api')
      ? {
          commands: routes.commands ?? [],
          queries: routes.queries ?? [],
          actions: routes.actions ?? [],
          idempotency: store,
          consistency: readModels,
        }
      : {}),
    ...(http.consistencyTimeoutMs !== undefined
      ? { consistencyTimeoutMs: http.consistencyTimeoutMs }
      : {}),
    ...(http.bodyLimit !== undefined ? { bodyLimit: http.bodyLimit } : {}),
    ...(routes.mapError ? { mapError: routes.mapError } : {}),
    metrics,
    logger,
    ...(auth ? { auth } : {}),
    openapi: http.openapi ?? { title: options.name, version: '1.0.0' },
    readiness,
  };
  const plugin: FastifyPluginAsync = async (instance) => {
    await instance.register(tidemarkHttp, pluginOptions);
  };
  const app = createHttpApp({
    ...(http.requestLogger ? { httpLogger: http.requestLogger } : {}),
    ...(http.maxParamLength !== undefined ? { maxParamLength: http.maxParamLength } : {}),
    ...(http.bodyLimit !== undefined ? { bodyLimit: http.bodyLimit } : {}),
    logger,
    metrics,
  });
  await app.register(plugin);
  if (options.admin) {
    const { prefix = '/admin', ...access } = options.admin;
    const guard = access.authorize ?? auth?.guard('operations');
    // Lag of versions on either feed: a service moved from embedded to Kafka mode still has
    // store-fed versions in its ledger until the Kafka-fed ones take over.
    const feeds = kafka ? { store: storeFeed(store), kafka: feed } : { store: feed };
    await app.register(tidemarkAdmin, {
      prefix,
      ...access,
      ...(guard ? { authorize: guard } : {}),
      ...(auth?.mode === 'off' && access.openForLocalDevelopment === undefined
        ? { openForLocalDevelopment: true }
        : {}),
      store,
      sink,
      projections: definitions,
      feeds,
      ...(options.upcasters ? { upcasters: options.upcasters } : {}),
      ...(projections ? { host: projections } : {}),
      ...(relay
        ? { relay: { status: () => relay.status() } }
        : kafka
          ? {
              // The relay runs in another process: its committed progress, read from Kafka.
              relay: {
                inspect: () =>
                  k!.inspectRelay({
                    connection: kafka.connection,
                    store,
                    name: kafka.relayName ?? options.name,
                    timeoutMs: 10_000,
                  }),
              },
            }
          : {}),
      ...(routes.streams ? { streams: routes.streams } : {}),
      logger,
    });
  }

  let stopped = false;
  return {
    name: options.name,
    roles,
    app,
    plugin,
    storage,
    readModels,
    routes,
    projections,
    relay,
    metrics,
    auth,
    status,
    readiness,
    forget,
    async start() {
      if (topics && projections && !relay) {
        // A projector may start before any relay: create the topics it subscribes to.
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
