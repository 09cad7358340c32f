/**
 * Entry point: `npm start -- [--role all|api|projector|relay] [--port N] [--insecure-dev]`.
 *
 * Environment (read here and nowhere else): PORT (3000), DATABASE_URL (./data/tidemark.db),
 * KAFKA_BROKERS (unset: embedded, no Kafka), LOG_LEVEL (info), CONSISTENCY_TIMEOUT_MS (5000),
 * READY_MAX_LAG_EVENTS (unset: /ready ignores lag).
 * Kafka mode also reads the connection variables of docs/kafka-clusters.md (KAFKA_SSL,
 * KAFKA_SASL_*, ...) and KAFKA_TOPIC (order-events), KAFKA_PARTITIONS (6),
 * KAFKA_REPLICATION_FACTOR (the broker's), KAFKA_RELAY_NAME (orders), KAFKA_GROUP_PREFIX
 * (tidemark-orders), KAFKA_GROUP_INSTANCE_ID (unset: dynamic membership).
 * Authentication (`authFromEnv`; README, docs/orders-api.md): AUTH_JWKS_URL or AUTH_SECRET, with
 * AUTH_ISSUER and AUTH_AUDIENCE; AUTH_ROLES_CLAIM (roles), AUTH_ALGORITHMS,
 * AUTH_CLOCK_TOLERANCE_SECONDS (30). With neither key the service starts only when told it is for
 * local development (`--insecure-dev`, which `npm start` passes, or TIDEMARK_AUTH=off), and then
 * it is open.
 */
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import type { AuthOptions } from 'tidemark/http';
import { authFromEnv, kafkaFromEnv, serve, type ServiceKafkaOptions } from 'tidemark/service';
import { ALL_ROLES, createOrdersService, type Role } from './app.ts';
import { applyHeapSettings } from './heap.ts';

// First: the old generation's growth (heap.ts says why), before the service allocates its heap.
const heapFlag = applyHeapSettings();

const { values } = parseArgs({
  options: {
    role: { type: 'string', default: 'all' },
    port: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
    'insecure-dev': { type: 'boolean' },
  },
});

if (values.help) {
  process.stdout.write(`Tidemark Orders reference service

  npm start -- [--role all|api|projector|relay] [--port N] [--insecure-dev]

Environment: PORT (3000), DATABASE_URL (./data/tidemark.db; or postgres://...),
KAFKA_BROKERS (unset: embedded mode), LOG_LEVEL (info), CONSISTENCY_TIMEOUT_MS (5000),
READY_MAX_LAG_EVENTS (unset: /ready ignores projection lag), TIDEMARK_ARCHIVE_DIR (the
archive of old orders; unset: none, docs/retention.md)
Kafka mode: KAFKA_TOPIC (order-events), KAFKA_PARTITIONS (6), KAFKA_REPLICATION_FACTOR,
KAFKA_RELAY_NAME (orders), KAFKA_GROUP_PREFIX (tidemark-orders), KAFKA_GROUP_INSTANCE_ID,
and KAFKA_SSL / KAFKA_SASL_* (docs/kafka-clusters.md)
Authentication: AUTH_JWKS_URL or AUTH_SECRET (32+ bytes), AUTH_ISSUER, AUTH_AUDIENCE,
AUTH_ROLES_CLAIM (roles), AUTH_ALGORITHMS, AUTH_CLOCK_TOLERANCE_SECONDS (30).
Without them the service refuses to start, unless started for local development
(--insecure-dev, as npm start does, or TIDEMARK_AUTH=off): then every route is open.
`);
  process.exit(0);
}

const role = values.role!;
const roles: readonly Role[] =
  role === 'all' ? ALL_ROLES : role.split(',').map((r) => r.trim() as Role);
for (const r of roles) {
  if (!ALL_ROLES.includes(r)) {
    process.stderr.write(`unknown role '${r}': use all, api, projector or relay\n`);
    process.exit(2);
  }
}
const port = Number(values.port ?? process.env.PORT ?? 3000);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`invalid port '${values.port ?? process.env.PORT}'\n`);
  process.exit(2);
}
const databaseUrl = process.env.DATABASE_URL || './data/tidemark.db';
const consistencyTimeoutMs = process.env.CONSISTENCY_TIMEOUT_MS
  ? Number(process.env.CONSISTENCY_TIMEOUT_MS)
  : undefined;
const maxReadyLagEvents = process.env.READY_MAX_LAG_EVENTS
  ? Number(process.env.READY_MAX_LAG_EVENTS)
  : undefined;
if (
  maxReadyLagEvents !== undefined &&
  !(Number.isSafeInteger(maxReadyLagEvents) && maxReadyLagEvents >= 0)
) {
  process.stderr.write(`READY_MAX_LAG_EVENTS must be a non-negative integer\n`);
  process.exit(2);
}
const logger = pino({ level: process.env.LOG_LEVEL ?? 'info' });

let auth: AuthOptions;
try {
  auth = authFromEnv(process.env, { insecureDev: values['insecure-dev'] === true });
} catch (error) {
  process.stderr.write(`invalid authentication settings: ${(error as Error).message}\n`);
  process.exit(2);
}

let kafka: ServiceKafkaOptions | undefined;
try {
  kafka = await kafkaFromEnv(process.env, { order: process.env.KAFKA_TOPIC || 'order-events' });
} catch (error) {
  process.stderr.write(`invalid Kafka settings: ${(error as Error).message}\n`);
  process.exit(2);
}

let service: Awaited<ReturnType<typeof createOrdersService>>;
try {
  service = await createOrdersService({
    databaseUrl,
    roles,
    logger,
    auth,
    ...(consistencyTimeoutMs !== undefined ? { consistencyTimeoutMs } : {}),
    ...(maxReadyLagEvents !== undefined ? { maxReadyLagEvents } : {}),
    ...(kafka ? { kafka } : {}),
    // The admin console at /admin, behind the operator role (open in local development).
    admin: {},
    ...(process.env.TIDEMARK_ARCHIVE_DIR
      ? { archiveDirectory: process.env.TIDEMARK_ARCHIVE_DIR }
      : {}),
  });
} catch (error) {
  // A bad authentication setting (a short secret, a missing issuer) is the operator's to fix;
  // it is checked before storage is opened.
  if ((error as { code?: string }).code !== 'invalid_argument') throw error;
  process.stderr.write(`invalid settings: ${(error as Error).message}\n`);
  process.exit(2);
}
const address = await serve(service, { port, host: process.env.HOST ?? '127.0.0.1', logger });
logger.info(
  {
    address,
    roles,
    database: databaseUrl,
    kafka: kafka ? kafka.connection.brokers : undefined,
    auth: auth.mode,
    heap: heapFlag ?? 'as given to node',
  },
  'Tidemark Orders is listening',
);
