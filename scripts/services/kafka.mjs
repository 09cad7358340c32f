// A single-node Apache Kafka 4.x (KRaft, combined broker + controller) on 127.0.0.1, run from
// the broker jars on Maven Central: no tarball, no Docker. See docs/infrastructure.md.
//
//   1. jars    mvn dependency:copy-dependencies on scripts/kafka/pom.xml, once per Kafka version,
//              into a cache outside git (~/.cache/tidemark/kafka-<version>/libs)
//   2. config  scripts/kafka/server.properties rendered into .services/kafka/server.properties
//   3. format  kafka.tools.StorageTool format, once per data directory
//   4. start   java kafka.Kafka, detached, bounded heap, output in .services/kafka/logs/
//   5. ready   port open, then a Metadata round trip and both coordinators found (client calls)
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import {
  HOST,
  ServiceError,
  aptInstall,
  isRecordedProcess,
  log,
  portOpen,
  processInfo,
  projectRoot,
  readJson,
  run,
  seconds,
  servicesDir,
  waitUntil,
  which,
  writeJson,
} from './lib.mjs';

const NAME = 'kafka';
export const VERSION = process.env.TIDEMARK_KAFKA_VERSION ?? '4.4.0';
export const KAFKA_PORT = Number(process.env.TIDEMARK_KAFKA_PORT ?? 9092);
const CONTROLLER_PORT = Number(process.env.TIDEMARK_KAFKA_CONTROLLER_PORT ?? KAFKA_PORT + 1);
const HEAP_OPTS = (process.env.TIDEMARK_KAFKA_HEAP_OPTS ?? '-Xms256m -Xmx512m')
  .split(/\s+/)
  .filter(Boolean);
const START_TIMEOUT_MS = Number(process.env.TIDEMARK_KAFKA_START_TIMEOUT ?? 120) * 1000;
const EXTRA_PROPS = process.env.TIDEMARK_KAFKA_EXTRA_PROPS ?? '';

// The log4j2 release each Kafka release was built with (its gradle/dependencies.gradle). Any
// 2.24 or 2.25 works; what matters is that every log4j jar on the classpath shares one version.
const LOG4J2_BY_KAFKA = {
  '4.0.0': '2.24.3',
  '4.0.1': '2.24.3',
  '4.1.0': '2.24.3',
  '4.1.1': '2.24.3',
  '4.0.2': '2.25.3',
  '4.1.2': '2.25.3',
  '4.2.0': '2.25.3',
  '4.2.1': '2.25.4',
  '4.3.0': '2.25.4',
  '4.3.1': '2.25.4',
};
const LOG4J2_VERSION =
  process.env.TIDEMARK_KAFKA_LOG4J2_VERSION ?? LOG4J2_BY_KAFKA[VERSION] ?? '2.25.5';

// Same as bin/kafka-run-class.sh of the 4.x tarball, plus failing fast on an OutOfMemoryError.
export const JVM_OPTS = [
  '-server',
  '-XX:+UseG1GC',
  '-XX:MaxGCPauseMillis=20',
  '-XX:InitiatingHeapOccupancyPercent=35',
  '-XX:+ExplicitGCInvokesConcurrent',
  '-XX:MaxInlineLevel=15',
  '-XX:+ExitOnOutOfMemoryError',
  '-Djava.awt.headless=true',
];

export const recipeDir = join(projectRoot, 'scripts', 'kafka');
const runDir = join(servicesDir, 'kafka');
const dataDir = join(runDir, 'data');
const logDir = join(runDir, 'logs');
const configPath = join(runDir, 'server.properties');
const statePath = join(runDir, 'state.json');
const formatMarkerPath = join(runDir, 'formatted-with');

function cacheRoot() {
  const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return process.env.TIDEMARK_KAFKA_CACHE ?? join(base, 'tidemark', `kafka-${VERSION}`);
}

function libsDir() {
  return join(cacheRoot(), 'libs');
}

export function localBrokers() {
  return `${HOST}:${KAFKA_PORT}`;
}

