/**
 * Control of the local three-node cluster for the tests in test/cluster/: which node leads a
 * topic's partitions, which is the active KRaft controller, SIGKILL of one node, and its restart
 * (through `scripts/services.mjs up kafka-cluster`, which starts the nodes that do not run).
 */
import { spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  watch,
  writeSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { Admin, Connection, describeQuorumV2 } from '@platformatic/kafka';

const root = new URL('../../', import.meta.url).pathname;
const servicesDir = process.env.TIDEMARK_SERVICES_DIR ?? join(root, '.services');

interface NodeState {
  node: number;
  pid: number | null;
  port: number;
}

function nodeState(node: number): NodeState | undefined {
  try {
    const path = join(servicesDir, `kafka-cluster-${node}`, 'state.json');
    return JSON.parse(readFileSync(path, 'utf8')) as NodeState;
  } catch {
    return undefined;
  }
}

/**
 * True when the cluster at `brokers` is the one this checkout's services:up started (its nodes
 * may be killed and restarted by the test); false for a cluster of someone else's.
 */
export function clusterIsLocal(brokers: readonly string[]): boolean {
  const ports = brokers.map((b) => Number(b.split(':')[1]));
  return [1, 2, 3].every((n) => {
    const state = nodeState(n);
    return state?.pid != null && ports.includes(state.port);
  });
}

/** Node id → the number of partitions of `topic` it leads. */
export async function partitionLeaders(
  brokers: readonly string[],
  topic: string,
): Promise<{ leaders: number[]; replicas: number[][] }> {
  const admin = new Admin({ clientId: 'tidemark-cluster-test', bootstrapBrokers: [...brokers] });
  try {
    const metadata = await admin.metadata({ topics: [topic], forceUpdate: true });
    const partitions = metadata.topics.get(topic)?.partitions ?? [];
    return {
      leaders: partitions.map((p) => p.leader),
      replicas: partitions.map((p) => p.replicas),
    };
  } finally {
    await admin.close();
  }
}

/** The active KRaft controller (leader of `__cluster_metadata`), asked of any live broker. */
export async function activeController(brokers: readonly string[]): Promise<number> {
  let lastError: unknown;
  for (const broker of brokers) {
    const [host, port] = broker.split(':');
    const connection = new Connection('tidemark-cluster-test');
    try {
      await connection.connect(host!, Number(port));
      const response = await describeQuorumV2.api.async(connection, [
        { topicName: '__cluster_metadata', partitions: [{ partitionIndex: 0 }] },
      ]);
      const leader = response.topics[0]?.partitions[0]?.leaderId ?? -1;
      if (leader >= 0) return leader;
    } catch (error) {
      lastError = error;
    } finally {
      await connection.close().catch(() => {});
    }
  }
  throw new Error(`no broker could describe the quorum: ${String(lastError)}`);
}

/** SIGKILL of node `node`; resolves when its process is gone. */
export async function kill9Node(node: number): Promise<void> {
  const pid = nodeState(node)?.pid;
  if (!pid) throw new Error(`node ${node} is not running (no pid in its state.json)`);
  process.kill(pid, 'SIGKILL');
  for (;;) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    // SIGKILL is delivered at once; the kernel reaps within a few turns of the event loop.
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/**
 * Starts what is not running and waits until all three brokers are registered and the
 * coordinators answer (`services.mjs up kafka-cluster`). Resolves the time it took, in ms.
 */
export async function restartMissingNodes(): Promise<number> {
  const started = Date.now();
  const env = { ...process.env };
  delete env.KAFKA_CLUSTER_BROKERS;
  const child = spawn(
    process.execPath,
    [join(root, 'scripts', 'services.mjs'), 'up', 'kafka-cluster'],
    {
      cwd: root,
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += String(chunk)));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  if (code !== 0) throw new Error(`services up kafka-cluster failed (${code}):\n${stderr}`);
  return Date.now() - started;
}

/**
 * An exclusive hold on the cluster across processes (a file created with O_EXCL holding our pid;
 * a holder that died is taken over): two test runs in one checkout (two engineers' `npm test`)
 * must not kill nodes at the same time, or the quorum and min.insync.replicas are lost for both.
 * Resolves a release function.
 */
export async function holdCluster(timeoutMs = 1_200_000): Promise<() => void> {
  mkdirSync(servicesDir, { recursive: true });
  const path = join(servicesDir, 'kafka-cluster-test.lock');
  const deadline = Date.now() + timeoutMs;
  let announced = false;
  for (;;) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(path, { force: true });
    } catch (error) {
      if ((error as { code?: string }).code !== 'EEXIST') throw error;
    }
    const holder = Number(readFileSync(path, 'utf8').trim() || 0);
    let alive = holder > 0;
    try {
      if (alive) process.kill(holder, 0);
    } catch {
      alive = false;
    }
    if (!alive) {
      rmSync(path, { force: true });
      continue;
    }
    if (!announced) {
      process.stderr.write(
        `cluster test: waiting for another run's cluster test (pid ${holder})\n`,
      );
      announced = true;
    }
    if (Date.now() > deadline) throw new Error(`${path} held by pid ${holder} for too long`);
    await lockReleased(path, holder, deadline);
  }
}

/**
 * Resolves when the lock file goes (the holder released it: a change in its folder) or its
 * holder is gone (it died holding it: its exit cannot be watched from here, so the folder's
 * next change, or the deadline, makes us look again).
 */
function lockReleased(path: string, holder: number, deadline: number): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      watcher.close();
      clearTimeout(timer);
      resolve();
    };
    const watcher = watch(dirname(path), () => {
      if (!existsSync(path)) done();
      try {
        process.kill(holder, 0);
      } catch {
        done();
      }
    });
    const timer = setTimeout(done, Math.max(0, deadline - Date.now()));
    if (!existsSync(path)) done();
  });
}

/** True when a node of the cluster is not running (a test ended between a kill and a restart). */
export function nodeMissing(): boolean {
  return [1, 2, 3].some((n) => {
    const pid = nodeState(n)?.pid;
    if (!pid) return true;
    try {
      process.kill(pid, 0);
      return false;
    } catch {
      return true;
    }
  });
}
