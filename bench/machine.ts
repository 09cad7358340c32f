/**
 * Where the bench runs: local services (found, and checked to answer) and the machine's facts
 * for the results file.
 */
import Database from 'better-sqlite3';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { emmettDir, root } from './lib.ts';

export interface Services {
  postgres?: string;
  postgresMissing?: string;
  postgresVersion?: string;
  kafka?: string;
  kafkaMissing?: string;
}

/** KEY=value lines that `npm run services:up` leaves in .services/env. */
function servicesEnv(): Record<string, string> {
  const path = join(root, '.services/env');
  if (!existsSync(path)) return {};
  const entries = readFileSync(path, 'utf8')
    .split('\n')
    .map((line) => /^([A-Z_]+)=(.*)$/.exec(line.trim()))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => [m[1]!, m[2]!] as const);
  return Object.fromEntries(entries);
}

const isPostgresUrl = (url: string | undefined): url is string =>
  !!url && /^postgres(ql)?:\/\//.test(url);

function tcpAnswers(hostPort: string, timeoutMs: number): Promise<boolean> {
  const at = hostPort.lastIndexOf(':');
  const host = hostPort.slice(0, at).replace(/^\[|\]$/g, '');
  const port = Number(hostPort.slice(at + 1));
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * Finds PostgreSQL and Kafka: TIDEMARK_BENCH_DATABASE_URL / TIDEMARK_BENCH_KAFKA_BROKERS, else
 * DATABASE_URL (a postgres:// one) / KAFKA_BROKERS, else what `npm run services:up` started.
 * Checks that each answers, and sets the TIDEMARK_BENCH_* variables for the scenarios (and
 * their processes) when it does, clears them when it does not.
 */
export async function findServices(): Promise<Services> {
  const file = servicesEnv();
  const services: Services = {};
  const url = [
    process.env.TIDEMARK_BENCH_DATABASE_URL,
    process.env.DATABASE_URL,
    file.DATABASE_URL,
  ].find(isPostgresUrl);
  if (!url) {
    services.postgresMissing =
      'no PostgreSQL: run `npm run services:up` (or set TIDEMARK_BENCH_DATABASE_URL)';
  } else {
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
    try {
      await client.connect();
      const { rows } = await client.query<{ v: string }>(
        "SELECT current_setting('server_version') AS v",
      );
      services.postgres = url;
      services.postgresVersion = rows[0]?.v;
    } catch (error) {
      services.postgresMissing = `PostgreSQL at ${new URL(url).host} does not answer (${(error as Error).message}): run \`npm run services:up\``;
    } finally {
      await client.end().catch(() => {});
    }
  }
  const brokers = [
    process.env.TIDEMARK_BENCH_KAFKA_BROKERS,
    process.env.KAFKA_BROKERS,
    file.KAFKA_BROKERS,
  ].find((b) => !!b?.trim());
  if (!brokers) {
    services.kafkaMissing =
      'no Kafka: run `npm run services:up` (or set TIDEMARK_BENCH_KAFKA_BROKERS)';
  } else if (await tcpAnswers(brokers.split(',')[0]!.trim(), 3000)) {
    services.kafka = brokers;
  } else {
    services.kafkaMissing = `Kafka at ${brokers} does not answer: run \`npm run services:up\``;
  }
  // The scenarios read these (and only fall back to DATABASE_URL / KAFKA_BROKERS without them).
  if (services.postgres) process.env.TIDEMARK_BENCH_DATABASE_URL = services.postgres;
  else {
    delete process.env.TIDEMARK_BENCH_DATABASE_URL;
    if (isPostgresUrl(process.env.DATABASE_URL)) delete process.env.DATABASE_URL;
  }
  if (services.kafka) process.env.TIDEMARK_BENCH_KAFKA_BROKERS = services.kafka;
  else {
    delete process.env.TIDEMARK_BENCH_KAFKA_BROKERS;
    delete process.env.KAFKA_BROKERS;
  }
  return services;
}

function kafkaVersion(): string | undefined {
  const status = spawnSync(process.execPath, ['scripts/services.mjs', 'status'], {
    cwd: root,
    encoding: 'utf8',
    timeout: 10_000,
  });
  return /Kafka (\d[\w.-]*)/.exec(`${status.stdout}${status.stderr}`)?.[1];
}

function emmettSqliteVersion(): string | undefined {
  if (!existsSync(join(emmettDir, 'node_modules/sqlite3'))) return undefined;
  const out = spawnSync(
    process.execPath,
    [
      '-e',
      "const s=require('sqlite3');new s.Database(':memory:').get('select sqlite_version() v',(e,r)=>console.log(r.v))",
    ],
    { cwd: emmettDir, encoding: 'utf8', timeout: 10_000 },
  );
  return out.stdout.trim() || undefined;
}

function packageVersion(dir: string, name: string): string | undefined {
  const path = join(dir, 'node_modules', name, 'package.json');
  if (!existsSync(path)) return undefined;
  return (JSON.parse(readFileSync(path, 'utf8')) as { version: string }).version;
}

export function machine(services: Services, started: { at: Date; load: number[] }) {
  const memory = new Database(':memory:');
  const sqlite = (memory.prepare('SELECT sqlite_version() AS v').get() as { v: string }).v;
  memory.close();
  const cpus = os.cpus();
  return {
    date: started.at.toISOString(),
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memoryGb: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    loadAverageAtStart: started.load.map((l) => Math.round(l * 100) / 100),
    versions: {
      sqlite,
      'better-sqlite3': packageVersion(root, 'better-sqlite3'),
      pg: packageVersion(root, 'pg'),
      postgresql: services.postgresVersion,
      kafka: services.kafka ? kafkaVersion() : undefined,
      '@platformatic/kafka': packageVersion(root, '@platformatic/kafka'),
      '@event-driven-io/emmett': packageVersion(emmettDir, '@event-driven-io/emmett'),
      '@event-driven-io/emmett-sqlite': packageVersion(emmettDir, '@event-driven-io/emmett-sqlite'),
      '@event-driven-io/emmett-postgresql': packageVersion(
        emmettDir,
        '@event-driven-io/emmett-postgresql',
      ),
      'sqlite (emmett, node-sqlite3)': emmettSqliteVersion(),
    },
  };
}
