/**
 * Entry point: `npm start -- [--role all|api|projector|relay] [--port N]`.
 *
 * Environment (read here and nowhere else): PORT (3000), DATABASE_URL (./data/tidemark.db),
 * KAFKA_BROKERS (unset: embedded, no Kafka), LOG_LEVEL (info), CONSISTENCY_TIMEOUT_MS (5000).
 */
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { ALL_ROLES, createOrdersService, type Role } from './app.ts';

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
KAFKA_BROKERS (unset: embedded mode), LOG_LEVEL (info), CONSISTENCY_TIMEOUT_MS (5000)
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
const logger = pino({ level: process.env.LOG_LEVEL ?? 'info' });
if (process.env.KAFKA_BROKERS) {
  logger.warn(
    { brokers: process.env.KAFKA_BROKERS },
    'KAFKA_BROKERS is set, but Kafka mode is not built yet: running embedded',
  );
}

const service = await createOrdersService({
  databaseUrl,
  roles,
  logger,
  ...(consistencyTimeoutMs !== undefined ? { consistencyTimeoutMs } : {}),
});
await service.start();
const address = await service.app.listen({ port, host: process.env.HOST ?? '127.0.0.1' });
logger.info({ address, roles, database: databaseUrl }, 'Tidemark Orders is listening');

let stopping = false;
async function shutdown(signal: string) {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, 'shutting down: finishing requests and batches');
  try {
    await service.stop();
    logger.info('stopped cleanly');
    process.exit(0);
  } catch (error) {
    logger.error({ err: error }, 'shutdown failed');
    process.exit(1);
  }
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
