/**
 * Shared pieces of the Kafka tests: a projection whose rows show duplicates and disorder, event
 * generators, and helpers that publish a store through a relay and read what a topic holds.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import {
  defineProjection,
  type RecordedEvent,
  type ProjectionSink,
  type EventStore,
} from 'tidemark';
import {
  EventTopics,
  KafkaProducer,
  KafkaReader,
  KafkaRelay,
  type KafkaConnection,
  type ConsumedRecord,
} from '../../src/kafka/internal.ts';
import { committedEnds } from '../support/feed-fixtures.ts';

/**
 * Per stream: how many events were applied and the list of versions in the order applied, so
 * a second effect or a reordering shows; plus one multi-stream total per category.
 */
export function trackingProjection(
  options: {
    name?: string;
    version?: number;
    poison?: (event: RecordedEvent) => boolean;
  } = {},
) {
  return defineProjection({
    name: options.name ?? 'tracking',
    version: options.version ?? 1,
    handles: ['Counted'],
    tables: ['streams', 'totals'],
    init: async ({ sql, table }) => {
      await sql.execute(
        `CREATE TABLE ${table('streams')} (stream_id TEXT PRIMARY KEY, n BIGINT NOT NULL, versions TEXT NOT NULL, last_data TEXT)`,
      );
      await sql.execute(
        `CREATE TABLE ${table('totals')} (category TEXT PRIMARY KEY, n BIGINT NOT NULL)`,
      );
    },
    apply: async (event, { sql, table }) => {
      if (options.poison?.(event)) {
        throw new Error(`poison ${event.streamId}@${event.streamVersion}`);
      }
      const streams = table('streams');
      await sql.execute(
        `INSERT INTO ${streams} (stream_id, n, versions, last_data) VALUES ($1, 1, $2, $3)
         ON CONFLICT (stream_id) DO UPDATE SET n = ${streams}.n + 1,
           versions = ${streams}.versions || ',' || excluded.versions, last_data = excluded.last_data`,
        [event.streamId, String(event.streamVersion), JSON.stringify(event.data)],
      );
      const totals = table('totals');
      await sql.execute(
        `INSERT INTO ${totals} (category, n) VALUES ($1, 1)
         ON CONFLICT (category) DO UPDATE SET n = ${totals}.n + 1`,
        [event.streamId.split('-')[0]],
      );
    },
  });
}

export interface TrackedRows {
  streams: Record<string, { n: number; versions: string }>;
  totals: Record<string, number>;
}

export async function trackedRows(
  sink: Pick<ProjectionSink, 'query'>,
  version = 1,
): Promise<TrackedRows> {
  const streams: TrackedRows['streams'] = {};
  for (const row of await sink.query<{ stream_id: string; n: unknown; versions: string }>(
    `SELECT stream_id, n, versions FROM streams_v${version} ORDER BY stream_id`,
  )) {
    streams[row.stream_id] = { n: Number(row.n), versions: row.versions };
  }
  const totals: TrackedRows['totals'] = {};
  for (const row of await sink.query<{ category: string; n: unknown }>(
    `SELECT category, n FROM totals_v${version} ORDER BY category`,
  )) {
    totals[row.category] = Number(row.n);
  }
  return { streams, totals };
}

/** What the tracking projection must hold for these events: each applied once, in order. */
export function expectedRows(events: readonly RecordedEvent[]): TrackedRows {
  const streams: TrackedRows['streams'] = {};
  const totals: TrackedRows['totals'] = {};
  for (const event of events) {
    if (event.type !== 'Counted') continue;
    const row = (streams[event.streamId] ??= { n: 0, versions: '' });
    row.n++;
    row.versions = row.versions
      ? `${row.versions},${event.streamVersion}`
      : String(event.streamVersion);
    const category = event.streamId.split('-')[0]!;
    totals[category] = (totals[category] ?? 0) + 1;
  }
  return { streams, totals };
}

