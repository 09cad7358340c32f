// An S3-compatible object store of the project's own, for the archive's second segment store
// (docs/retention.md): gofakes3, built from its Go module with the machine's Go (the Go module
// proxy), pinned to one version, cached in ~/.cache/tidemark/gofakes3-<version>/ (TIDEMARK_CACHE_DIR
// moves the cache), run on 127.0.0.1 with its filesystem backend under .services/s3/. Made for
// tests: no authentication is checked (any signature is accepted), buckets are created on first
// use. `up` prints TIDEMARK_S3_ENDPOINT=http://127.0.0.1:<port>.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, openSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import {
  HOST,
  ServiceError,
  isRecordedProcess,
  log,
  portOpen,
  processInfo,
  readJson,
  seconds,
  servicesDir,
  waitUntil,
  writeJson,
} from './lib.mjs';

const { fetch, AbortSignal } = globalThis;
const NAME = 's3';
/** The Go module version of github.com/johannesboyne/gofakes3. */
export const GOFAKES3_VERSION = 'v1.2.0';
const MODULE = 'github.com/johannesboyne/gofakes3/cmd/gofakes3';
export const S3_PORT = Number(process.env.TIDEMARK_S3_PORT ?? 9329);
const baseDir = join(servicesDir, 's3');
const statePath = join(baseDir, 'state.json');

const readState = () => (existsSync(statePath) ? readJson(statePath) : undefined);

/** The path of the server binary, built into the cache when missing. */
export function ensureBinary() {
  const cache = process.env.TIDEMARK_CACHE_DIR ?? join(homedir(), '.cache', 'tidemark');
  const dir = join(cache, `gofakes3-${GOFAKES3_VERSION}`);
  const binary = join(dir, 'gofakes3');
  if (existsSync(binary)) return binary;
  const go = spawnSync('go', ['version'], { encoding: 'utf8' });
  if (go.status !== 0) throw new ServiceError(NAME, 'gofakes3 is not built and Go is not on PATH');
  log(NAME, `building ${MODULE}@${GOFAKES3_VERSION} with ${go.stdout.trim()} (once)`);
  // Built into a scratch folder and moved into place: an interrupted build leaves no half binary.
  const scratch = join(dir, `build-${process.pid}`);
  mkdirSync(scratch, { recursive: true });
  const build = spawnSync('go', ['install', `${MODULE}@${GOFAKES3_VERSION}`], {
    env: { ...process.env, GOBIN: scratch, GOFLAGS: '-buildvcs=false' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (build.status !== 0) {
    throw new ServiceError(
      NAME,
      `go install ${MODULE}@${GOFAKES3_VERSION} failed (exit ${build.status})`,
    );
  }
  renameSync(join(scratch, 'gofakes3'), binary);
  rmSync(scratch, { recursive: true, force: true });
  return binary;
}

export const localEndpoint = () => `http://${HOST}:${S3_PORT}`;

/** Whether the endpoint answers a bucket listing (GET /) with S3's XML. */
async function answersAsS3(endpoint) {
  try {
    const response = await fetch(`${endpoint}/`, { signal: AbortSignal.timeout(2000) });
    return (await response.text()).includes('ListAllMyBucketsResult');
  } catch {
    return false;
  }
}

/** Starts the server (or finds it running); resolves with its endpoint. */
export async function up() {
  const state = readState();
  if (isRecordedProcess(state) && (await portOpen(state.port))) {
    log(NAME, `reusing gofakes3 (pid ${state.pid}) on ${HOST}:${state.port}`);
    return state.endpoint;
  }
  if (await portOpen(S3_PORT)) {
    // Another checkout's server (or any S3-compatible one) on the port: reuse it when it answers
    // as S3 does, as `up` does for PostgreSQL and Kafka; `down` leaves it alone (not ours).
    if (await answersAsS3(localEndpoint())) {
      log(
        NAME,
        `reusing an S3-compatible server this checkout did not start, on ${localEndpoint()}`,
      );
      return localEndpoint();
    }
    throw new ServiceError(
      NAME,
      `port ${S3_PORT} is taken by a process that does not answer as S3 (TIDEMARK_S3_PORT moves it)`,
    );
  }
  const binary = ensureBinary();
  const dataDir = join(baseDir, 'data');
  mkdirSync(dataDir, { recursive: true });
  const logFile = join(baseDir, 'server.log');
  const out = openSync(logFile, 'a');
  const started = Date.now();
  const child = spawn(
    binary,
    [
      '-backend',
      'fs',
      '-fs.path',
      dataDir,
      '-fs.create',
      '-autobucket',
      '-host',
      `${HOST}:${S3_PORT}`,
    ],
    { detached: true, stdio: ['ignore', out, out] },
  );
  child.unref();
  const stillAlive = () => processInfo(child.pid) !== undefined;
  await waitUntil('gofakes3', () => portOpen(S3_PORT), { timeoutMs: 30_000, stillAlive });
  const endpoint = localEndpoint();
  writeJson(statePath, {
    pid: child.pid,
    startTicks: processInfo(child.pid)?.startTicks,
    port: S3_PORT,
    endpoint,
    dataDir,
    logFile,
    startedAt: new Date().toISOString(),
  });
  log(
    NAME,
    `gofakes3 ${GOFAKES3_VERSION} up on ${HOST}:${S3_PORT} in ${seconds(Date.now() - started)}`,
  );
  return endpoint;
}

export async function down({ purge = false } = {}) {
  const state = readState();
  if (isRecordedProcess(state)) {
    log(NAME, `stopping gofakes3 (pid ${state.pid})`);
    process.kill(state.pid, 'SIGTERM');
    writeJson(statePath, {
      ...state,
      pid: null,
      startTicks: null,
      stoppedAt: new Date().toISOString(),
    });
  } else {
    log(NAME, 'not running (nothing started by services:up)');
  }
  if (purge) {
    rmSync(baseDir, { recursive: true, force: true });
    log(NAME, `purged ${baseDir}`);
  }
}

/** Whether a server this checkout started runs now. */
export function running() {
  return isRecordedProcess(readState());
}

export function status() {
  const state = readState();
  if (isRecordedProcess(state)) {
    return `s3: running  pid ${state.pid}  ${HOST}:${state.port}  data ${state.dataDir}  log ${state.logFile}\n  TIDEMARK_S3_ENDPOINT=${state.endpoint}`;
  }
  return 's3: stopped';
}

/** Checks that an S3 endpoint given in the environment answers HTTP. */
export async function verifyExternal(endpoint) {
  const url = new URL(endpoint);
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  try {
    if (!(await portOpen(port, url.hostname, 10_000))) throw new Error('no answer on its port');
    log(NAME, `using TIDEMARK_S3_ENDPOINT from the environment (${endpoint})`);
  } catch (error) {
    throw new ServiceError(
      NAME,
      `TIDEMARK_S3_ENDPOINT ${endpoint} does not answer: ${error.message}`,
    );
  }
}
