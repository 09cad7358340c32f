// Helpers shared by the local service managers (postgres.mjs, kafka.mjs).
// Human progress goes to stderr; stdout is reserved for the KEY=value lines callers parse.
import { spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createConnection } from 'node:net';
import { dirname, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

/** The repository root (scripts/services/ is two levels down). */
export const projectRoot = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');

/** Where services keep their data, logs and state; git-ignored. */
export const servicesDir = process.env.TIDEMARK_SERVICES_DIR ?? join(projectRoot, '.services');

/** Always an address, never "localhost": Node may resolve that name to ::1 first. */
export const HOST = '127.0.0.1';

export function log(service, message) {
  process.stderr.write(`[services:${service}] ${message}\n`);
}

export class ServiceError extends Error {
  constructor(service, message) {
    super(`${service}: ${message}`);
    this.service = service;
  }
}

export function seconds(ms) {
  return `${(ms / 1000).toFixed(1)}s`;
}

export function readJson(path) {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return undefined;
  }
}

/** Write through a temporary file and a rename, so a reader never sees half a file. */
export function writeJson(path, value) {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(value, null, 2)}\n`);
  renameSync(tmp, path);
}

/** Resolves true when a TCP connection to host:port is accepted within timeoutMs. */
export function portOpen(port, host = HOST, timeoutMs = 1000) {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port });
    const done = (open) => {
      socket.destroy();
      resolve(open);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * Polls `check` until it returns a truthy value, `stillAlive` turns false, or the deadline passes.
 * Used only by these scripts to wait for a server process; tests wait on signals instead.
 */
export async function waitUntil(what, check, { timeoutMs, intervalMs = 200, stillAlive }) {
  const deadline = Date.now() + timeoutMs;
  let lastError;
  for (;;) {
    try {
      const result = await check();
      if (result) return result;
    } catch (error) {
      lastError = error;
    }
    if (stillAlive && !stillAlive()) {
      throw new Error(`${what}: the process exited while starting`, { cause: lastError });
    }
    if (Date.now() > deadline) {
      const detail = lastError ? ` (last error: ${lastError.message})` : '';
      throw new Error(`${what}: not ready after ${seconds(timeoutMs)}${detail}`, {
        cause: lastError,
      });
    }
    await delay(intervalMs);
  }
}

/** Linux process facts from /proc; undefined when the process is gone or a zombie. */
export function processInfo(pid) {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const state = fields[0];
    if (state === 'Z' || state === 'X') return undefined;
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    const rssKb = Number(
      /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0,
    );
    // Field 22 of stat, start time in clock ticks since boot: with the pid it names one process
    // for good, so a recycled pid is never mistaken for ours.
    return { pid, startTicks: fields[19], cmdline, rssMb: Math.round(rssKb / 1024) };
  } catch {
    return undefined;
  }
}

/** True when `pid` is alive and is the very process recorded in `state`. */
export function isRecordedProcess(state) {
  if (!state?.pid) return false;
  const info = processInfo(state.pid);
  return info !== undefined && info.startTicks === state.startTicks;
}

/** Sum of the resident memory of a process and its descendants (PostgreSQL forks a backend per task). */
export function treeRssMb(rootPid) {
  const children = new Map();
  let entries = [];
  try {
    entries = readdirNumeric('/proc');
  } catch {
    return processInfo(rootPid)?.rssMb ?? 0;
  }
  for (const pid of entries) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(pid);
    } catch {
      // The process ended while we looked.
    }
  }
  let total = 0;
  const stack = [rootPid];
  while (stack.length > 0) {
    const pid = stack.pop();
    total += processInfo(pid)?.rssMb ?? 0;
    stack.push(...(children.get(pid) ?? []));
  }
  return total;
}

function readdirNumeric(path) {
  return readdirSync(path)
    .filter((name) => /^\d+$/.test(name))
    .map(Number);
}

/**
 * Runs a command to completion. Resolves {stdout, stderr}; rejects with both in the message.
 * `asUser` runs it through runuser when we are root (PostgreSQL refuses to run as root).
 */
export function run(command, args, { asUser, env, input, inherit = false, cwd } = {}) {
  let file = command;
  let argv = args;
  if (asUser && isRoot() && asUser !== 'root') {
    file = 'runuser';
    argv = ['-u', asUser, '--', command, ...args];
  }
  return new Promise((resolve, reject) => {
    const child = spawn(file, argv, {
      cwd: cwd ?? '/',
      env: { ...process.env, ...env },
      stdio: [input === undefined ? 'ignore' : 'pipe', inherit ? 'inherit' : 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
      if (inherit) process.stderr.write(chunk);
    });
    if (input !== undefined) child.stdin.end(input);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      if (code === 0) resolve({ stdout, stderr });
      else {
        const why = signal ? `signal ${signal}` : `exit code ${code}`;
        const detail = (stderr || stdout).trim().split('\n').slice(-15).join('\n');
        reject(
          new Error(`${[file, ...argv].join(' ')} failed (${why})${detail ? `:\n${detail}` : ''}`),
        );
      }
    });
  });
}

export function isRoot() {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** The first executable called `name` on PATH, or undefined. */
export function which(name) {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

let aptUpdated = false;
let aptQueue = Promise.resolve();

/**
 * Installs Debian packages (root only), running `apt-get update` once per process first.
 * Calls are queued: dpkg takes a lock, so two installs at once would fail.
 */
export function aptInstall(service, packages) {
  const task = aptQueue.then(async () => {
    if (!isRoot()) {
      throw new ServiceError(
        service,
        `missing ${packages.join(', ')}; install it (apt-get install ${packages.join(' ')}) or run as root`,
      );
    }
    if (!which('apt-get'))
      throw new ServiceError(service, `missing ${packages.join(', ')} and no apt-get`);
    const env = { DEBIAN_FRONTEND: 'noninteractive' };
    if (!aptUpdated) {
      log(service, 'apt-get update');
      await run('apt-get', ['update', '-q'], { env });
      aptUpdated = true;
    }
    log(service, `apt-get install -y ${packages.join(' ')}`);
    await run('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...packages], { env });
  });
  aptQueue = task.catch(() => {});
  return task;
}

/**
 * A crude cross-process lock (O_EXCL file holding our pid), so two `services up` at once do not
 * both initialise the same data directory. A lock whose holder died is taken over.
 */
export async function withLock(name, fn, timeoutMs = 300_000) {
  mkdirSync(servicesDir, { recursive: true });
  const path = join(servicesDir, `${name}.lock`);
  const deadline = Date.now() + timeoutMs;
  let announced = false;
  for (;;) {
    try {
      const fd = openSync(path, 'wx');
      writeFileSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (error) {
      if (error.code !== 'EEXIST') throw error;
      const holder = Number(readFileSync(path, 'utf8').trim() || 0);
      if (!processInfo(holder)) {
        rmSync(path, { force: true });
        continue;
      }
      if (!announced) {
        log('services', `waiting for another 'services' command (pid ${holder}) to finish`);
        announced = true;
      }
      if (Date.now() > deadline) throw new Error(`lock ${path} held by pid ${holder} for too long`);
      await delay(250);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(path, { force: true });
  }
}
