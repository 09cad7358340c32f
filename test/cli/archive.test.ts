/**
 * `tidemark streams archive` as users run it (bin/tidemark.js in a child process) on a real
 * SQLite file: a dry run changes nothing, progress is shown, SIGINT stops it after the segment
 * in progress, and running it again finishes the job with nothing lost or archived twice.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, describe, it } from 'node:test';
import { ArchiveAwareStore, DirectoryArchive } from 'tidemark';
import { SqliteEventStore } from 'tidemark/sqlite';

const root = new URL('../../', import.meta.url).pathname;
const bin = join(root, 'bin/tidemark.js');
const dir = mkdtempSync(join(tmpdir(), 'tidemark-cli-archive-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { cwd: root }, (error, stdout, stderr) => {
      const code = error ? ((error as { code?: number }).code ?? 1) : 0;
      resolve({ code: typeof code === 'number' ? code : 1, stdout, stderr });
    });
  });
}

const STREAMS = 600;

describe('tidemark streams archive', () => {
  const path = join(dir, 'orders.db');
  const archive = join(dir, 'archive');
  const common = ['--database', path, '--archive', archive];

  it('dry run, progress, stop with SIGINT, resume', { timeout: 120_000 }, async () => {
    const old = new Date(Date.now() - 120 * 86_400_000);
    const seeding = new SqliteEventStore(path, { now: () => old, synchronous: 'OFF' });
    for (let i = 0; i < STREAMS; i++) {
      const id = `order-${String(i).padStart(4, '0')}`;
      await seeding.appendToStream(id, [
        { type: 'OrderCreated', data: { orderId: id } },
        { type: i % 3 === 0 ? 'OrderConfirmed' : 'OrderShipped', data: {} },
      ]);
    }
    await seeding.appendToStream('order-last', [{ type: 'OrderCreated', data: {} }]);
    const before = await seeding.readAll({ maxCount: 100_000, upcast: false });
    await seeding.close();
    const finished = Array.from({ length: STREAMS }, (_, i) => i).filter((i) => i % 3 !== 0).length;

    const usage = await cli(['streams', 'archive', ...common]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--older-than/);

    const dry = await cli(['streams', 'archive', '--older-than', '90d', '--dry-run', ...common]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(
      dry.stdout,
      new RegExp(`would archive ${finished} streams \\(${finished * 2} events\\)`),
    );
    const notYet = await cli(['streams', 'archive', '--older-than', '200d', '--json', ...common]);
    assert.equal(JSON.parse(notYet.stdout).streams, 0);

    // One stream per segment, so that the run is long enough to be stopped midway.
    const child = spawn(
      process.execPath,
      [bin, 'streams', 'archive', '--older-than', '90d', '--segment-streams', '1', ...common],
      { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    child.stdout.on('data', (chunk) => (stdout += String(chunk)));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    for await (const text of createInterface({ input: child.stderr })) {
      // Progress after the third segment: stop it.
      if (/in 3 segments/.test(text)) {
        child.kill('SIGINT');
        break;
      }
    }
    child.stderr.resume(); // keep draining what it still says
    assert.equal(await exited, 0);
    assert.match(stdout, /stopped; run the same command again to go on/);
    const first = Number(/archived (\d+) streams/.exec(stdout)![1]);
    assert.ok(first >= 3 && first < finished, `first run archived ${first}`);

    const rest = await cli(['streams', 'archive', '--older-than', '90d', '--json', ...common]);
    assert.equal(rest.code, 0, rest.stderr);
    const second = JSON.parse(rest.stdout) as {
      streams: number;
      segments: number;
      stopped: boolean;
    };
    assert.equal(second.stopped, false);
    assert.equal(first + second.streams, finished);
    // One file per sealed segment: the first run's (one stream each) and the second's.
    assert.equal(readdirSync(archive).length, first + second.segments);

    // Still readable through the CLI, and the log is what it was.
    const shown = await cli(['streams', 'show', 'order-0001', '--json', ...common]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.deepEqual(
      (JSON.parse(shown.stdout) as { type: string }[]).map((e) => e.type),
      ['OrderCreated', 'OrderShipped'],
    );
    const hot = new SqliteEventStore(path);
    try {
      const store = new ArchiveAwareStore(hot, new DirectoryArchive(archive));
      assert.deepEqual(await store.readAll({ maxCount: 100_000, upcast: false }), before);
      assert.equal((await hot.readAll({ maxCount: 100_000 })).length, before.length - finished * 2);
    } finally {
      await hot.close();
    }
  });
});

describe('tidemark streams archive, killed', () => {
  it(
    'a run killed with SIGKILL midway loses nothing; a rerun finishes',
    { timeout: 120_000 },
    async () => {
      const path = join(dir, 'killed.db');
      const archive = join(dir, 'killed-archive');
      const common = ['--database', path, '--archive', archive];
      const old = new Date(Date.now() - 120 * 86_400_000);
      const seeding = new SqliteEventStore(path, { now: () => old, synchronous: 'OFF' });
      for (let i = 0; i < 300; i++) {
        await seeding.appendToStream(`order-${String(i).padStart(4, '0')}`, [
          { type: 'OrderCreated', data: { i } },
          { type: 'OrderShipped', data: {} },
        ]);
      }
      await seeding.appendToStream('order-last', [{ type: 'OrderCreated', data: {} }]);
      const before = await seeding.readAll({ maxCount: 100_000, upcast: false });
      await seeding.close();

      // The CLI's own process: in a checkout bin/tidemark.js runs it as a child, and a SIGKILL
      // of that wrapper would leave the worker running.
      const child = spawn(
        process.execPath,
        [
          '--conditions=tidemark-source',
          join(root, 'src/cli/main.ts'),
          ...['streams', 'archive', '--older-than', '90d', '--segment-streams', '1', ...common],
        ],
        { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] },
      );
      const exited = new Promise<string | null>((resolve) =>
        child.on('exit', (_c, s) => resolve(s)),
      );
      for await (const text of createInterface({ input: child.stderr })) {
        if (/in 5 segments/.test(text)) {
          child.kill('SIGKILL'); // a crash, wherever it is in the next segment
          break;
        }
      }
      child.stderr.resume();
      assert.equal(await exited, 'SIGKILL');

      const rest = await cli(['streams', 'archive', '--older-than', '90d', '--json', ...common]);
      assert.equal(rest.code, 0, rest.stderr);
      const hot = new SqliteEventStore(path);
      try {
        const store = new ArchiveAwareStore(hot, new DirectoryArchive(archive));
        const segments = await store.tables.segments();
        assert.ok(segments.every((s) => s.state === 'sealed'));
        assert.equal(
          segments.reduce((n, s) => n + s.streams, 0),
          300,
        );
        // One file per sealed segment: nothing the killed run left behind.
        assert.deepEqual(
          readdirSync(archive).sort(),
          segments.map((s) => `${s.segmentId}.tmseg.gz`).sort(),
        );
        assert.deepEqual(await store.readAll({ maxCount: 100_000, upcast: false }), before);
      } finally {
        await hot.close();
      }
    },
  );
});
