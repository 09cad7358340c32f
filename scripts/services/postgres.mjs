// A PostgreSQL cluster of the project's own: Debian's server binaries, a data directory under
// .services/postgres/, 127.0.0.1 on its own port, run as the `postgres` OS user when we are root.
//
// Roles: the bootstrap superuser `postgres` (a random password kept in .services/postgres/, used
// only by this script) and `tidemark` (password `tidemark`, LOGIN CREATEDB, owner of the database
// `tidemark`). Authentication is scram-sha-256 over TCP on loopback; Unix sockets are off.
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import {
  HOST,
  ServiceError,
  aptInstall,
  isRecordedProcess,
  isRoot,
  log,
  portOpen,
  processInfo,
  projectRoot,
  readJson,
  run,
  seconds,
  servicesDir,
  treeRssMb,
  which,
  writeJson,
} from './lib.mjs';

const NAME = 'postgres';
export const PG_PORT = Number(process.env.TIDEMARK_PG_PORT ?? 54329);
const APP_USER = 'tidemark';
const APP_PASSWORD = 'tidemark';
const APP_DB = 'tidemark';
const SUPERUSER = 'postgres';

const baseDir = join(servicesDir, 'postgres');
const statePath = join(baseDir, 'state.json');
const superuserPasswordPath = join(baseDir, 'superuser.password');

/** The connection string `up` prints. */
export function localUrl() {
  return `postgres://${APP_USER}:${APP_PASSWORD}@${HOST}:${PG_PORT}/${APP_DB}`;
}

/** The OS user that runs the server: `postgres` when we are root, else ourselves. */
function serverUser() {
  return isRoot() ? (process.env.TIDEMARK_PG_OS_USER ?? 'postgres') : undefined;
}

/** Highest-versioned server binaries: TIDEMARK_PG_BINDIR, Debian's layout, or PATH. */
function findBinDir() {
  const explicit = process.env.TIDEMARK_PG_BINDIR;
  if (explicit) return existsSync(join(explicit, 'postgres')) ? explicit : undefined;
  const debian = '/usr/lib/postgresql';
  if (existsSync(debian)) {
    const versions = readdirSync(debian)
      .filter(
        (v) =>
          existsSync(join(debian, v, 'bin', 'postgres')) &&
          existsSync(join(debian, v, 'bin', 'initdb')),
      )
      .sort((a, b) => Number(b) - Number(a));
    if (versions.length > 0) return join(debian, versions[0], 'bin');
  }
  const onPath = which('postgres');
  if (onPath && which('initdb')) return onPath.slice(0, onPath.lastIndexOf('/'));
  return undefined;
}

async function ensureBinaries(timings) {
  let binDir = findBinDir();
  if (binDir) return binDir;
  if (process.env.TIDEMARK_PG_BINDIR) {
    throw new ServiceError(
      NAME,
      `TIDEMARK_PG_BINDIR=${process.env.TIDEMARK_PG_BINDIR} has no postgres binary`,
    );
  }
  log(NAME, 'PostgreSQL server binaries not found; installing Debian package postgresql');
  const started = Date.now();
  await aptInstall(NAME, ['postgresql']);
  timings.installMs = Date.now() - started;
  log(NAME, `installed in ${seconds(timings.installMs)}`);
  binDir = findBinDir();
  if (!binDir) throw new ServiceError(NAME, 'postgresql installed but no server binaries found');
  return binDir;
}

/**
 * Where the cluster lives. Normally .services/postgres/cluster; but when the server's OS user
 * cannot reach that folder (a checkout inside a private temp directory, say), a folder under
 * /var/tmp named after the checkout is used instead.
 */
async function clusterDir() {
  const inProject = join(baseDir, 'cluster');
  const user = serverUser();
  if (!user) return inProject;
  mkdirSync(baseDir, { recursive: true });
  try {
    await run('test', ['-x', baseDir], { asUser: user });
    return inProject;
  } catch {
    const tag = createHash('sha256').update(projectRoot).digest('hex').slice(0, 12);
    return join('/var/tmp', `tidemark-postgres-${tag}`);
  }
}

function readState() {
  return readJson(statePath);
}

function pg(binDir, tool) {
  return join(binDir, tool);
}

/** psql as a client over TCP; runs as whoever we are (only the server refuses root). */
function psql(binDir, { user, password, database, sql }) {
  return run(
    pg(binDir, 'psql'),
    [
      '-X',
      '-q',
      '-A',
      '-t',
      '-v',
      'ON_ERROR_STOP=1',
      '-h',
      HOST,
      '-p',
      String(PG_PORT),
      '-U',
      user,
      '-d',
      database,
      '-c',
      sql,
    ],
    { env: { PGPASSWORD: password, PGCONNECT_TIMEOUT: '5' } },
  );
}

