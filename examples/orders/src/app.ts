/**
 * The Orders service, assembled by Tidemark's composition root: the domain's handler and routes
 * on whatever storage, projections and Kafka settings the entry point chose. Configuration
 * arrives as arguments; only main.ts reads the environment.
 */
import { CommandHandler, type Logger } from 'tidemark';
import type { AuthOptions } from 'tidemark/http';
import {
  ALL_ROLES,
  createService,
  type Registry,
  type Role,
  type Service,
  type ServiceAdminOptions,
  type ServiceKafkaOptions,
} from 'tidemark/service';
import { orderDecider } from './domain.ts';
import { orderPersonalData } from './personal-data.ts';
import { orderProjections } from './projections.ts';
import {
  MAX_PATH_PARAM_LENGTH,
  forgetCustomerRoute,
  mapOrderErrors,
  orderCommandRoutes,
  orderQueryRoutes,
  type OrderHandler,
} from './routes.ts';

export { ALL_ROLES, type Role };

export interface OrdersServiceOptions {
  /** A SQLite file path or `sqlite:` URL, or a `postgres://` URL. */
  databaseUrl: string;
  roles?: readonly Role[];
  /** Longest a query waits for a consistency token. Default 5000 ms. */
  consistencyTimeoutMs?: number;
  /** Readiness fails when a projection lags more than this many events. Default: never. */
  maxReadyLagEvents?: number;
  logger?: Logger;
  /** The prom-client registry for the service's metrics. Default: one of its own. */
  metrics?: Registry;
  /** Kafka mode (main.ts reads it from KAFKA_* variables); unset: embedded. */
  kafka?: OrdersKafkaOptions;
  /** The admin console at /admin (docs/operations.md), behind the operator role of `auth`; unset: none. */
  admin?: ServiceAdminOptions;
  /**
   * Bearer authentication (docs/orders-api.md): `{ mode: 'jwt', ... }`, or `{ mode: 'off' }` for
   * local development (it warns). Unset: routes are open and the plugin warns.
   */
  auth?: AuthOptions;
  /** The archive of old orders (a directory of segment files, docs/retention.md). Default: none. */
  archiveDirectory?: string;
}

/** Kafka settings of the Orders service: the library's; `topic` is the order category's. */
export interface OrdersKafkaOptions extends Omit<ServiceKafkaOptions, 'topics'> {
  /** The topic of the `order` category. Default `order-events`. */
  topic?: string;
  topics?: ServiceKafkaOptions['topics'];
}

export interface OrdersService extends Service {
  handler: OrderHandler;
}

export async function createOrdersService(options: OrdersServiceOptions): Promise<OrdersService> {
  let handler!: OrderHandler;
  const kafka = options.kafka;
  const service = await createService({
    name: 'orders',
    storage: options.databaseUrl,
    // Personal fields are sealed before they reach the store (docs/personal-data.md).
    personalData: orderPersonalData,
    ...(options.archiveDirectory ? { archiveDirectory: options.archiveDirectory } : {}),
    projections: orderProjections,
    routes: ({ store, readModels, logger, forget }) => {
      handler = new CommandHandler({
        decider: orderDecider,
        store,
        snapshots: { store, every: 100, stateVersion: 1 },
        logger,
      });
      return {
        commands: orderCommandRoutes(handler, () => crypto.randomUUID()),
        queries: orderQueryRoutes(readModels, store),
        actions: [forgetCustomerRoute(forget)],
        mapError: mapOrderErrors,
        // The console's stream browser folds orders with the handler's own decider.
        streams: [{ prefix: 'order-', decider: handler.decider }],
      };
    },
    ...(options.roles ? { roles: options.roles } : {}),
    ...(kafka
      ? { kafka: { ...kafka, topics: kafka.topics ?? { order: kafka.topic ?? 'order-events' } } }
      : {}),
    http: {
      // Every id the contract accepts must fit in a path segment.
      maxParamLength: MAX_PATH_PARAM_LENGTH,
      openapi: {
        title: 'Tidemark Orders',
        version: '1.0.0',
        description: 'The Tidemark reference service',
      },
      ...(options.consistencyTimeoutMs !== undefined
        ? { consistencyTimeoutMs: options.consistencyTimeoutMs }
        : {}),
    },
    readiness:
      options.maxReadyLagEvents !== undefined ? { maxLagEvents: options.maxReadyLagEvents } : {},
    ...(options.admin ? { admin: options.admin } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
    ...(options.metrics ? { metrics: options.metrics } : {}),
    ...(options.auth ? { auth: options.auth } : {}),
  });
  return Object.assign(service, { handler });
}