async function javaMajor(java) {
  const { stderr } = await run(java, ['-version']);
  return Number(/version "(\d+)/.exec(stderr)?.[1] ?? 0);
}

/** A Java 17+ runtime: JAVA_HOME, PATH, or Debian's openjdk-17 when we may install it. */
export async function ensureJava() {
  const fromHome = process.env.JAVA_HOME && join(process.env.JAVA_HOME, 'bin', 'java');
  let java = fromHome && existsSync(fromHome) ? fromHome : which('java');
  if (!java) {
    log(NAME, 'no java found; installing openjdk-17-jre-headless');
    await aptInstall(NAME, ['openjdk-17-jre-headless']);
    java = which('java');
  }
  if (!java) throw new ServiceError(NAME, 'java not found (set JAVA_HOME)');
  const major = await javaMajor(java);
  if (major < 17)
    throw new ServiceError(NAME, `Kafka ${VERSION} brokers need Java 17+, ${java} is ${major}`);
  return java;
}

/** Downloads the broker's jars once per version; a half-finished download is never used. */
export async function ensureJars(timings) {
  const libs = libsDir();
  const coreJar = join(libs, `kafka_2.13-${VERSION}.jar`);
  if (existsSync(coreJar)) return libs;
  let mvn = which('mvn');
  if (!mvn) {
    log(NAME, 'no mvn found; installing maven');
    await aptInstall(NAME, ['maven']);
    mvn = which('mvn');
  }
  if (!mvn) throw new ServiceError(NAME, 'maven (mvn) not found');
  const tmp = `${libs}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  log(NAME, `downloading Kafka ${VERSION} broker jars (log4j ${LOG4J2_VERSION}) into ${libs}`);
  const started = Date.now();
  try {
    await run(
      mvn,
      [
        '-B',
        '-q',
        '-ntp',
        '-f',
        join(recipeDir, 'pom.xml'),
        'dependency:copy-dependencies',
        `-Dkafka.version=${VERSION}`,
        `-Dlog4j2.version=${LOG4J2_VERSION}`,
        `-Dkafka.libs.dir=${tmp}`,
      ],
      { cwd: recipeDir },
    );
  } catch (error) {
    rmSync(tmp, { recursive: true, force: true });
    throw new ServiceError(NAME, `could not fetch Kafka ${VERSION} from Maven: ${error.message}`);
  }
  if (!existsSync(join(tmp, `kafka_2.13-${VERSION}.jar`))) {
    throw new ServiceError(NAME, `maven finished but ${tmp} has no kafka_2.13-${VERSION}.jar`);
  }
  // Never mix two Kafka versions on one classpath: the whole folder is swapped at once.
  rmSync(libs, { recursive: true, force: true });
  renameSync(tmp, libs);
  timings.downloadMs = Date.now() - started;
  log(NAME, `jars downloaded in ${seconds(timings.downloadMs)}`);
  return libs;
}

function renderConfig() {
  const template = readFileSync(join(recipeDir, 'server.properties'), 'utf8');
  let text = template
    .replaceAll('@HOST@', HOST)
    .replaceAll('@PORT@', String(KAFKA_PORT))
    .replaceAll('@CONTROLLER_PORT@', String(CONTROLLER_PORT))
    .replaceAll('@DATA_DIR@', dataDir);
  if (EXTRA_PROPS.trim())
    text += `\n# TIDEMARK_KAFKA_EXTRA_PROPS\n${EXTRA_PROPS.replaceAll('\\n', '\n')}\n`;
  mkdirSync(runDir, { recursive: true });
  writeFileSync(configPath, text);
}

/** A KRaft cluster id: 16 random bytes, URL-safe base64 without padding, not starting with '-'. */
export function newClusterId() {
  for (;;) {
    const id = randomBytes(16).toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

/**
 * Formats the data directory once. A formatted directory remembers the cluster id, node id and
 * quorum, and in 4.4 a newer tool's format cannot be read by an older broker, so a change of
 * version or controller endpoint wipes and formats again.
 */
async function ensureFormatted(java, libs, timings) {
  const formatId = `${VERSION} ${HOST}:${CONTROLLER_PORT} node 1 static-quorum`;
  const current = existsSync(formatMarkerPath) ? readFileSync(formatMarkerPath, 'utf8').trim() : '';
  if (existsSync(join(dataDir, 'meta.properties')) && current === formatId) return false;
  if (existsSync(dataDir))
    log(NAME, `data directory was formatted for '${current || 'unknown'}'; wiping it`);
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(formatMarkerPath, { force: true });
  const clusterId = newClusterId();
  log(NAME, `formatting ${dataDir} (cluster id ${clusterId})`);
  const started = Date.now();
  await run(java, [
    `-Dlog4j2.configurationFile=${join(recipeDir, 'tools-log4j2.properties')}`,
    '-cp',
    `${libs}/*`,
    'kafka.tools.StorageTool',
    'format',
    '--cluster-id',
    clusterId,
    '--config',
    configPath,
  ]);
  writeFileSync(formatMarkerPath, `${formatId}\n`);
  timings.formatMs = Date.now() - started;
  log(NAME, `formatted in ${seconds(timings.formatMs)}`);
  return true;
}

/**
 * The real readiness check: a Metadata round trip through the same client Tidemark uses, then
 * FindCoordinator for a group and a transactional id. The last two make the broker create
 * __consumer_offsets and __transaction_state now, so the first test does not pay for it.
 */
async function clientReady(brokers, { quiet = false } = {}) {
  let kafka;
  try {
    kafka = await import('@platformatic/kafka');
  } catch {
    if (!quiet) log(NAME, '@platformatic/kafka not installed (npm ci?): port check only');
    return { brokers: [] };
  }
  const admin = new kafka.Admin({
    clientId: 'tidemark-services',
    bootstrapBrokers: brokers.split(','),
    retries: 0,
    timeout: 5000,
    connectTimeout: 3000,
  });
  try {
    const metadata = await admin.metadata({ forceUpdate: true });
    if (metadata.brokers.size === 0) throw new Error('no brokers in metadata yet');
    for (const keyType of [
      kafka.FindCoordinatorKeyTypes.GROUP,
      kafka.FindCoordinatorKeyTypes.TRANSACTION,
    ]) {
      const [found] = await admin.findCoordinator({ keyType, keys: ['tidemark-services-probe'] });
      if (!found || found.nodeId < 0) {
        throw new Error(`coordinator not available yet (key type ${keyType})`);
      }
    }
    return { clusterId: metadata.id, brokers: [...metadata.brokers.values()] };
  } finally {
    await admin.close().catch(() => {});
  }
}

function readState() {
  return readJson(statePath);
}

function isOurBroker(state) {
  if (!isRecordedProcess(state)) return false;
  const cmd = processInfo(state.pid)?.cmdline ?? [];
  return cmd.includes('kafka.Kafka') && cmd.includes(state.configPath);
}

/** Starts (or reuses) the local broker; resolves the KAFKA_BROKERS value. */
export async function up() {
  const timings = {};
  const state = readState();
  if (isOurBroker(state)) {
    if (state.port !== KAFKA_PORT) {
      throw new ServiceError(
        NAME,
        `running on port ${state.port}, but TIDEMARK_KAFKA_PORT asks for ${KAFKA_PORT}; run services:down first`,
      );
    }
    await waitUntil('kafka', () => clientReady(localBrokers(), { quiet: true }), {
      timeoutMs: 30_000,
    });
    log(NAME, `reusing the running broker (pid ${state.pid}, Kafka ${state.version})`);
    return localBrokers();
  }
  if (await portOpen(KAFKA_PORT)) {
    // Another checkout's broker (a second worktree, a CI clone beside a developer's tree) on our
    // port: if it answers as a ready broker, use it and leave its life to whoever started it.
    const ready = await clientReady(localBrokers(), { quiet: true }).catch(() => undefined);
    if (ready && ready.brokers.length > 0) {
      log(
        NAME,
        `reusing a broker this checkout did not start, on ${localBrokers()} (cluster ${ready.clusterId})`,
      );
      return localBrokers();
    }
  }
  for (const port of [KAFKA_PORT, CONTROLLER_PORT]) {
    if (await portOpen(port)) {
      throw new ServiceError(
        NAME,
        `${HOST}:${port} is taken by a process this script did not start; stop it, choose other ports ` +
          'with TIDEMARK_KAFKA_PORT / TIDEMARK_KAFKA_CONTROLLER_PORT, or point KAFKA_BROKERS at it',
      );
    }
  }

  const java = await ensureJava();
  const libs = await ensureJars(timings);
  renderConfig();
  const fresh = await ensureFormatted(java, libs, timings);

  mkdirSync(logDir, { recursive: true });
  const outPath = join(logDir, 'kafka.out');
  const out = openSync(outPath, 'a');
  const args = [
    ...HEAP_OPTS,
    ...JVM_OPTS,
    `-Dlog4j2.configurationFile=${join(recipeDir, 'log4j2.properties')}`,
    `-Dkafka.logs.dir=${logDir}`,
    '-cp',
    `${libs}/*`,
    'kafka.Kafka',
    configPath,
  ];
  log(
    NAME,
    `starting Kafka ${VERSION} on ${HOST}:${KAFKA_PORT} (${fresh ? 'cold: first start after format' : 'warm'}; logs: ${logDir}/server.log)`,
  );
  const started = Date.now();
  // Detached, in its own session, with no pipe of ours: the broker outlives this script, and a
  // caller that waits for our output (execSync, a CI step) is not held until the broker exits.
  const child = spawn(java, args, { cwd: runDir, detached: true, stdio: ['ignore', out, out] });
  closeSync(out);
  child.unref();
  const pid = child.pid;
  let exited = false;
  child.once('exit', () => (exited = true));
  const stillAlive = () => !exited && processInfo(pid) !== undefined;

  try {
    await waitUntil('kafka port', () => portOpen(KAFKA_PORT), {
      timeoutMs: START_TIMEOUT_MS,
      intervalMs: 100,
      stillAlive,
    });
    timings.portOpenMs = Date.now() - started;
    // KRaft opens the client port only after the broker is caught up and unfenced, so the
    // port alone is a fair signal; the client round trip below confirms it.
    const ready = await waitUntil('kafka metadata', () => clientReady(localBrokers()), {
      timeoutMs: Math.max(10_000, START_TIMEOUT_MS - timings.portOpenMs),
      stillAlive,
    });
    timings.readyMs = Date.now() - started;
    const info = processInfo(pid);
    log(
      NAME,
      `ready in ${seconds(timings.readyMs)} (port open after ${seconds(timings.portOpenMs)}; pid ${pid}; ` +
        `rss ${info?.rssMb ?? '?'} MB${ready.clusterId ? `; cluster ${ready.clusterId}` : ''})`,
    );
    writeJson(statePath, {
      service: NAME,
      pid,
      startTicks: info.startTicks,
      version: VERSION,
      port: KAFKA_PORT,
      controllerPort: CONTROLLER_PORT,
      configPath,
      dataDir,
      logDir,
      libs,
      brokers: localBrokers(),
      startedAt: new Date().toISOString(),
      coldStart: fresh,
      timings,
      rssMbAtReady: info.rssMb,
    });
  } catch (error) {
    const tail = ['kafka.out', 'server.log']
      .map((f) => join(logDir, f))
      .filter((f) => existsSync(f))
      .map((f) => `--- ${f} ---\n${readFileSync(f, 'utf8').split('\n').slice(-25).join('\n')}`)
      .join('\n');
    if (processInfo(pid)) process.kill(pid, 'SIGKILL');
    throw new ServiceError(NAME, `${error.message}\n${tail}`);
  }
  return localBrokers();
}

/** Stops the broker if (and only if) `up` started it; `purge` also deletes its data. */
export async function down({ purge = false } = {}) {
  const state = readState();
  if (isOurBroker(state)) {
    // SIGTERM runs the broker's shutdown hook: a controlled shutdown of broker, then controller.
    log(NAME, `stopping Kafka (pid ${state.pid})`);
    const started = Date.now();
    process.kill(state.pid, 'SIGTERM');
    try {
      await waitUntil('kafka stop', () => !processInfo(state.pid), {
        timeoutMs: 30_000,
        intervalMs: 100,
      });
      log(NAME, `stopped in ${seconds(Date.now() - started)}`);
    } catch {
      log(NAME, 'still running after 30s; sending SIGKILL');
      process.kill(state.pid, 'SIGKILL');
    }
  } else {
    log(NAME, 'not running (nothing started by services:up)');
  }
  if (state)
    writeJson(statePath, {
      ...state,
      pid: null,
      startTicks: null,
      stoppedAt: new Date().toISOString(),
    });
  if (purge) {
    rmSync(runDir, { recursive: true, force: true });
    log(NAME, `purged ${runDir} (the jar cache in ${cacheRoot()} is kept)`);
  }
}

/** One line about the local broker, for `services:status`. */
/** Whether the broker this checkout started runs now. */
export function running() {
  return isOurBroker(readState());
}

export function status() {
  const state = readState();
  if (isOurBroker(state)) {
    const info = processInfo(state.pid);
    return `kafka: running  pid ${state.pid}  ${state.brokers}  Kafka ${state.version}  rss ${info?.rssMb ?? '?'} MB  data ${state.dataDir}  log ${state.logDir}/server.log\n  KAFKA_BROKERS=${state.brokers}`;
  }
  return `kafka: stopped${existsSync(dataDir) ? `  (data kept in ${dataDir})` : ''}`;
}

/** Checks that externally provided brokers answer a Metadata request. */
export async function verifyExternal(brokers) {
  if (process.env.KAFKA_SSL || process.env.KAFKA_SASL_MECHANISM) {
    // TLS and SASL settings are the library's business (src/kafka/config.ts); a TCP check here.
    for (const broker of brokers.split(',')) {
      const [host, port] = broker.trim().split(':');
      if (!(await portOpen(Number(port), host, 5000)))
        throw new ServiceError(NAME, `${broker} does not accept connections`);
    }
    log(
      NAME,
      `using KAFKA_BROKERS from the environment (TLS/SASL set: TCP reachability checked only)`,
    );
    return;
  }
  try {
    const ready = await waitUntil('kafka', () => clientReady(brokers, { quiet: true }), {
      timeoutMs: 15_000,
      intervalMs: 500,
    });
    log(
      NAME,
      `using KAFKA_BROKERS from the environment (cluster ${ready.clusterId ?? '?'}, ${ready.brokers.length} broker(s))`,
    );
  } catch (error) {
    throw new ServiceError(
      NAME,
      `KAFKA_BROKERS from the environment does not answer: ${error.message}`,
    );
  }
}
