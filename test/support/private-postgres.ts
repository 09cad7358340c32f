/**
 * A PostgreSQL server of a test's own: initdb into a temporary directory, a free port on
 * 127.0.0.1, started and stopped at will. For tests that stop or crash the server, which must
 * not disturb the shared test server other files use.
 *
 * It runs Debian's server binaries (TIDEMARK_PG_BINDIR, or the newest /usr/lib/postgresql/N),
 * as the `postgres` OS user when we are root (the server refuses to run as root). A test file
 * that uses it should also name `postgresUrl` from services.ts: then `npm test` provisions
 * PostgreSQL, binaries included, before the file runs.
 */
import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);

export interface PrivatePostgres {
  /** `postgres://postgres@127.0.0.1:<port>/postgres` (trust authentication, loopback only). */
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  /** Stops the server: `fast` (clean shutdown) or `immediate` (like a crash; recovery at start). */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  /** Starts it again (after `stop`), waiting until it accepts connections. */
  start(): Promise<void>;
  /** Stops it if running and deletes its directory. */
  destroy(): Promise<void>;
}

function binDir(): string {
  const explicit = process.env.TIDEMARK_PG_BINDIR;
  if (explicit) return explicit;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length === 0) {
    throw new Error(
      'PostgreSQL server binaries not found (no /usr/lib/postgresql/N/bin/initdb, no ' +
        'TIDEMARK_PG_BINDIR). `npm run services:up` installs them.',
    );
  }
  return join(root, versions[0]!, 'bin');
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Runs a server tool as the server's OS user. */
function runAs(user: string | undefined, tool: string, args: string[]) {
  return user
    ? exec('runuser', ['-u', user, '--', tool, ...args], { cwd: '/' })
    : exec(tool, args, { cwd: '/' });
}

/** Creates and starts a private server. */
export async function startPrivatePostgres(label = 'private'): Promise<PrivatePostgres> {
  const bin = binDir();
  const user = userInfo().uid === 0 ? 'postgres' : undefined;
  const dir = mkdtempSync(join(tmpdir(), `tm-pg-${label}-`));
  if (user) {
    const { stdout } = await exec('id', ['-u', user]);
    const { stdout: gid } = await exec('id', ['-g', user]);
    chownSync(dir, Number(stdout.trim()), Number(gid.trim()));
  }
  const data = join(dir, 'data');
  const log = join(dir, 'server.log');
  const port = await freePort();
  await runAs(user, join(bin, 'initdb'), [
    '-D',
    data,
    '-U',
    'postgres',
    '--auth=trust',
    '--no-locale',
    '--encoding=UTF8',
    '--no-sync',
  ]);
  const serverOptions = [
    `-p ${port}`,
    `-k ${dir}`,
    `-c listen_addresses=127.0.0.1`,
    '-c max_connections=50',
    '-c shared_buffers=16MB',
  ].join(' ');
  let running = false;
  const start = async () => {
    try {
      await runAs(user, join(bin, 'pg_ctl'), [
        '-D',
        data,
        '-l',
        log,
        '-o',
        serverOptions,
        '-w',
        '-t',
        '60',
        'start',
      ]);
    } catch (error) {
      const tail = existsSync(log)
        ? readFileSync(log, 'utf8').split('\n').slice(-20).join('\n')
        : '';
      throw new Error(`private PostgreSQL did not start: ${(error as Error).message}\n${tail}`);
    }
    running = true;
  };
  const stop = async (mode: 'fast' | 'immediate' = 'fast') => {
    await runAs(user, join(bin, 'pg_ctl'), ['-D', data, '-m', mode, '-w', '-t', '60', 'stop']);
    running = false;
  };
  await start();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    dir,
    stop,
    start,
    async destroy() {
      if (running) await stop('immediate').catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
