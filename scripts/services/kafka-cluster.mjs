// A three-node Apache Kafka cluster (KRaft; each node broker and controller, a static
// three-voter quorum) on 127.0.0.1, from the same jars as the single broker (kafka.mjs), for
// tests that kill brokers and the active controller. See docs/infrastructure.md.
//
//   node scripts/services.mjs up kafka-cluster      start or reuse; prints KAFKA_CLUSTER_BROKERS=
//
// Node n (1..3) listens on BASE+n-1 (clients) and CONTROLLER_BASE+n-1 (quorum); its config,
// data, logs and state live in .services/kafka-cluster-<n>/. `up` starts whichever nodes are not
// running (so after a test killed one, `up` restarts it) and waits until all three are
// registered and the coordinators answer.
import { spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { JVM_OPTS, VERSION, ensureJars, ensureJava, newClusterId, recipeDir } from './kafka.mjs';
import {
  HOST,
  ServiceError,
  isRecordedProcess,
  log,
  portOpen,
  processInfo,
  readJson,
  run,
  seconds,
  servicesDir,
  waitUntil,
  writeJson,
} from './lib.mjs';

const NAME = 'kafka-cluster';
export const NODES = [1, 2, 3];
const BASE_PORT = Number(process.env.TIDEMARK_KAFKA_CLUSTER_PORT ?? 19092);
const CONTROLLER_BASE_PORT = Number(
  process.env.TIDEMARK_KAFKA_CLUSTER_CONTROLLER_PORT ?? BASE_PORT + 100,
);
const HEAP_OPTS = (process.env.TIDEMARK_KAFKA_CLUSTER_HEAP_OPTS ?? '-Xms128m -Xmx256m')
  .split(/\s+/)
  .filter(Boolean);
const START_TIMEOUT_MS = Number(process.env.TIDEMARK_KAFKA_START_TIMEOUT ?? 120) * 1000;
const EXTRA_PROPS = process.env.TIDEMARK_KAFKA_CLUSTER_EXTRA_PROPS ?? '';

export const brokerPort = (node) => BASE_PORT + node - 1;
export const controllerPort = (node) => CONTROLLER_BASE_PORT + node - 1;
export const nodeDir = (node) => join(servicesDir, `${NAME}-${node}`);
const voters = () => NODES.map((n) => `${n}@${HOST}:${controllerPort(n)}`).join(',');

export function clusterBrokers() {
  return NODES.map((n) => `${HOST}:${brokerPort(n)}`).join(',');
}

function paths(node) {
  const dir = nodeDir(node);
  return {
    dir,
    dataDir: join(dir, 'data'),
    logDir: join(dir, 'logs'),
    configPath: join(dir, 'server.properties'),
    statePath: join(dir, 'state.json'),
    formatMarkerPath: join(dir, 'formatted-with'),
  };
}

/** The recorded state of node `node` (pid, ports, ...), or undefined. */
export function nodeState(node) {
  return readJson(paths(node).statePath);
}

function isOurNode(node, state = nodeState(node)) {
  if (!isRecordedProcess(state)) return false;
  const cmd = processInfo(state.pid)?.cmdline ?? [];
  return cmd.includes('kafka.Kafka') && cmd.includes(state.configPath);
}

function renderConfig(node) {
  const p = paths(node);
  const template = readFileSync(join(recipeDir, 'cluster.properties'), 'utf8');
  let text = template
    .replaceAll('@NODE_ID@', String(node))
    .replaceAll('@VOTERS@', voters())
    .replaceAll('@HOST@', HOST)
    .replaceAll('@PORT@', String(brokerPort(node)))
    .replaceAll('@CONTROLLER_PORT@', String(controllerPort(node)))
    .replaceAll('@DATA_DIR@', p.dataDir);
  if (EXTRA_PROPS.trim())
    text += `\n# TIDEMARK_KAFKA_CLUSTER_EXTRA_PROPS\n${EXTRA_PROPS.replaceAll('\\n', '\n')}\n`;
  mkdirSync(p.dir, { recursive: true });
  writeFileSync(p.configPath, text);
}

/**
 * All three data directories carry one cluster id: if any of them is missing or was formatted
 * for another version or quorum, all three are wiped and formatted again with a new id (only
 * when no node runs; a running node's directory is never touched).
 */
async function ensureFormatted(java, libs, timings) {
  const formatId = (node) => `${VERSION} ${voters()} node ${node} static-quorum`;
  const ok = NODES.every((n) => {
    const p = paths(n);
    const marker = existsSync(p.formatMarkerPath)
      ? readFileSync(p.formatMarkerPath, 'utf8').trim()
      : '';
    return existsSync(join(p.dataDir, 'meta.properties')) && marker === formatId(n);
  });
  if (ok) return false;
  const running = NODES.filter((n) => isOurNode(n));
  if (running.length > 0) {
    throw new ServiceError(
      NAME,
      `node(s) ${running.join(', ')} run but the others' data directories do not match; run services:down kafka-cluster --purge`,
    );
  }
  const clusterId = newClusterId();
  log(NAME, `formatting three data directories (cluster id ${clusterId})`);
  const started = Date.now();
  await Promise.all(
    NODES.map(async (n) => {
      const p = paths(n);
      rmSync(p.dataDir, { recursive: true, force: true });
      rmSync(p.formatMarkerPath, { force: true });
      await run(java, [
        '-Xmx128m',
        `-Dlog4j2.configurationFile=${join(recipeDir, 'tools-log4j2.properties')}`,
        '-cp',
        `${libs}/*`,
        'kafka.tools.StorageTool',
        'format',
        '--cluster-id',
        clusterId,
        '--config',
        p.configPath,
      ]);
      writeFileSync(p.formatMarkerPath, `${formatId(n)}\n`);
    }),
  );
  timings.formatMs = Date.now() - started;
  log(NAME, `formatted in ${seconds(timings.formatMs)}`);
  return true;
}

/**
 * Ready means: Metadata from the cluster lists all three brokers, and both coordinators (group
 * and transaction) are found, which also creates the internal topics (replication factor 3).
 */
async function clusterReady(brokers, { expect = NODES.length } = {}) {
  const kafka = await import('@platformatic/kafka');
  const admin = new kafka.Admin({
    clientId: 'tidemark-services',
    bootstrapBrokers: brokers.split(','),
    retries: 0,
    timeout: 5000,
    connectTimeout: 3000,
  });
  try {
    const metadata = await admin.metadata({ forceUpdate: true });
    if (metadata.brokers.size < expect) {
      throw new Error(`${metadata.brokers.size} of ${expect} brokers registered`);
    }
    for (const keyType of [
      kafka.FindCoordinatorKeyTypes.GROUP,
      kafka.FindCoordinatorKeyTypes.TRANSACTION,
    ]) {
      const [found] = await admin.findCoordinator({ keyType, keys: ['tidemark-services-probe'] });
      if (!found || found.nodeId < 0) throw new Error(`no coordinator yet (key type ${keyType})`);
    }
    return { clusterId: metadata.id, brokers: [...metadata.brokers.values()] };
  } finally {
    await admin.close().catch(() => {});
  }
}

function startNode(node, java, libs, fresh) {
  const p = paths(node);
  mkdirSync(p.logDir, { recursive: true });
  const out = openSync(join(p.logDir, 'kafka.out'), 'a');
  const args = [
    ...HEAP_OPTS,
    ...JVM_OPTS,
    `-Dlog4j2.configurationFile=${join(recipeDir, 'log4j2.properties')}`,
    `-Dkafka.logs.dir=${p.logDir}`,
    '-cp',
    `${libs}/*`,
    'kafka.Kafka',
    p.configPath,
  ];
  log(
    NAME,
    `starting node ${node} on ${HOST}:${brokerPort(node)} (controller ${controllerPort(node)}; ${fresh ? 'cold' : 'warm'}; logs: ${p.logDir}/server.log)`,
  );
  // Detached, output to files: the nodes outlive this script (as the single broker does).
  const child = spawn(java, args, { cwd: p.dir, detached: true, stdio: ['ignore', out, out] });
  closeSync(out);
  child.unref();
  let exited = false;
  child.once('exit', () => (exited = true));
  return {
    node,
    pid: child.pid,
    stillAlive: () => !exited && processInfo(child.pid) !== undefined,
  };
}

function tails(nodes) {
  return nodes
    .flatMap((n) => ['kafka.out', 'server.log'].map((f) => join(paths(n).logDir, f)))
    .filter((f) => existsSync(f))
    .map((f) => `--- ${f} ---\n${readFileSync(f, 'utf8').split('\n').slice(-15).join('\n')}`)
    .join('\n');
}

/** Starts the nodes that do not run (all, or the ones a test killed); resolves the brokers. */
export async function up() {
  const timings = {};
  const running = NODES.filter((n) => isOurNode(n));
  for (const n of running) {
    const state = nodeState(n);
    if (state.port !== brokerPort(n)) {
      throw new ServiceError(
        NAME,
        `node ${n} runs on port ${state.port}, but ${brokerPort(n)} is asked for; run services:down kafka-cluster first`,
      );
    }
  }
  const missing = NODES.filter((n) => !running.includes(n));
  if (
    running.length === 0 &&
    (await Promise.all(NODES.map((n) => portOpen(brokerPort(n))))).every(Boolean)
  ) {
    // Another checkout's cluster (a second worktree, a CI clone beside a developer's tree) on our
    // ports: if it answers as a ready three-broker cluster, use it and leave its life to
    // whoever started it (our `down` stops only nodes this checkout recorded).
    const ready = await clusterReady(clusterBrokers()).catch(() => undefined);
    if (ready) {
      log(
        NAME,
        `reusing a cluster this checkout did not start, on ${clusterBrokers()} (cluster ${ready.clusterId})`,
      );
      return clusterBrokers();
    }
  }
  if (missing.length === 0) {
    await waitUntil(NAME, () => clusterReady(clusterBrokers()), { timeoutMs: 60_000 });
    log(
      NAME,
      `reusing the running cluster (pids ${running.map((n) => nodeState(n).pid).join(', ')})`,
    );
    return clusterBrokers();
  }
  for (const n of missing) {
    for (const port of [brokerPort(n), controllerPort(n)]) {
      if (await portOpen(port)) {
        throw new ServiceError(
          NAME,
          `${HOST}:${port} (node ${n}) is taken by a process this script did not start; stop it, or ` +
            'choose other ports with TIDEMARK_KAFKA_CLUSTER_PORT / TIDEMARK_KAFKA_CLUSTER_CONTROLLER_PORT',
        );
      }
    }
  }
  const java = await ensureJava();
  const libs = await ensureJars(timings);
  // A running node keeps the config it started with; only the missing ones are rendered anew.
  for (const n of missing) renderConfig(n);
  const fresh = await ensureFormatted(java, libs, timings);
  const started = Date.now();
  const children = missing.map((n) => startNode(n, java, libs, fresh));
  try {
    // A node opens its client port once it has caught up with the metadata log, which needs a
    // quorum: the ports of a cold cluster open together, once two controllers have met.
    await Promise.all(
      children.map((c) =>
        waitUntil(`${NAME} node ${c.node} port`, () => portOpen(brokerPort(c.node)), {
          timeoutMs: START_TIMEOUT_MS,
          intervalMs: 100,
          stillAlive: c.stillAlive,
        }),
      ),
    );
    timings.portOpenMs = Date.now() - started;
    const ready = await waitUntil(NAME, () => clusterReady(clusterBrokers()), {
      timeoutMs: Math.max(20_000, START_TIMEOUT_MS - timings.portOpenMs),
      stillAlive: () => children.every((c) => c.stillAlive()),
    });
    timings.readyMs = Date.now() - started;
    const rss = [];
    for (const c of children) {
      const info = processInfo(c.pid);
      const p = paths(c.node);
      rss.push(`node ${c.node} ${info?.rssMb ?? '?'} MB`);
      writeJson(p.statePath, {
        service: NAME,
        node: c.node,
        pid: c.pid,
        startTicks: info.startTicks,
        version: VERSION,
        port: brokerPort(c.node),
        controllerPort: controllerPort(c.node),
        configPath: p.configPath,
        dataDir: p.dataDir,
        logDir: p.logDir,
        libs,
        brokers: clusterBrokers(),
        startedAt: new Date().toISOString(),
        coldStart: fresh,
        timings,
        rssMbAtReady: info.rssMb,
      });
    }
    log(
      NAME,
      `ready in ${seconds(timings.readyMs)} (ports open after ${seconds(timings.portOpenMs)}; ` +
        `started node(s) ${missing.join(', ')}; rss ${rss.join(', ')}; cluster ${ready.clusterId})`,
    );
  } catch (error) {
    for (const c of children) if (processInfo(c.pid)) process.kill(c.pid, 'SIGKILL');
    throw new ServiceError(NAME, `${error.message}\n${tails(missing)}`);
  }
  return clusterBrokers();
}

/** Stops the nodes `up` started (all at once: a controlled shutdown needs the quorum). */
export async function down({ purge = false } = {}) {
  const running = NODES.filter((n) => isOurNode(n));
  if (running.length === 0) log(NAME, 'not running (nothing started by services:up)');
  const started = Date.now();
  await Promise.all(
    running.map(async (n) => {
      const state = nodeState(n);
      process.kill(state.pid, 'SIGTERM');
      try {
        await waitUntil(`${NAME} node ${n} stop`, () => !processInfo(state.pid), {
          timeoutMs: 30_000,
          intervalMs: 100,
        });
      } catch {
        log(NAME, `node ${n} still running after 30s; sending SIGKILL`);
        process.kill(state.pid, 'SIGKILL');
      }
    }),
  );
  if (running.length > 0)
    log(NAME, `stopped node(s) ${running.join(', ')} in ${seconds(Date.now() - started)}`);
  for (const n of NODES) {
    const state = nodeState(n);
    if (state)
      writeJson(paths(n).statePath, {
        ...state,
        pid: null,
        startTicks: null,
        stoppedAt: new Date().toISOString(),
      });
    if (purge) rmSync(nodeDir(n), { recursive: true, force: true });
  }
  if (purge) log(NAME, `purged ${NODES.map(nodeDir).join(', ')}`);
}

/** One line per node, for `services:status`. */
/** Whether a node this checkout started runs now. */
export function running() {
  return NODES.some((n) => isOurNode(n));
}

export function status() {
  const lines = NODES.map((n) => {
    const state = nodeState(n);
    if (isOurNode(n, state)) {
      const info = processInfo(state.pid);
      return `  node ${n}: running  pid ${state.pid}  ${HOST}:${state.port} (controller ${state.controllerPort})  rss ${info?.rssMb ?? '?'} MB  log ${state.logDir}/server.log`;
    }
    return `  node ${n}: stopped${existsSync(paths(n).dataDir) ? `  (data kept in ${paths(n).dataDir})` : ''}`;
  });
  const up = NODES.filter((n) => isOurNode(n)).length;
  const head =
    up === 0
      ? 'kafka-cluster: stopped'
      : `kafka-cluster: ${up === NODES.length ? 'running' : `degraded (${up} of ${NODES.length} nodes)`}  Kafka ${VERSION}`;
  return `${head}\n${lines.join('\n')}${up > 0 ? `\n  KAFKA_CLUSTER_BROKERS=${clusterBrokers()}` : ''}`;
}

/** Checks that an external cluster (KAFKA_CLUSTER_BROKERS) answers with three brokers. */
export async function verifyExternal(brokers) {
  try {
    const ready = await waitUntil(NAME, () => clusterReady(brokers), {
      timeoutMs: 15_000,
      intervalMs: 500,
    });
    log(
      NAME,
      `using KAFKA_CLUSTER_BROKERS from the environment (cluster ${ready.clusterId}, ${ready.brokers.length} brokers)`,
    );
  } catch (error) {
    throw new ServiceError(
      NAME,
      `KAFKA_CLUSTER_BROKERS from the environment does not answer as a three-broker cluster: ${error.message}`,
    );
  }
}