/** Appends `rounds` rounds of one `Counted` event to each stream. */
export async function appendCounted(
  store: EventStore,
  streams: readonly string[],
  rounds: number,
  eventsPerAppend = 1,
): Promise<void> {
  for (let round = 0; round < rounds; round++) {
    for (const stream of streams) {
      await store.appendToStream(
        stream,
        Array.from({ length: eventsPerAppend }, (_, i) => ({
          type: 'Counted',
          data: { round, i },
          metadata: { correlationId: `round-${round}` },
        })),
      );
    }
  }
}

/** Publishes everything the store holds to `topic` (category `order`) and stops the relay. */
export async function publishAll(
  connection: KafkaConnection,
  store: EventStore,
  topic: string,
  options: { partitions?: number; progressTopic: string; name: string },
): Promise<void> {
  const relay = new KafkaRelay({
    connection,
    store,
    topics: new EventTopics({
      categories: { order: topic },
      settings: { partitions: options.partitions ?? 3 },
    }),
    source: 'tidemark://test',
    name: options.name,
    progressTopic: options.progressTopic,
  });
  await relay.start();
  try {
    if (!(await relay.whenCaughtUp(60_000))) throw new Error('relay did not catch up');
  } finally {
    await relay.stop();
  }
  // The relay's commit returns before the broker writes the markers: a projector asked whether
  // it is caught up could still be shown the old ends.
  await committedEnds(connection, topic);
}

export async function readTopic(
  connection: KafkaConnection,
  topic: string,
): Promise<ConsumedRecord[]> {
  const reader = new KafkaReader(connection);
  try {
    return await reader.readAll(topic);
  } finally {
    await reader.close();
  }
}

/** A fixture entry point (test/kafka/fixtures/<name>.ts) running as a child process. */
export interface FixtureProcess {
  readonly child: ChildProcess;
  /** Parsed log lines so far. */
  readonly lines: Record<string, unknown>[];
  /** Resolves with the first line (seen or coming) that matches, rejects if the process exits first. */
  waitFor(
    match: (line: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  /** Resolves with the exit code or signal. */
  readonly exited: Promise<number | string>;
  /** SIGKILL, and wait for the exit. */
  kill9(): Promise<void>;
}

const root = new URL('../../', import.meta.url).pathname;

export function startFixture(name: string, env: Record<string, string>): FixtureProcess {
  const child = spawn(
    process.execPath,
    ['--conditions=tidemark-source', `test/kafka/fixtures/${name}.ts`],
    { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const lines: Record<string, unknown>[] = [];
  const listeners = new Set<(line: Record<string, unknown>) => void>();
  let stderr = '';
  child.stderr!.on('data', (chunk) => {
    stderr = (stderr + String(chunk)).slice(-4000);
  });
  createInterface({ input: child.stdout! }).on('line', (text) => {
    let line: Record<string, unknown>;
    try {
      line = JSON.parse(text) as Record<string, unknown>;
    } catch {
      return;
    }
    lines.push(line);
    for (const listener of [...listeners]) listener(line);
  });
  const exited = new Promise<number | string>((resolve) =>
    child.on('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')),
  );
  return {
    child,
    lines,
    exited,
    waitFor(match, timeoutMs = 60_000) {
      const seen = lines.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const done = (error?: Error, line?: Record<string, unknown>) => {
          clearTimeout(timer);
          listeners.delete(listener);
          if (error) reject(error);
          else resolve(line!);
        };
        const listener = (line: Record<string, unknown>) => {
          if (match(line)) done(undefined, line);
        };
        const timer = setTimeout(
          () => done(new Error(`${name}: no matching log line within ${timeoutMs} ms`)),
          timeoutMs,
        );
        listeners.add(listener);
        void exited.then((code) =>
          done(new Error(`${name} exited (${code}) before the awaited line: ${stderr}`)),
        );
      });
    },
    async kill9() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

/**
 * Leaves what a crashed relay leaves in a topic, under the relay's own transactional id (the next
 * relay start aborts it): a transaction with records (`records`), or one that only joined the
 * partitions (AddPartitionsToTxn) before dying (`empty`), whose ABORT markers then have no
 * records before them.
 */
export async function leaveOpenTransaction(
  connection: KafkaConnection,
  transactionalId: string,
  topic: string,
  partitions: number,
  kind: 'records' | 'empty',
): Promise<void> {
  const keys = Array.from({ length: partitions * 4 }, (_, i) => `order-junk-${i}`);
  const producer = new KafkaProducer(connection, { transactionalId, retries: 1 });
  const open = await producer.beginTransaction();
  if (kind === 'records') {
    await open.send(keys.map((key) => ({ topic, key, value: '{"aborted":true}' })));
  } else {
    // Refused by the broker (too large) after the partitions joined the transaction.
    const sent = await open
      .send(keys.map((key) => ({ topic, key, value: Buffer.alloc(2 * 1024 * 1024) })))
      .then(
        () => true,
        () => false,
      );
    if (sent) throw new Error('a 2 MiB record was accepted; the empty abort needs it refused');
  }
  await producer.close();
}

/**
 * Resolves once `check` holds, testing it now and again after each change a runner reports
 * (`onChange`: assignment, commit, state, drop). Rejects with `what` after `timeoutMs`: a bound
 * for a test that would otherwise hang, not a wait.
 */
export function whenRunners(
  runners: readonly { onChange(listener: () => void): () => void }[],
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 30_000,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    let running = false;
    let again = false;
    const finish = (error?: unknown) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      for (const stop of stops) stop();
      if (error === undefined) resolve();
      else reject(error instanceof Error ? error : new Error(String(error)));
    };
    const test = async () => {
      if (running) {
        again = true;
        return;
      }
      running = true;
      try {
        do {
          again = false;
          if (await check()) return finish();
        } while (again && !settled);
      } catch (error) {
        finish(error);
      } finally {
        running = false;
      }
    };
    const timer = setTimeout(() => finish(new Error(`timed out waiting: ${what}`)), timeoutMs);
    const stops = runners.map((r) => r.onChange(() => void test()));
    void test();
  });
}

