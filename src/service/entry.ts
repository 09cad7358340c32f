/**
 * What an entry point needs besides its own options: Kafka settings read from the environment
 * (the entry point passes `process.env`; the library reads no environment of its own), and a
 * process that serves until it is told to stop.
 */
import { InvalidArgumentError, type Logger } from '../core/index.ts';
import type { AuthOptions } from '../http/auth.ts';
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

/**
 * Authentication settings from environment variables: AUTH_JWKS_URL or AUTH_SECRET, with
 * AUTH_ISSUER and AUTH_AUDIENCE (comma-separated lists), AUTH_ROLES_CLAIM, AUTH_ALGORITHMS,
 * AUTH_CLOCK_TOLERANCE_SECONDS; TIDEMARK_AUTH=off for local development.
 *
 * Without a key the answer is `{ mode: 'off' }` only when the entry point says it runs for
 * local development (`insecureDev`, a command-line switch) or TIDEMARK_AUTH=off; otherwise it
 * throws, so a deployment that forgot its keys stops instead of running open. Keys win over
 * `insecureDev`, so a development entry given keys never runs open by accident; TIDEMARK_AUTH=off
 * with keys is refused as contradictory.
 */
export function authFromEnv(
  env: Readonly<Record<string, string | undefined>>,
  options: { insecureDev?: boolean } = {},
): AuthOptions {
  const text = (name: string) => env[name]?.trim() || undefined;
  const list = (name: string) =>
    text(name)
      ?.split(',')
      .map((v) => v.trim())
      .filter(Boolean);
  const jwksUrl = text('AUTH_JWKS_URL');
  const secret = text('AUTH_SECRET');
  const switchedOff = text('TIDEMARK_AUTH');
  if (switchedOff !== undefined && switchedOff !== 'off') {
    throw new InvalidArgumentError('TIDEMARK_AUTH', `accepts only 'off' (got '${switchedOff}')`);
  }
  if (jwksUrl === undefined && secret === undefined) {
    if (switchedOff === 'off' || options.insecureDev) return { mode: 'off' };
    throw new InvalidArgumentError(
      'AUTH_JWKS_URL',
      'no authentication configured: set AUTH_JWKS_URL or AUTH_SECRET with AUTH_ISSUER and AUTH_AUDIENCE, or start for local development (--insecure-dev, or TIDEMARK_AUTH=off)',
    );
  }
  if (switchedOff === 'off') {
    throw new InvalidArgumentError(
      'TIDEMARK_AUTH',
      'is off while AUTH_JWKS_URL or AUTH_SECRET is set: choose one',
    );
  }
  const tolerance = text('AUTH_CLOCK_TOLERANCE_SECONDS');
  const rolesClaim = text('AUTH_ROLES_CLAIM');
  const algorithms = list('AUTH_ALGORITHMS');
  // createAuthenticator checks the values (issuer and audience present, secret length, ...).
  return {
    mode: 'jwt',
    ...(jwksUrl !== undefined ? { jwksUrl } : {}),
    ...(secret !== undefined ? { secret } : {}),
    issuer: list('AUTH_ISSUER') ?? [],
    audience: list('AUTH_AUDIENCE') ?? [],
    ...(rolesClaim !== undefined ? { rolesClaim } : {}),
    ...(algorithms !== undefined ? { algorithms } : {}),
    ...(tolerance !== undefined ? { clockToleranceSeconds: Number(tolerance) } : {}),
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
  const host = options.host ?? '127.0.0.1';
  let address: string;
  try {
    address = await service.app.listen({ port: options.port, host });
  } catch (error) {
    // A port already taken (a second role started with the same PORT, say) is the operator's
    // setting, not a crash: say so in one line, and stop what was started.
    const code = (error as NodeJS.ErrnoException).code;
    const reason =
      code === 'EADDRINUSE'
        ? `${host}:${options.port} is already in use; give each process its own PORT (or --port)`
        : code === 'EACCES' || code === 'EADDRNOTAVAIL'
          ? `cannot listen on ${host}:${options.port} (${code})`
          : undefined;
    if (!reason) throw error;
    process.stderr.write(`${service.name}: ${reason}\n`);
    await service.stop();
    process.exit(1);
  }
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
