import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { isTidemarkError, type Logger } from 'tidemark';
import {
  PostgresEventStore,
  eventStoreMigrations,
  type PostgresEventStoreOptions,
} from 'tidemark/postgres';
import { schemaSource, type SchemaSource } from '../support/pg-schemas.ts';
import { createTestDatabase } from '../support/services.ts';
import { startTcpProxy } from '../support/tcp-proxy.ts';

let source: SchemaSource;
before(async () => {
  source = schemaSource(await createTestDatabase('pgstore'));
});
after(() => source.drop());

function open(schema: string, options: Partial<PostgresEventStoreOptions> = {}) {
  return PostgresEventStore.connect({
    connectionString: source.db.url,
    schema,
    poolSize: 4,
    ...options,
  });
}

/** A logger that records messages, and resolves `next(text)` when one containing it arrives. */
function recordingLogger() {
  const messages: string[] = [];
  const waiters: { text: string; resolve: () => void }[] = [];
  const log = (_: object, msg?: string) => {
    messages.push(msg ?? '');
    for (const w of waiters.filter((w) => (msg ?? '').includes(w.text))) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
  };
  const logger: Logger = { debug: log, info: log, warn: log, error: log };
  return {
    logger,
    messages,
    next: (text: string) => new Promise<void>((resolve) => waiters.push({ text, resolve })),
  };
}

