#!/usr/bin/env node
// Local PostgreSQL and Kafka for tests and development (docs/infrastructure.md).
//
//   node scripts/services.mjs up     [postgres] [kafka]    start or reuse; prints DATABASE_URL= / KAFKA_BROKERS=
//   node scripts/services.mjs down   [postgres] [kafka] [--purge]   stop what `up` started
//   node scripts/services.mjs status                        what runs, where, how much memory
//   node scripts/services.mjs running                       names of those this checkout started
//                                                           that run now (one a line; for scripts)
//   node scripts/services.mjs up kafka-cluster              three Kafka nodes; KAFKA_CLUSTER_BROKERS=
//   node scripts/services.mjs up s3                         an S3-compatible server; TIDEMARK_S3_ENDPOINT=
//
// With no service named, `up` starts postgres and kafka (and kafka-cluster when
// TIDEMARK_KAFKA_CLUSTER=3); `down` and `status` act on all three. stdout carries only the KEY=value lines (also written to
// .services/env); progress and errors go to stderr. When DATABASE_URL (postgres://...) or
// KAFKA_BROKERS is already set, `up` checks that it answers, prints it, and starts nothing.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as kafka from './services/kafka.mjs';
import * as kafkaCluster from './services/kafka-cluster.mjs';
import { ServiceError, log, servicesDir, withLock } from './services/lib.mjs';
import * as postgres from './services/postgres.mjs';
import * as s3 from './services/s3.mjs';

const SERVICES = { postgres, kafka, 'kafka-cluster': kafkaCluster, s3 };
const USAGE =
  'usage: node scripts/services.mjs up|down|status|running [postgres] [kafka] [kafka-cluster] [s3] [--purge]';

/** What a bare `up` starts: the three-node cluster only when asked for (three JVMs). */
function defaultNames(command) {
  // s3 only when named (tests of the object-store archive start it themselves).
  if (command !== 'up')
    return Object.keys(SERVICES).filter((name) => name !== 's3' || s3Recorded());
  const cluster = process.env.TIDEMARK_KAFKA_CLUSTER;
  if (cluster && cluster !== '0' && cluster !== '3')
    throw new Error(`TIDEMARK_KAFKA_CLUSTER=${cluster}: only 3 (or 0) nodes are supported`);
  return cluster === '3' ? ['postgres', 'kafka', 'kafka-cluster'] : ['postgres', 'kafka'];
}

function parse(argv) {
  const [command, ...rest] = argv;
  const purge = rest.includes('--purge');
  const names = rest.filter((a) => !a.startsWith('--'));
  for (const name of names) {
    if (!(name in SERVICES)) throw new Error(`unknown service '${name}'\n${USAGE}`);
  }
  const unknownFlags = rest.filter((a) => a.startsWith('--') && a !== '--purge');
  if (unknownFlags.length > 0)
    throw new Error(`unknown option ${unknownFlags.join(' ')}\n${USAGE}`);
  return { command, purge, names: names.length > 0 ? names : defaultNames(command) };
}

function externalDatabaseUrl() {
  const url = process.env.DATABASE_URL;
  if (!url) return undefined;
  if (/^postgres(ql)?:\/\//.test(url)) return url;
  log(
    'postgres',
    `DATABASE_URL is set but is not a postgres:// URL; ignoring it and starting a local cluster`,
  );
  return undefined;
}

/** Whether `up s3` ever ran here (so `down` and `status` include it). */
function s3Recorded() {
  return existsSync(join(servicesDir, 's3', 'state.json'));
}

async function upOne(name) {
  if (name === 's3') {
    const external = process.env.TIDEMARK_S3_ENDPOINT?.trim();
    if (external) {
      await s3.verifyExternal(external);
      return ['TIDEMARK_S3_ENDPOINT', external];
    }
    return ['TIDEMARK_S3_ENDPOINT', await s3.up()];
  }
  if (name === 'postgres') {
    const external = externalDatabaseUrl();
    if (external) {
      await postgres.verifyExternal(external);
      return ['DATABASE_URL', external];
    }
    return ['DATABASE_URL', await postgres.up()];
  }
  if (name === 'kafka-cluster') {
    const external = process.env.KAFKA_CLUSTER_BROKERS?.trim();
    if (external) {
      await kafkaCluster.verifyExternal(external);
      return ['KAFKA_CLUSTER_BROKERS', external];
    }
    return ['KAFKA_CLUSTER_BROKERS', await kafkaCluster.up()];
  }
  const external = process.env.KAFKA_BROKERS?.trim();
  if (external) {
    await kafka.verifyExternal(external);
    return ['KAFKA_BROKERS', external];
  }
  return ['KAFKA_BROKERS', await kafka.up()];
}

async function main() {
  const { command, purge, names } = parse(process.argv.slice(2));
  switch (command) {
    case 'up': {
      const started = Date.now();
      // Both at once: a first run downloads jars and may install PostgreSQL in parallel.
      const results = await withLock('services', () => Promise.allSettled(names.map(upOne)));
      const failures = results.filter((r) => r.status === 'rejected');
      if (failures.length > 0) {
        for (const f of failures)
          log(
            'services',
            `FAILED ${f.reason instanceof ServiceError ? f.reason.message : f.reason.stack}`,
          );
        process.exitCode = 1;
        return;
      }
      const lines = results.map((r) => `${r.value[0]}=${r.value[1]}`);
      // Lines of services not named this time are kept (`up kafka-cluster` keeps DATABASE_URL).
      const envPath = join(servicesDir, 'env');
      const named = new Set(results.map((r) => r.value[0]));
      const kept = existsSync(envPath)
        ? readFileSync(envPath, 'utf8')
            .split('\n')
            .filter((l) => l && !named.has(l.split('=')[0]))
        : [];
      writeFileSync(envPath, `${[...kept, ...lines].join('\n')}\n`);
      log(
        'services',
        `up in ${((Date.now() - started) / 1000).toFixed(1)}s; also written to ${join(servicesDir, 'env')}`,
      );
      process.stdout.write(`${lines.join('\n')}\n`);
      return;
    }
    case 'down':
      await withLock('services', async () => {
        // Kafka first: a broker outliving its database is the more harmless order for apps.
        for (const name of [...names].reverse()) await SERVICES[name].down({ purge });
      });
      return;
    case 'status':
      for (const name of names) process.stdout.write(`${SERVICES[name].status()}\n`);
      return;
    case 'running':
      // Servers of other checkouts that `up` reuses are not listed: this checkout did not start
      // them, and its `down` leaves them alone.
      for (const name of names) if (SERVICES[name].running()) process.stdout.write(`${name}\n`);
      return;
    default:
      throw new Error(USAGE);
  }
}

main().catch((error) => {
  log('services', error instanceof ServiceError ? error.message : (error.stack ?? String(error)));
  process.exitCode = 1;
});
