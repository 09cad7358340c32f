/**
 * Real PostgreSQL and Kafka for tests.
 *
 * `npm test` (scripts/test.mjs) starts or reuses the local services when a selected test file
 * imports this module, and hands them to the test processes as TIDEMARK_TEST_DATABASE_URL and
 * TIDEMARK_TEST_KAFKA_BROKERS (TIDEMARK_TEST_KAFKA_SSL, ..._SASL_* work like KAFKA_SSL and
 * friends, see docs/kafka-clusters.md). A test that needs a service which is not there fails
 * with a message saying how to get it: nothing is skipped.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import {
  KafkaAdmin,
  kafkaConnectionFromEnv,
  type KafkaConnection,
  type TopicSpec,
} from 'tidemark/kafka';

export const DATABASE_URL_VARIABLE = 'TIDEMARK_TEST_DATABASE_URL';
export const KAFKA_PREFIX = 'TIDEMARK_TEST_KAFKA_';

/** A test asked for a service that this run does not have. */
export class MissingServiceError extends Error {
  constructor(service: string, variable: string) {
    super(
      `${service} is needed by this test, but ${variable} is not set. Run tests through ` +
        '`npm test` / `node scripts/test.mjs <paths>`, which start the local services ' +
        '(scripts/services.mjs) and set it, or set it yourself to a server you own.',
    );
    this.name = 'MissingServiceError';
  }
}

/** A short random suffix: test runs and files share one server, so names must not collide. */
export function uniqueSuffix(): string {
  return randomBytes(5).toString('hex');
}

/** `prefix` plus a random suffix, in the characters topic and database names allow. */
export function uniqueName(prefix = 'test'): string {
  const clean = prefix
    .toLowerCase()
    .replace(/[^a-z0-9_]+/g, '_')
    .slice(0, 40);
  return `${clean}_${uniqueSuffix()}`;
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

/** The URL of the shared test database (`tidemark` on the local cluster). Prefer {@link createTestDatabase}. */
export function postgresUrl(): string {
  const url = process.env[DATABASE_URL_VARIABLE];
  if (!url) throw new MissingServiceError('PostgreSQL', DATABASE_URL_VARIABLE);
  return url;
}

/** A database of one's own, created for a test file. */
export interface TestDatabase {
  /** Connection string of the new database. */
  readonly url: string;
  readonly name: string;
  /** Drops it, closing any connection still open to it. */
  drop(): Promise<void>;
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

async function withAdminClient<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({
    connectionString: postgresUrl(),
    connectionTimeoutMillis: 10_000,
  });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/**
 * Creates a fresh, empty database (named `tmt_<label>_<random>`) owned by the test role, so a
 * test file never sees another's tables. Drop it in an `after` hook:
 *
 * ```ts
 * let db: TestDatabase;
 * before(async () => { db = await createTestDatabase('pg-store'); });
 * after(() => db.drop());
 * ```
 */
export async function createTestDatabase(label = 'test'): Promise<TestDatabase> {
  const name = uniqueName(`tmt_${label}`).slice(0, 63);
  await withAdminClient((client) => client.query(`CREATE DATABASE ${quoteIdent(name)}`));
  const url = new URL(postgresUrl());
  url.pathname = `/${name}`;
  let dropped = false;
  return {
    url: url.toString(),
    name,
    async drop() {
      if (dropped) return;
      dropped = true;
      await withAdminClient(async (client) => {
        try {
          await client.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
        } catch (error) {
          // FORCE refuses when a backend of another role is in the database: an autovacuum worker
          // after a test's heavy writes. Plain DROP stops autovacuum itself; our own role's
          // sessions (a killed test process's, say) we end first, waiting for each to go.
          if ((error as { code?: string }).code !== '42501') throw error;
          await client.query(
            `SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity
             WHERE datname = $1 AND pid <> pg_backend_pid() AND usename = current_user`,
            [name],
          );
          await client.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)}`);
        }
      });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Kafka

/** How tests reach Kafka (brokers, plus TLS/SASL when TIDEMARK_TEST_KAFKA_* asks for them). */
export function kafkaConnection(): KafkaConnection {
  const connection = kafkaConnectionFromEnv(process.env, KAFKA_PREFIX);
  if (!connection) throw new MissingServiceError('Kafka', `${KAFKA_PREFIX}BROKERS`);
  return { ...connection, clientId: connection.clientId ?? 'tidemark-test' };
}

/** The bootstrap brokers, `host:port`. */
export function kafkaBrokers(): string[] {
  return [...kafkaConnection().brokers];
}

/** A topic name no other test uses. */
export function uniqueTopic(prefix = 'test'): string {
  return uniqueName(`tm-${prefix}`).replaceAll('_', '-');
}

/** A topic made for one test. */
export interface TestTopic {
  readonly name: string;
  /** Deletes it (missing is fine). */
  delete(): Promise<void>;
}

/** Creates a uniquely named topic (1 partition unless told) and waits until it has leaders. */
export async function createTestTopic(
  options: { prefix?: string } & Omit<Partial<TopicSpec>, 'name'> = {},
): Promise<TestTopic> {
  const { prefix, ...spec } = options;
  const name = uniqueTopic(prefix);
  const admin = new KafkaAdmin(kafkaConnection());
  try {
    await admin.createTopic({ name, ...spec });
  } finally {
    await admin.close();
  }
  return {
    name,
    async delete() {
      const a = new KafkaAdmin(kafkaConnection());
      try {
        await a.deleteTopic(name, { ifExists: true });
      } finally {
        await a.close();
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------
// A three-broker Kafka cluster (scripts/services/kafka-cluster.mjs), for the tests in test/cluster/

export const KAFKA_CLUSTER_VARIABLE = 'TIDEMARK_TEST_KAFKA_CLUSTER_BROKERS';

/**
 * The bootstrap brokers of the three-broker test cluster, or undefined when this run has none:
 * cluster tests skip then (the cluster costs three JVMs; scripts/test.mjs starts it only for the
 * files that call this).
 */
export function kafkaClusterBrokers(): string[] | undefined {
  const value = process.env[KAFKA_CLUSTER_VARIABLE]?.trim();
  if (!value) return undefined;
  return value
    .split(',')
    .map((b) => b.trim())
    .filter(Boolean);
}

/** How tests reach the three-broker cluster (plaintext, loopback). */
export function kafkaClusterConnection(): KafkaConnection {
  const brokers = kafkaClusterBrokers();
  if (!brokers)
    throw new MissingServiceError('A three-broker Kafka cluster', KAFKA_CLUSTER_VARIABLE);
  return { brokers, clientId: 'tidemark-test-cluster' };
}