function writeConf(dataDir, user) {
  // Settings of our own live in one included file, rewritten at every start so a changed port
  // (TIDEMARK_PG_PORT) takes effect. fsync stays on: tests should see real durability costs.
  const conf = [
    '# Written by scripts/services/postgres.mjs at every start; edit that script, not this file.',
    `listen_addresses = '${HOST}'`,
    `port = ${PG_PORT}`,
    "unix_socket_directories = ''",
    'max_connections = 100',
    'shared_buffers = 32MB',
    'work_mem = 4MB',
    'maintenance_work_mem = 32MB',
    'max_wal_size = 256MB',
    'fsync = on',
    'synchronous_commit = on',
    'full_page_writes = on',
    "password_encryption = 'scram-sha-256'",
    "log_line_prefix = '%m [%p] %q%u@%d '",
    "timezone = 'UTC'",
    '',
  ].join('\n');
  const path = join(dataDir, 'tidemark.conf');
  writeFileSync(path, conf);
  if (user) return run('chown', [`${user}:${user}`, path]);
  return Promise.resolve();
}

async function initCluster(binDir, dir, dataDir, user, timings) {
  log(NAME, `initdb into ${dataDir}`);
  const started = Date.now();
  mkdirSync(dir, { recursive: true });
  if (user) await run('chown', [`${user}:${user}`, dir]);
  chmodSync(dir, 0o700);
  const superPassword = randomBytes(18).toString('base64url');
  mkdirSync(baseDir, { recursive: true });
  writeFileSync(superuserPasswordPath, `${superPassword}\n`, { mode: 0o600 });
  // initdb reads the password from a file the server user can read; it is deleted right after.
  const pwfile = join(dir, 'initdb.pw');
  writeFileSync(pwfile, `${superPassword}\n`, { mode: 0o600 });
  if (user) await run('chown', [`${user}:${user}`, pwfile]);
  try {
    await run(
      pg(binDir, 'initdb'),
      [
        '-D',
        dataDir,
        '-U',
        SUPERUSER,
        `--pwfile=${pwfile}`,
        '--auth-host=scram-sha-256',
        '--auth-local=peer',
        '--encoding=UTF8',
        '--no-locale',
      ],
      { asUser: user, cwd: dir },
    );
  } finally {
    rmSync(pwfile, { force: true });
  }
  const confPath = join(dataDir, 'postgresql.conf');
  writeFileSync(
    confPath,
    `${readFileSync(confPath, 'utf8')}\ninclude_if_exists = 'tidemark.conf'\n`,
  );
  timings.initdbMs = Date.now() - started;
  log(NAME, `initdb done in ${seconds(timings.initdbMs)}`);
}

/** The postmaster's pid from postmaster.pid, if the file is there. */
function postmasterPid(dataDir) {
  try {
    return Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  } catch {
    return undefined;
  }
}

async function ensureRoleAndDatabase(binDir) {
  const superPassword = readFileSync(superuserPasswordPath, 'utf8').trim();
  const asSuper = (sql, database = 'postgres') =>
    psql(binDir, { user: SUPERUSER, password: superPassword, database, sql });
  const role = await asSuper(`SELECT 1 FROM pg_roles WHERE rolname = '${APP_USER}'`);
  if (!role.stdout.trim()) {
    log(NAME, `creating role ${APP_USER}`);
    await asSuper(`CREATE ROLE ${APP_USER} LOGIN CREATEDB PASSWORD '${APP_PASSWORD}'`);
  }
  const db = await asSuper(`SELECT 1 FROM pg_database WHERE datname = '${APP_DB}'`);
  if (!db.stdout.trim()) {
    log(NAME, `creating database ${APP_DB}`);
    await asSuper(`CREATE DATABASE ${APP_DB} OWNER ${APP_USER}`);
  }
}

/** Round trip with the credentials we hand out: the URL we print is known to work. */
async function verifyAppLogin(binDir) {
  const { stdout } = await psql(binDir, {
    user: APP_USER,
    password: APP_PASSWORD,
    database: APP_DB,
    sql: "SELECT current_user, current_setting('server_version')",
  });
  return stdout.trim();
}

