/**
 * Entry point: `npm start -- [--role all|api|projector|relay] [--port N]`.
 *
 * Environment (read here and nowhere else): PORT (3000), DATABASE_URL (./data/tidemark.db),
 * KAFKA_BROKERS (unset: embedded, no Kafka), LOG_LEVEL (info), CONSISTENCY_TIMEOUT_MS (5000),
 * READY_MAX_LAG_EVENTS (unset: /ready ignores lag).
 * Kafka mode also reads the connection variables of docs/kafka-clusters.md (KAFKA_SSL,
 * KAFKA_SASL_*, ...) and KAFKA_TOPIC (order-events), KAFKA_PARTITIONS (6),
 * KAFKA_REPLICATION_FACTOR (the broker's), KAFKA_RELAY_NAME (orders), KAFKA_GROUP_PREFIX
 * (tidemark-orders), KAFKA_GROUP_INSTANCE_ID (unset: dynamic membership).
 */
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { ALL_ROLES, createOrdersService, type OrdersKafkaOptions, type Role } from './app.ts';

const { values } = parseArgs({
  options: {
    role: { type: 'string', default: 'all' },
    port: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});

if (values.help) {
  process.stdout.write(`Tidemark Orders reference service

  npm start -- [--role all|api|projector|relay] [--port N]

Environment: PORT (3000), DATABASE_URL (./data/tidemark.db; or postgres://...),
KAFKA_BROKERS (unset: embedded mode), LOG_LEVEL (info), CONSISTENCY_TIMEOUT_MS (5000),
READY_MAX_LAG_EVENTS (unset: /ready ignores projection lag)
Kafka mode: KAFKA_TOPIC (order-events), KAFKA_PARTITIONS (6), KAFKA_REPLICATION_FACTOR,
KAFKA_RELAY_NAME (orders), KAFKA_GROUP_PREFIX (tidemark-orders), KAFKA_GROUP_INSTANCE_ID,
and KAFKA_SSL / KAFKA_SASL_* (docs/kafka-clusters.md)
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

async function kafkaFromEnv(env: NodeJS.ProcessEnv): Promise<OrdersKafkaOptions | undefined> {
  // Kafka's client is loaded only when Kafka is configured.
  if (!env.KAFKA_BROKERS?.trim()) return undefined;
  const { kafkaConnectionFromEnv } = await import('tidemark/kafka');
  const connection = kafkaConnectionFromEnv(env);
  if (!connection) return undefined;
  const text = (name: string) => env[name] || undefined;
  const count = (name: string): number | undefined => {
    const value = text(name);
    if (value === undefined) return undefined;
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${name} must be a positive integer`);
    return n;
  };
  const options: OrdersKafkaOptions = { connection };
  const topic = text('KAFKA_TOPIC');
  const partitions = count('KAFKA_PARTITIONS');
  const replicationFactor = count('KAFKA_REPLICATION_FACTOR');
  const relayName = text('KAFKA_RELAY_NAME');
  const groupPrefix = text('KAFKA_GROUP_PREFIX');
  const instanceId = text('KAFKA_GROUP_INSTANCE_ID');
  if (topic) options.topic = topic;
  if (partitions) options.partitions = partitions;
  if (replicationFactor) options.replicationFactor = replicationFactor;
  if (relayName) options.relayName = relayName;
  if (groupPrefix) options.groupPrefix = groupPrefix;
  if (instanceId) options.instanceId = instanceId;
  return options;
}

let kafka: OrdersKafkaOptions | undefined;
try {
  kafka = await kafkaFromEnv(process.env);
} catch (error) {
  process.stderr.write(`invalid Kafka settings: ${(error as Error).message}\n`);
  process.exit(2);
}

const service = await createOrdersService({
  databaseUrl,
  roles,
  logger,
  ...(consistencyTimeoutMs !== undefined ? { consistencyTimeoutMs } : {}),
  ...(maxReadyLagEvents !== undefined ? { maxReadyLagEvents } : {}),
  ...(kafka ? { kafka } : {}),
});
await service.start();
const host = process.env.HOST ?? '127.0.0.1';
let address: string;
try {
  address = await service.app.listen({ port, host });
} catch (error) {
  // A port already taken (a second role started with the same PORT, say) is the operator's
  // setting, not a crash: say so in one line, and stop what was started.
  const code = (error as NodeJS.ErrnoException).code;
  const reason =
    code === 'EADDRINUSE'
      ? `${host}:${port} is already in use; give each process its own PORT (or --port)`
      : code === 'EACCES' || code === 'EADDRNOTAVAIL'
        ? `cannot listen on ${host}:${port} (${code})`
        : undefined;
  if (!reason) throw error;
  process.stderr.write(`tidemark orders: ${reason}\n`);
  await service.stop();
  process.exit(1);
}
logger.info(
  { address, roles, database: databaseUrl, kafka: kafka ? kafka.connection.brokers : undefined },
  'Tidemark Orders is listening',
);

let stopping = false;
async function shutdown(signal: string, code = 0) {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, 'shutting down: finishing requests and batches');
  try {
    await service.stop();
    logger.info('stopped cleanly');
    process.exit(code);
  } catch (error) {
    logger.error({ err: error }, 'shutdown failed');
    process.exit(1);
  }
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
// A relay that another instance fenced must not linger: stop, and let the supervisor decide.
service.relay?.done.catch(() => void shutdown('relay fenced', 1));
