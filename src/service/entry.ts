/**
 * What an entry point needs besides its own options: Kafka settings read from the environment
 * (the entry point passes `process.env`; the library reads no environment of its own), and a
 * process that serves until it is told to stop.
 */
import { InvalidArgumentError, type Logger } from '../core/index.ts';
import type { Service, ServiceKafkaOptions } from './service.ts';

/**
 * Kafka mode's settings from environment variables, or undefined (embedded) when `KAFKA_BROKERS`
 * is unset or empty. Kafka's client is loaded only then. Reads the connection variables of
 * docs/kafka-clusters.md and KAFKA_PARTITIONS, KAFKA_REPLICATION_FACTOR, KAFKA_RELAY_NAME,
 * KAFKA_GROUP_PREFIX, KAFKA_GROUP_INSTANCE_ID.
 */
export async function kafkaFromEnv(
  env: Readonly<Record<string, string | undefined>>,
  topics: Readonly<Record<string, string>>,
): Promise<ServiceKafkaOptions | undefined> {
  if (!env.KAFKA_BROKERS?.trim()) return undefined;
  const { kafkaConnectionFromEnv } = await import('../kafka/index.ts');
  const connection = kafkaConnectionFromEnv(env);
  if (!connection) return undefined;
  const text = (name: string) => env[name] || undefined;
  const count = (name: string): number | undefined => {
    const value = text(name);
    if (value === undefined) return undefined;
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < 1)
      throw new InvalidArgumentError(name, 'must be a positive integer');
    return n;
  };
  const settings = {
    partitions: count('KAFKA_PARTITIONS'),
    replicationFactor: count('KAFKA_REPLICATION_FACTOR'),
    relayName: text('KAFKA_RELAY_NAME'),
    groupPrefix: text('KAFKA_GROUP_PREFIX'),
    instanceId: text('KAFKA_GROUP_INSTANCE_ID'),
  };
  return {
    connection,
    topics,
    ...Object.fromEntries(Object.entries(settings).filter(([, value]) => value !== undefined)),
  };
}

export interface ServeOptions {
  port: number;
  /** Default 127.0.0.1. */
  host?: string;
  logger?: Logger;
}

/**
 * Starts the service's runners, listens, and stops cleanly (requests finished, batches
 * checkpointed, storage closed) on SIGTERM or SIGINT; exits 1 when its relay is fenced by
 * another instance, so that a supervisor decides what runs. Resolves with the address.
 */
export async function serve(service: Service, options: ServeOptions): Promise<string> {
  await service.start();
  const address = await service.app.listen({
    port: options.port,
    host: options.host ?? '127.0.0.1',
  });
  const logger = options.logger;
  let stopping = false;
  const shutdown = async (reason: string, code: number) => {
    if (stopping) return;
    stopping = true;
    logger?.info({ reason }, 'shutting down: finishing requests and batches');
    try {
      await service.stop();
      logger?.info({}, 'stopped cleanly');
      process.exit(code);
    } catch (error) {
      logger?.error({ err: error }, 'shutdown failed');
      process.exit(1);
    }
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM', 0));
  process.on('SIGINT', () => void shutdown('SIGINT', 0));
  service.relay?.done.catch(() => void shutdown('relay fenced', 1));
  return address;
}
