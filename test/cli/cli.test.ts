/**
 * The `tidemark` command against real stores, run as users run it (bin/tidemark.js in a child
 * process), checking output and exit codes.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { ProjectionRunner, ledger } from 'tidemark';
import { SqliteDatabase, SqliteEventStore, SqliteProjectionSink } from 'tidemark/sqlite';
import { tally } from './fixtures/poison.config.ts';

const root = new URL('../../', import.meta.url).pathname;
const bin = join(root, 'bin/tidemark.js');
const poisonConfig = join(root, 'test/cli/fixtures/poison.config.ts');
const dir = mkdtempSync(join(tmpdir(), 'tidemark-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [bin, ...args],
      { cwd: root, env: { ...process.env, ...env } },
      (error, stdout, stderr) => {
        const code = error ? ((error as { code?: number }).code ?? 1) : 0;
        resolve({ code: typeof code === 'number' ? code : 1, stdout, stderr });
      },
    );
  });
}

const counted = (n: number, data: Record<string, unknown> = {}) =>
  Array.from({ length: n }, (_, i) => ({ type: 'Counted', data: { i, ...data } }));

describe('tidemark CLI', () => {
  const path = join(dir, 'store.db');
  const db = ['--database', path];

  before(async () => {
    const store = new SqliteEventStore(path);
    await store.appendToStream('order-1', counted(3));
    await store.appendToStream('order-2', counted(2));
    await store.appendToStream('customer-1', counted(1));
    await store.close();
  });

  it('prints help, and refuses unknown commands and options with exit code 2', async () => {
    const help = await cli(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /projections rebuild <name>/);
    assert.match(
      help.stdout,
      /Exit codes: 0 done, 1 failed, 2 usage error, 3 not found, 4 database unreachable/,
    );
    assert.equal((await cli(['frobnicate', ...db])).code, 2);
    assert.equal((await cli(['streams', 'list', '--colour', ...db])).code, 2);
    assert.equal((await cli([])).code, 2);
  });

  it('documents every command and exit code it has (docs/cli.md and --help agree)', async () => {
    const { readFileSync } = await import('node:fs');
    const docs = readFileSync(join(root, 'docs/cli.md'), 'utf8');
    const documented = [...docs.matchAll(/^\| `([a-z]+(?: [a-z]+)?)[ `]/gm)].map((m) => m[1]!);
    const help = (await cli(['--help'])).stdout;
    const offered = [...help.matchAll(/^ {2}([a-z]+(?: [a-z]+)?)(?= |$)/gm)].map((m) => m[1]!);
    assert.deepEqual([...documented].sort(), [...offered].sort());
    for (const code of [0, 1, 2, 3, 4]) assert.match(docs, new RegExp(`^\\| ${code} \\|`, 'm'));
  });

  it('exits 4 when there is no database, and creates nothing', async () => {
    const missing = join(dir, 'nope', 'missing.db');
    const run = await cli(['streams', 'list', '--database', missing]);
    assert.equal(run.code, 4);
    assert.match(run.stderr, /no database at/);
  });

  it('streams list and show, for people and as JSON', async () => {
    const list = await cli(['streams', 'list', ...db, '--json']);
    assert.equal(list.code, 0);
    const streams = JSON.parse(list.stdout) as { streamId: string; version: number }[];
    assert.deepEqual(
      streams.map((s) => [s.streamId, s.version]),
      [
        ['customer-1', 1],
        ['order-1', 3],
        ['order-2', 2],
      ],
    );
    const prefixed = await cli(['streams', 'list', '--prefix', 'order-', '--limit', '1', ...db]);
    assert.equal(prefixed.code, 0);
    assert.match(prefixed.stdout, /^STREAMID\s+VERSION\s+POSITION\s+UPDATEDAT\norder-1\s+3\s+3\s/);
    assert.doesNotMatch(prefixed.stdout, /order-2/);
    const show = await cli(['streams', 'show', 'order-1', '--from', '2', ...db, '--json']);
    const events = JSON.parse(show.stdout) as { streamVersion: number; type: string }[];
    assert.deepEqual(
      events.map((e) => [e.streamVersion, e.type]),
      [
        [2, 'Counted'],
        [3, 'Counted'],
      ],
    );
    const missing = await cli(['streams', 'show', 'order-9', ...db]);
    assert.equal(missing.code, 3);
    assert.equal((await cli(['streams', 'show', ...db])).code, 2);
    assert.equal((await cli(['streams', 'list', '--limit', 'lots', ...db])).code, 2);
  });

  it('events tail prints the log, and --follow waits for new events until interrupted', async () => {
    const tail = await cli(['events', 'tail', '--after', '4', ...db]);
    assert.equal(tail.code, 0);
    assert.deepEqual(
      tail.stdout
        .trim()
        .split('\n')
        .map((l) => l.split('\t').slice(0, 2)),
      [
        ['5', 'order-2@2'],
        ['6', 'customer-1@1'],
      ],
    );
    const follow = spawn(
      process.execPath,
      [bin, 'events', 'tail', '--follow', '--json', '--after', '6', ...db],
      {
        cwd: root,
      },
    );
    const lines = createInterface({ input: follow.stdout });
    const seen: Record<string, unknown>[] = [];
    const arrived = new Promise<void>((resolve) =>
      lines.on('line', (line) => {
        seen.push(JSON.parse(line) as Record<string, unknown>);
        resolve();
      }),
    );
    // The follower is up once it holds the database open; append from here, as a service would.
    const store = new SqliteEventStore(path);
    await store.appendToStream('order-3', counted(1));
    await arrived;
    await store.close();
    const exited = new Promise<number | null>((resolve) => follow.on('exit', resolve));
    follow.kill('SIGINT');
    assert.equal(await exited, 0);
    assert.equal(seen[0]!.streamId, 'order-3');
    assert.equal(seen[0]!.position, 7);
  });

  it('migrate creates or upgrades the schema of a new database', async () => {
    const fresh = join(dir, 'fresh', 'new.db');
    const run = await cli(['migrate', '--database', fresh, '--json']);
    assert.equal(run.code, 0);
    const report = JSON.parse(run.stdout) as {
      kind: string;
      schema: { component: string; version: number }[];
    };
    assert.equal(report.kind, 'sqlite');
    assert.deepEqual(
      report.schema.map((s) => s.component),
      ['event-store', 'projections', 'subject-keys'],
    );
  });

  describe('projections and dead letters', () => {
    const dlqPath = join(dir, 'dlq.db');
    const args = ['--database', dlqPath, '--config', poisonConfig];

    before(async () => {
      // A service ran the projection: the poison event of stream `bad` and the one after it parked.
      const database = new SqliteDatabase(dlqPath);
      const store = new SqliteEventStore(database);
      const sink = new SqliteProjectionSink(database);
      await store.appendToStream('good', counted(2));
      await store.appendToStream('bad', counted(1));
      await store.appendToStream('bad', counted(1, { poison: true }));
      await store.appendToStream('bad', counted(1));
      await store.appendToStream('worse', counted(1, { poison: true }));
      const runner = new ProjectionRunner({
        projection: tally,
        store,
        sink,
        retry: { attempts: 1 },
      });
      await runner.start();
      assert.equal(await runner.whenCaughtUp(), true);
      await runner.stop();
      await database.close();
    });

    it('projections status shows versions, positions, lag and parked events', async () => {
      const run = await cli(['projections', 'status', ...args, '--json']);
      assert.equal(run.code, 0);
      const [status] = JSON.parse(run.stdout) as Record<string, unknown>[];
      assert.deepEqual(
        { ...status },
        {
          name: 'tally',
          version: 1,
          codeVersion: 1,
          feed: 'store',
          state: 'active',
          position: 6,
          head: 6,
          lagEvents: 0,
          lagSeconds: 0,
          parked: 3,
          gaps: 0,
          deployedCodeVersion: 1,
        },
      );
    });

    it('dlq list, a failing retry (exit 1, nothing changes), the fixed retry, and skip', async () => {
      const list = await cli(['dlq', 'list', ...args, '--json']);
      const parked = JSON.parse(list.stdout) as {
        event: { streamId: string; streamVersion: number; eventId: string };
        attempts: number;
      }[];
      assert.deepEqual(
        parked.map((p) => [p.event.streamId, p.event.streamVersion, p.attempts]),
        [
          ['bad', 2, 1],
          ['bad', 3, 0],
          ['worse', 1, 1],
        ],
      );
      const table = await cli(['dlq', 'list', '--stream', 'bad', ...args]);
      assert.match(table.stdout, /cannot count bad@2/);
      assert.doesNotMatch(table.stdout, /worse/);

      const failing = await cli(['dlq', 'retry', 'tally', 'bad', ...args]);
      assert.equal(failing.code, 1);
      assert.match(failing.stderr, /stay parked/);
      assert.equal(JSON.parse((await cli(['dlq', 'list', ...args, '--json'])).stdout).length, 3);

      const fixed = await cli(['dlq', 'retry', 'tally', 'bad', ...args, '--json'], {
        POISON_FIXED: '1',
      });
      assert.equal(fixed.code, 0, fixed.stderr);
      assert.deepEqual(JSON.parse(fixed.stdout), {
        projection: 'tally',
        streamId: 'bad',
        applied: 2,
      });
      const database = new SqliteDatabase(dlqPath);
      const sink = new SqliteProjectionSink(database);
      const rows = await sink.query<{ stream_id: string; n: number; last: number }>(
        'SELECT stream_id, n, last FROM tally_v1 ORDER BY stream_id',
      );
      assert.deepEqual(
        rows.map((r) => [r.stream_id, r.n, r.last]),
        [
          ['bad', 3, 3],
          ['good', 2, 2],
        ],
      );

      const worse = parked.find((p) => p.event.streamId === 'worse')!;
      const skipped = await cli(['dlq', 'skip', 'tally', worse.event.eventId, ...args]);
      assert.equal(skipped.code, 0);
      assert.equal((await ledger.parked(sink, { name: 'tally' })).length, 0);
      await database.close();
      assert.equal((await cli(['dlq', 'skip', 'tally', worse.event.eventId, ...args])).code, 3);
      assert.equal((await cli(['dlq', 'retry', 'tally', 'bad', ...args])).code, 3);
      assert.equal((await cli(['dlq', 'retry', 'nobody', 'bad', ...args])).code, 2);
    });

    it('projections rebuild builds beside, shows progress, switches over and drops the old version', async () => {
      const run = await cli(
        ['projections', 'rebuild', 'tally', '--drop-after', '0', ...args, '--json'],
        {
          POISON_FIXED: '1',
        },
      );
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stderr, /rebuilding tally as version 2 from the store/);
      assert.match(run.stderr, /\[#+\] 100% {2}6\/6 events/);
      assert.match(run.stderr, /switched over: queries now read version 2/);
      const result = JSON.parse(run.stdout) as {
        version: number;
        dropped: number[];
        events: number;
      };
      assert.deepEqual([result.version, result.dropped, result.events], [2, [1], 6]);
      const status = JSON.parse(
        (await cli(['projections', 'status', ...args, '--json'])).stdout,
      ) as { version: number; state: string }[];
      assert.deepEqual(
        status.map((s) => [s.version, s.state]),
        [[2, 'active']],
      );
      assert.equal((await cli(['projections', 'rebuild', 'nope', ...args])).code, 2);
    });

    it('projections reset needs --yes, then drops every version', async () => {
      const refused = await cli(['projections', 'reset', 'tally', ...args]);
      assert.equal(refused.code, 2);
      assert.match(refused.stderr, /--yes/);
      const reset = await cli(['projections', 'reset', 'tally', '--yes', ...args, '--json']);
      assert.equal(reset.code, 0);
      assert.deepEqual(JSON.parse(reset.stdout), { projection: 'tally', dropped: [2] });
      assert.equal(
        JSON.parse((await cli(['projections', 'status', ...args, '--json'])).stdout).length,
        0,
      );
      assert.equal((await cli(['projections', 'reset', 'tally', '--yes', ...args])).code, 3);
    });
  });
});