/**
 * Commits of projector processes, as a signal: a statement trigger on the offsets table (the
 * ledger's tables must exist) NOTIFYs at each commit that moves offsets, and `until` re-checks
 * its condition at each one, instead of polling on a timer.
 */
export async function offsetCommits(databaseUrl: string) {
  const { default: pg } = await import('pg');
  const listener = new pg.Client({ connectionString: databaseUrl });
  await listener.connect();
  const channel = `tm_test_${Math.random().toString(36).slice(2, 10)}`;
  await listener.query(
    `CREATE OR REPLACE FUNCTION ${channel}() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN PERFORM pg_notify('${channel}', ''); RETURN NULL; END $$`,
  );
  await listener.query(
    `CREATE TRIGGER ${channel} AFTER INSERT OR UPDATE ON tm_projection_offsets
     FOR EACH STATEMENT EXECUTE FUNCTION ${channel}()`,
  );
  await listener.query(`LISTEN ${channel}`);
  return {
    /** Resolves once `check` holds, looking again at each commit; rejects after `timeoutMs`. */
    async until(check: () => Promise<boolean>, what: string, timeoutMs = 180_000): Promise<void> {
      let wake: () => void = () => {};
      const onNotice = () => wake();
      listener.on('notification', onNotice);
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        wake();
      }, timeoutMs);
      try {
        for (;;) {
          const moved = new Promise<void>((resolve) => (wake = resolve));
          if (await check()) return;
          if (timedOut) throw new Error(`${what}: not after ${timeoutMs} ms`);
          await moved;
        }
      } finally {
        clearTimeout(timer);
        listener.off('notification', onNotice);
      }
    },
    close: () => listener.end(),
  };
}