/** Starts (or reuses) the local cluster; resolves the DATABASE_URL. */
export async function up() {
  const timings = {};
  const binDir = await ensureBinaries(timings);
  const user = serverUser();
  if (user) {
    try {
      await run('id', ['-u', user]);
    } catch {
      throw new ServiceError(NAME, `OS user '${user}' does not exist (set TIDEMARK_PG_OS_USER)`);
    }
  }
  const dir = await clusterDir();
  const dataDir = join(dir, 'data');
  const logFile = join(dir, 'postgres.log');

  const state = readState();
  if (isRecordedProcess(state) && state.dataDir === dataDir) {
    if (state.port !== PG_PORT) {
      throw new ServiceError(
        NAME,
        `running on port ${state.port}, but TIDEMARK_PG_PORT asks for ${PG_PORT}; run services:down first`,
      );
    }
    const who = await verifyAppLogin(binDir);
    log(NAME, `reusing the running cluster (pid ${state.pid}, ${who})`);
    await ensureRoleAndDatabase(binDir);
    return localUrl();
  }

  if (await portOpen(PG_PORT)) {
    // Another checkout's cluster (a second worktree, a CI clone beside a developer's tree) runs
    // on our port. If it takes our application login, it is the same kind of cluster: use it,
    // and leave starting and stopping it to whoever started it. Anything else is refused.
    let who;
    try {
      who = await verifyAppLogin(binDir);
    } catch {
      throw new ServiceError(
        NAME,
        `${HOST}:${PG_PORT} is taken by a process this script did not start, and it refuses ` +
          `the ${APP_USER} login; stop it, choose another port with TIDEMARK_PG_PORT, or point ` +
          'DATABASE_URL at it',
      );
    }
    log(NAME, `reusing a cluster this checkout did not start, on ${HOST}:${PG_PORT} (${who})`);
    return localUrl();
  }

  if (!existsSync(join(dataDir, 'PG_VERSION')) || !existsSync(superuserPasswordPath)) {
    rmSync(dataDir, { recursive: true, force: true });
    await initCluster(binDir, dir, dataDir, user, timings);
  }
  await writeConf(dataDir, user);

  log(NAME, `starting PostgreSQL on ${HOST}:${PG_PORT} (log: ${logFile})`);
  const started = Date.now();
  try {
    // -w waits until the server accepts connections; pg_ctl detaches the server (setsid) and
    // sends its output to the log file, so no pipe of ours is held open.
    await run(pg(binDir, 'pg_ctl'), ['-D', dataDir, '-l', logFile, '-w', '-t', '60', 'start'], {
      asUser: user,
      cwd: dir,
    });
  } catch (error) {
    const tail = existsSync(logFile)
      ? readFileSync(logFile, 'utf8').split('\n').slice(-20).join('\n')
      : '';
    throw new ServiceError(NAME, `${error.message}\n--- ${logFile} ---\n${tail}`);
  }
  const pid = postmasterPid(dataDir);
  const info = processInfo(pid);
  if (!info)
    throw new ServiceError(
      NAME,
      `started, but no live postmaster pid in ${dataDir}/postmaster.pid`,
    );
  await ensureRoleAndDatabase(binDir);
  const who = await verifyAppLogin(binDir);
  timings.startMs = Date.now() - started;
  log(NAME, `ready in ${seconds(timings.startMs)} (pid ${pid}, ${who})`);

  writeJson(statePath, {
    service: NAME,
    pid,
    startTicks: info.startTicks,
    port: PG_PORT,
    binDir,
    dataDir,
    logFile,
    osUser: user ?? null,
    url: localUrl(),
    startedAt: new Date().toISOString(),
    timings,
  });
  return localUrl();
}

/** Stops the cluster if (and only if) `up` started it; `purge` also deletes its data. */
export async function down({ purge = false } = {}) {
  const state = readState();
  if (isRecordedProcess(state)) {
    log(NAME, `stopping PostgreSQL (pid ${state.pid})`);
    try {
      await run(
        pg(state.binDir, 'pg_ctl'),
        ['-D', state.dataDir, '-m', 'fast', '-w', '-t', '60', 'stop'],
        {
          asUser: state.osUser ?? undefined,
          cwd: '/',
        },
      );
    } catch (error) {
      log(NAME, `pg_ctl stop failed (${error.message}); sending SIGTERM`);
      process.kill(state.pid, 'SIGTERM');
    }
    log(NAME, 'stopped');
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
    const dir = state?.dataDir ? join(state.dataDir, '..') : await clusterDir();
    rmSync(dir, { recursive: true, force: true });
    rmSync(baseDir, { recursive: true, force: true });
    log(NAME, `purged ${dir}`);
  }
}

/** One line about the local cluster, for `services:status`. */
/** Whether a cluster this checkout started runs now. */
export function running() {
  return isRecordedProcess(readState());
}

export function status() {
  const state = readState();
  if (isRecordedProcess(state)) {
    const rss = treeRssMb(state.pid);
    return `postgres: running  pid ${state.pid}  ${HOST}:${state.port}  rss ${rss} MB (all processes)  data ${state.dataDir}  log ${state.logFile}\n  DATABASE_URL=${state.url}`;
  }
  return `postgres: stopped${state?.dataDir ? `  (data kept in ${state.dataDir})` : ''}`;
}

/** Checks that an externally provided DATABASE_URL answers; uses the pg driver. */
export async function verifyExternal(url) {
  let pgModule;
  try {
    pgModule = (await import('pg')).default;
  } catch {
    log(NAME, 'pg driver not installed (npm ci?); cannot verify DATABASE_URL, trusting it');
    return;
  }
  const client = new pgModule.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  try {
    await client.connect();
    const { rows } = await client.query(
      "SELECT current_user AS u, current_setting('server_version') AS v",
    );
    log(NAME, `using DATABASE_URL from the environment (${rows[0].u}, PostgreSQL ${rows[0].v})`);
  } catch (error) {
    throw new ServiceError(
      NAME,
      `DATABASE_URL from the environment does not answer: ${error.message}`,
    );
  } finally {
    await client.end().catch(() => {});
  }
}
