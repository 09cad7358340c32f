/**
 * The archive suite with its segments in an S3-compatible object store: a real server (gofakes3,
 * built from its Go module and started by the services script: `node scripts/services.mjs up
 * s3`), spoken to with the AWS SDK, over a real SQLite store.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { after, it } from 'node:test';
import { S3Archive } from 'tidemark';
import { SqliteDatabase, SqliteEventStore, SqliteProjectionSink } from 'tidemark/sqlite';
import { uniqueName } from '../support/services.ts';
import { archiveSuite } from './suite.ts';

const root = new URL('../../', import.meta.url).pathname;
// Started (or reused) by the services script; it prints the endpoint.
const endpoint =
  process.env.TIDEMARK_S3_ENDPOINT ??
  /TIDEMARK_S3_ENDPOINT=(\S+)/.exec(
    execFileSync(process.execPath, [join(root, 'scripts/services.mjs'), 'up', 's3'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }),
  )![1]!;
const bucket = 'tidemark-test-archive';
const archives: S3Archive[] = [];
after(() => {
  for (const a of archives) a.close();
});

archiveSuite(
  'SQLite, segments in S3',
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tidemark-archive-s3-db-'));
    const database = new SqliteDatabase(join(dir, 'db.sqlite'));
    const clock = { now: new Date() };
    return {
      store: new SqliteEventStore(database, { now: () => clock.now }),
      sink: new SqliteProjectionSink(database),
      clock,
      close: async () => {
        await database.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
  async () => {
    const archive = await S3Archive.open({
      endpoint,
      bucket,
      prefix: `${uniqueName('suite')}/`,
      credentials: { accessKeyId: 'tidemark', secretAccessKey: 'tidemark' },
    });
    archives.push(archive);
    return { segments: archive, ids: () => archive.list() };
  },
);

it('tidemark streams archive --archive s3://bucket/prefix moves streams to the object store', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tidemark-archive-s3-cli-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'orders.db');
  const old = new Date(Date.now() - 100 * 86_400_000);
  const seeding = new SqliteEventStore(path, { now: () => old });
  for (const id of ['order-a', 'order-b', 'order-c']) {
    await seeding.appendToStream(id, [
      { type: 'OrderCreated', data: { id } },
      { type: id === 'order-c' ? 'OrderConfirmed' : 'OrderShipped', data: {} },
    ]);
  }
  await seeding.appendToStream('order-last', [{ type: 'OrderCreated', data: {} }]);
  await seeding.close();
  const prefix = uniqueName('cli');
  const location = `s3://${bucket}/${prefix}`;
  const env = {
    ...process.env,
    TIDEMARK_S3_ENDPOINT: endpoint,
    AWS_ACCESS_KEY_ID: 'tidemark',
    AWS_SECRET_ACCESS_KEY: 'tidemark',
  };
  const run = (args: string[]) =>
    execFileSync(
      process.execPath,
      [join(root, 'bin/tidemark.js'), ...args, '--database', path, '--archive', location],
      {
        cwd: root,
        env,
        encoding: 'utf8',
      },
    );
  const moved = JSON.parse(run(['streams', 'archive', '--older-than', '90d', '--json'])) as {
    streams: number;
    segments: number;
  };
  assert.equal(moved.streams, 2); // the Orders policy: shipped ones
  const archive = await S3Archive.open({
    endpoint,
    bucket,
    prefix: `${prefix}/`,
    credentials: { accessKeyId: 'tidemark', secretAccessKey: 'tidemark' },
  });
  archives.push(archive);
  assert.equal((await archive.list()).length, moved.segments);
  const shown = JSON.parse(run(['streams', 'show', 'order-a', '--json'])) as { type: string }[];
  assert.deepEqual(
    shown.map((e) => e.type),
    ['OrderCreated', 'OrderShipped'],
  );
});