describe('PostgresEventStore', () => {
  it('reads recordedAt back as it was appended, on every read path, truncated to the millisecond', async () => {
    const at = new Date('2026-12-05T01:02:03.456Z');
    const schema = source.schema('recorded-at');
    const store = await open(schema, { now: () => at });
    try {
      const appended = await store.appendToStream('r-1', [{ type: 'A', data: {} }]);
      assert.equal(appended.events[0]!.recordedAt.getTime(), at.getTime());
      await store.writeSnapshot({ streamId: 'r-1', streamVersion: 0, stateVersion: 1, state: {} });
      const reads = [
        (await store.readStream('r-1'))[0]!,
        (await store.readStream('r-1', { direction: 'backwards' }))[0]!,
        (await store.readAll())[0]!,
        (await store.readFromSnapshot('r-1', 1)).events[0]!,
      ];
      for (const event of reads) {
        assert.ok(event.recordedAt instanceof Date);
        assert.equal(event.recordedAt.toISOString(), at.toISOString());
        assert.equal(event.streamId, 'r-1');
      }
      // A timestamp with microseconds (written by SQL, not by the store) reads truncated, as the
      // driver's own parse of the timestamp text truncated it.
      const admin = new pg.Client({ connectionString: source.db.url });
      await admin.connect();
      try {
        await admin.query(
          `UPDATE "${schema}".tm_events SET recorded_at = '2026-12-05 01:02:03.456999+00'`,
        );
      } finally {
        await admin.end();
      }
      assert.equal(
        (await store.readStream('r-1'))[0]!.recordedAt.toISOString(),
        '2026-12-05T01:02:03.456Z',
      );
    } finally {
      await store.close();
    }
  });

  it('closes its LISTEN connection when listeners come and go, and on close', async () => {
    const applicationName = `tm-listen-${Date.now()}`;
    const recorder = recordingLogger();
    const store = await open(source.schema('listen'), {
      applicationName,
      logger: recorder.logger,
      poolSize: 1,
    });
    const admin = new pg.Client({ connectionString: source.db.url });
    await admin.connect();
    const backends = async () =>
      Number(
        (
          await admin.query(
            'SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1',
            [applicationName],
          )
        ).rows[0].n,
      );
    try {
      // Unsubscribing and subscribing again before the old listen loop has ended once left the
      // old loop running beside the new one, each with a LISTEN connection.
      for (let i = 0; i < 3; i++) {
        const listening = recorder.next('listening for appends');
        const stop = store.onAppended(() => {});
        await listening;
        stop();
      }
      const again = store.onAppended(() => {});
      for (let tries = 0; (await backends()) > 1 && tries < 200; tries++) {
        await new Promise((resolve) => setImmediate(resolve));
      }
      assert.equal(await backends(), 1, 'one LISTEN connection');
      again();
      const heard = new Promise<void>((resolve) => {
        const stop = store.onAppended(() => {
          stop();
          resolve();
        });
      });
      await store.appendToStream('s', [{ type: 'E', data: {} }]);
      await heard;
    } finally {
      await store.close();
    }
    // The server lets a backend go a moment after its client leaves: wait on the count itself.
    const deadline = Date.now() + 10_000;
    while ((await backends()) > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.equal(await backends(), 0);
    await admin.end();
  });

  it('migrates once when many stores start at once, and records the version', async () => {
    const schema = source.schema('migrate');
    const stores = await Promise.all(Array.from({ length: 8 }, () => open(schema)));
    try {
      const applied = await stores[0]!.migrations();
      assert.deepEqual(
        applied.map((m) => [m.component, m.version]),
        eventStoreMigrations(schema).map((m) => ['event-store', m.version]),
      );
      await stores[3]!.appendToStream('s', [{ type: 'E', data: {} }]);
      assert.equal(await stores[7]!.streamVersion('s'), 1);
    } finally {
      for (const store of stores) await store.close();
    }
  });

  it('refuses a schema migrated by a newer Tidemark, and one behind when it may not migrate', async () => {
    const schema = source.schema('newer');
    await assert.rejects(open(schema, { migrate: false }), (e) =>
      isTidemarkError(e, 'storage_error'),
    );
    await (await open(schema)).close();
    const store = await open(schema, { migrate: false });
    await store.close();
    await source.sql(
      `INSERT INTO "${schema}".tm_migrations (component, version, description) VALUES ('event-store', 99, 'future')`,
    );
    await assert.rejects(open(schema), (e) => isTidemarkError(e, 'storage_error'));
  });

  it('fails with unavailable when the database cannot be reached at start', async () => {
    const started = Date.now();
    await assert.rejects(
      PostgresEventStore.connect({
        connectionString: 'postgres://nobody:x@127.0.0.1:1/none',
        reconnectWindowMs: 300,
      }),
      (e) => isTidemarkError(e, 'unavailable') && e.retryable,
    );
    assert.ok(Date.now() - started >= 250, 'it kept trying for the reconnect window');
  });

  it('refuses bad options and names at construction', async () => {
    for (const options of [
      { schema: 'Bad-Name' },
      { schema: 'x'.repeat(49) },
      { poolSize: 0 },
      { reconnectWindowMs: -1 },
      { pollIntervalMs: 0 },
    ]) {
      await assert.rejects(
        PostgresEventStore.connect({ connectionString: source.db.url, ...options }),
        (e) => isTidemarkError(e, 'invalid_argument'),
        JSON.stringify(options),
      );
    }
  });

  it('refuses text PostgreSQL cannot store (NUL), with a typed error and nothing written', async () => {
    const store = await open(source.schema('nul'));
    try {
      await assert.rejects(store.appendToStream('a\u0000b', [{ type: 'E', data: {} }]), (e) =>
        isTidemarkError(e, 'invalid_argument'),
      );
      await assert.rejects(
        store.appendToStream('s', [
          { type: 'E', data: { ok: true } },
          { type: 'E', data: { text: 'a\u0000b' } },
        ]),
        (e) => isTidemarkError(e, 'serialization_failed'),
      );
      // An escaped backslash before "u0000" is ordinary text.
      await store.appendToStream('s', [{ type: 'E', data: { text: '\\u0000' } }]);
      const [event] = await store.readStream('s');
      assert.deepEqual(event!.data, { text: '\\u0000' });
      assert.equal(await store.headPosition(), event!.position);
    } finally {
      await store.close();
    }
  });

  it('hears appends made by another process (LISTEN/NOTIFY), long before its poll', async () => {
    const schema = source.schema('notify');
    const store = await open(schema, { pollIntervalMs: 60_000 });
    try {
      const heard = new Promise<number>((resolve) => {
        const stop = store.onAppended((position) => {
          stop();
          resolve(position);
        });
      });
      const child = fork(
        new URL('./fixtures/append-child.ts', import.meta.url).pathname,
        [source.db.url, schema],
        { execArgv: ['--conditions=tidemark-source'] },
      );
      const exit = new Promise<number | null>((resolve) => child.on('exit', resolve));
      assert.equal(await exit, 0);
      assert.equal(await heard, 1);
      assert.equal((await store.readAll())[0]!.streamId, 'other-process');
    } finally {
      await store.close();
    }
  });

  it('wakes listeners by polling when notifications are off', async () => {
    const schema = source.schema('poll');
    const listening = await open(schema, { pollIntervalMs: 20 });
    const silent = await open(schema, { notify: false });
    try {
      const heard = new Promise<number>((resolve) => {
        const stop = listening.onAppended((position) => {
          stop();
          resolve(position);
        });
      });
      const result = await silent.appendToStream('quiet', [{ type: 'E', data: {} }]);
      assert.equal(await heard, result.position);
    } finally {
      await silent.close();
      await listening.close();
    }
  });

  it('an append whose answer is lost after it committed returns success, once, on retry', async () => {
    const schema = source.schema('lost');
    await (await open(schema)).close();
    const url = new URL(source.db.url);
    const proxy = await startTcpProxy(url.hostname, Number(url.port));
    url.host = `127.0.0.1:${proxy.port}`;
    const log = recordingLogger();
    const store = await PostgresEventStore.connect({
      connectionString: url.toString(),
      schema,
      poolSize: 2,
      logger: log.logger,
    });
    try {
      await store.appendToStream('s', [{ type: 'E', data: { n: 0 } }]);
      const fired = proxy.fault({ match: `tm.${schema}.append`, when: 'after-server' });
      const result = await store.appendToStream(
        's',
        [
          { type: 'E', data: { n: 1 } },
          { type: 'E', data: { n: 2 } },
        ],
        { expectedVersion: 1 },
      );
      await fired;
      assert.ok(log.messages.includes('an append whose answer was lost had committed'));
      assert.equal(result.nextExpectedVersion, 3);
      const stream = await store.readStream('s');
      assert.deepEqual(
        stream.map((e) => [e.streamVersion, e.position, (e.data as { n: number }).n]),
        [
          [1, stream[0]!.position, 0],
          [2, result.events[0]!.position, 1],
          [3, result.position, 2],
        ],
      );
      assert.deepEqual(
        result.events.map((e) => e.eventId),
        stream.slice(1).map((e) => e.eventId),
      );
    } finally {
      await store.close();
      await proxy.close();
    }
  });

  it('an append whose request never reached the server is sent again, and written once', async () => {
    const schema = source.schema('unsent');
    await (await open(schema)).close();
    const url = new URL(source.db.url);
    const proxy = await startTcpProxy(url.hostname, Number(url.port));
    url.host = `127.0.0.1:${proxy.port}`;
    const store = await PostgresEventStore.connect({
      connectionString: url.toString(),
      schema,
      poolSize: 2,
    });
    try {
      const fired = proxy.fault({ match: `tm.${schema}.append`, when: 'before-server' });
      const result = await store.appendToStream('s', [{ type: 'E', data: {} }], {
        expectedVersion: 0,
      });
      await fired;
      assert.equal(result.nextExpectedVersion, 1);
      assert.equal((await store.readStream('s')).length, 1);
    } finally {
      await store.close();
      await proxy.close();
    }
  });

  it('a stream held by a long transaction blocks that stream only, and times out as unavailable', async () => {
    const schema = source.schema('held');
    const store = await open(schema, { statementTimeoutMs: 300 });
    const raw = new pg.Client({ connectionString: source.db.url });
    await raw.connect();
    try {
      await raw.query('BEGIN');
      await raw.query(`SELECT * FROM "${schema}".tm_append('busy', -1, $1, now())`, [
        JSON.stringify([{ i: 'held-1', t: 'E', s: 1, d: {}, m: {} }]),
      ]);
      // Other streams go on while 'busy' is held.
      await store.appendToStream('free', [{ type: 'E', data: {} }]);
      await assert.rejects(store.appendToStream('busy', [{ type: 'E', data: {} }]), (e) =>
        isTidemarkError(e, 'unavailable'),
      );
      await raw.query('ROLLBACK');
      assert.equal(await store.streamVersion('busy'), 0);
      const result = await store.appendToStream('busy', [{ type: 'E', data: {} }], {
        expectedVersion: 0,
      });
      assert.equal(result.nextExpectedVersion, 1);
    } finally {
      await raw.end();
      await store.close();
    }
  });

  it('prepares its hot statements once per connection', async () => {
    const schema = source.schema('prepared');
    await (await open(schema)).close();
    const url = new URL(source.db.url);
    const proxy = await startTcpProxy(url.hostname, Number(url.port));
    url.host = `127.0.0.1:${proxy.port}`;
    const store = await PostgresEventStore.connect({
      connectionString: url.toString(),
      schema,
      poolSize: 1,
    });
    try {
      for (let i = 0; i < 20; i++) {
        await store.appendToStream('s', [{ type: 'E', data: { i } }]);
        await store.readAll({ after: i });
      }
      // The SQL text crosses the wire once (Parse); later runs send only the statement's name.
      assert.equal(proxy.sent('tm_append($1'), 1);
      assert.equal(proxy.sent('pg_current_snapshot'), 1);
      assert.equal(proxy.sent(`tm.${schema}.append`), 20);
    } finally {
      await store.close();
      await proxy.close();
    }
  });
});
