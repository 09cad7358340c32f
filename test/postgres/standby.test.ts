/**
 * A hot standby is refused for reads of the global log: the gap-safe read leans on the
 * primary's view of appends in flight, which a standby does not have. Against a real standby,
 * streamed from the test server with pg_basebackup (needs the cluster services:up made, and
 * root to run the server as its own user; skipped otherwise, saying why).
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, it } from 'node:test';
import { ProjectionRunner, defineProjection, isTidemarkError } from 'tidemark';
import { PostgresEventStore, PostgresProjectionSink } from 'tidemark/postgres';
import { createTestDatabase, type TestDatabase } from '../support/services.ts';

const run = promisify(execFile);
const root = new URL('../../', import.meta.url).pathname;
const passwordFile = join(root, '.services/postgres/superuser.password');
const SERVER_USER = process.env.TIDEMARK_PG_OS_USER ?? 'postgres';

function binDir(): string | undefined {
  if (process.env.TIDEMARK_PG_BINDIR) return process.env.TIDEMARK_PG_BINDIR;
  const debian = '/usr/lib/postgresql';
  if (!existsSync(debian)) return undefined;
  const versions = readdirSync(debian)
    .filter((v) => existsSync(join(debian, v, 'bin', 'pg_basebackup')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join(debian, versions[0], 'bin') : undefined;
}

const why =
  userInfo().uid !== 0
    ? 'needs root (the standby runs as the server user)'
    : !existsSync(passwordFile)
      ? 'needs the PostgreSQL cluster that services:up made (its superuser password)'
      : !binDir()
        ? 'needs the PostgreSQL server binaries'
        : undefined;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

let db: TestDatabase;
let dir: string;
let standby: ChildProcess | undefined;
let standbyUrl: string;

before(async () => {
  if (why) return;
  db = await createTestDatabase('standby');
  const primary = await PostgresEventStore.connect({ connectionString: db.url });
  await primary.appendToStream('order-1', [
    { type: 'OrderCreated', data: {} },
    { type: 'OrderConfirmed', data: {} },
  ]);
  await primary.close();

  dir = mkdtempSync(join(tmpdir(), 'tidemark-standby-'));
  const { uid, gid } = await ids(SERVER_USER);
  chownSync(dir, uid, gid);
  const url = new URL(db.url);
  const bin = binDir()!;
  await run(
    'runuser',
    [
      '-u',
      SERVER_USER,
      '--',
      join(bin, 'pg_basebackup'),
      ...['-h', url.hostname, '-p', url.port, '-U', 'postgres'],
      ...['-D', join(dir, 'data'), '-R', '-X', 'stream', '-c', 'fast'],
    ],
    { env: { ...process.env, PGPASSWORD: readFileSync(passwordFile, 'utf8').trim() } },
  );
  const port = await freePort();
  standby = spawn(
    'runuser',
    [
      '-u',
      SERVER_USER,
      '--',
      join(bin, 'postgres'),
      ...['-D', join(dir, 'data'), '-p', String(port)],
      ...['-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${dir}`],
      ...['-c', 'hot_standby=on', '-c', 'logging_collector=off'],
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  // Ready when the server says so on its log.
  await new Promise<void>((resolve, reject) => {
    let seen = '';
    const onData = (chunk: Buffer) => {
      seen += chunk.toString();
      if (/ready to accept read-only connections/.test(seen)) resolve();
    };
    standby!.stdout!.on('data', onData);
    standby!.stderr!.on('data', onData);
    standby!.once('exit', (code) => reject(new Error(`standby exited (${code}):\n${seen}`)));
  });
  url.port = String(port);
  standbyUrl = url.toString();
});

after(async () => {
  if (standby && standby.exitCode === null) {
    const exited = new Promise((resolve) => standby!.once('exit', resolve));
    // Fast shutdown, sent to the postmaster itself (runuser does not pass signals on).
    const pid = Number(readFileSync(join(dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
    process.kill(pid, 'SIGINT');
    await exited;
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
  await db?.drop();
});

async function ids(user: string): Promise<{ uid: number; gid: number }> {
  const { stdout } = await run('id', ['-u', user]);
  const { stdout: g } = await run('id', ['-g', user]);
  return { uid: Number(stdout.trim()), gid: Number(g.trim()) };
}

it('refuses to read the global log on a hot standby, loudly', { skip: why }, async () => {
  const store = await PostgresEventStore.connect({ connectionString: standbyUrl, migrate: false });
  try {
    // Stream reads are fine there (a stream's events are consistent in any snapshot)...
    assert.equal((await store.readStream('order-1')).length, 2);
    // ...but the global log is not: no gap-safe horizon without the primary's in-flight view.
    for (const read of [() => store.readAll(), () => store.headPosition()]) {
      await assert.rejects(read(), (error: unknown) => {
        assert.ok(isTidemarkError(error, 'unavailable'), String(error));
        assert.match((error as Error).message, /hot standby/);
        return true;
      });
    }
    // A projector pointed at it says why, and applies nothing.
    const sink = await PostgresProjectionSink.connect({ connectionString: db.url });
    const runner = new ProjectionRunner({
      projection: defineProjection({
        name: 'standby-probe',
        version: 1,
        handles: ['OrderCreated'],
        tables: ['seen'],
        init: async ({ sql, table }) => {
          await sql.execute(`CREATE TABLE ${table('seen')} (id TEXT)`);
        },
        apply: async (event, { sql, table }) => {
          await sql.execute(`INSERT INTO ${table('seen')} (id) VALUES ($1)`, [event.eventId]);
        },
      }),
      store,
      sink,
    });
    try {
      const refused = new Promise<void>((resolve) => {
        const stop = runner.onChange(() => {
          if (runner.lastError === undefined) return;
          stop();
          resolve();
        });
      });
      await runner.start();
      await refused;
      assert.match(String((await runner.status()).lastError), /hot standby/);
      assert.deepEqual(await sink.query('SELECT id FROM seen_v1'), []);
    } finally {
      await runner.stop();
      await sink.close();
    }
  } finally {
    await store.close();
  }
});
