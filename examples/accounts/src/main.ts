/**
 * Entry point: PORT (3001), DATABASE_URL (./data/accounts.db), KAFKA_BROKERS (unset: embedded),
 * KAFKA_TOPIC (account-events) and the Kafka variables of `kafkaFromEnv`.
 */
import { pino } from 'pino';
import { kafkaFromEnv, serve } from 'tidemark/service';
import { createAccountsService } from './accounts.ts';

const logger = pino({ level: process.env.LOG_LEVEL ?? 'info' });
const service = await createAccountsService({
  storage: process.env.DATABASE_URL || './data/accounts.db',
  kafka: await kafkaFromEnv(process.env, {
    account: process.env.KAFKA_TOPIC || 'account-events',
  }),
});
const address = await serve(service, { port: Number(process.env.PORT ?? 3001), logger });
logger.info({ address }, 'accounts listening');
