import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isTidemarkError, ledgerMigrations } from 'tidemark';
import { PostgresEventStore, PostgresProjectionSink } from 'tidemark/postgres';
import { runnerScenarios } from '../projections/runner-suite.ts';
import { schemaSource, type SchemaSource } from '../support/pg-schemas.ts';
import { createTestDatabase } from '../support/services.ts';

let source: SchemaSource;
before(async () => {
  source = schemaSource(await createTestDatabase('sink'));
});
after(() => source.drop());

function connection(schema: string) {
  return { connectionString: source.db.url, schema, poolSize: 4 };
}

// The runner's scenarios, with the event store and the read models in one schema each.
runnerScenarios({
  name: 'postgres',
  async setup() {
    const schema = source.schema('runner');
    const store = await PostgresEventStore.connect(connection(schema));
    const sink = await PostgresProjectionSink.connect(connection(schema));
    return {
      store,
      sink,
      async close() {
        await sink.close();
        await store.close();
        await source.sql(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      },
    };
  },
  // What a server restart looks like to a connection in use.
  transientError: () =>
    Object.assign(new Error('terminating connection due to administrator command'), {
      code: '57P01',
    }),
});

describe('PostgresProjectionSink', () => {
  it('runs migrations once when many sinks start at once, and refuses a newer schema', async () => {
    const schema = source.schema('migrate');
    const sinks = await Promise.all(
      Array.from({ length: 6 }, () => PostgresProjectionSink.connect(connection(schema))),
    );
    try {
      await Promise.all(sinks.map((sink) => sink.migrate('projections', ledgerMigrations)));
      const rows = await sinks[0]!.query<{ component: string; version: number }>(
        'SELECT component, version FROM tm_migrations ORDER BY version',
      );
      assert.deepEqual(
        rows,
        ledgerMigrations.map((m) => ({ component: 'projections', version: m.version })),
      );
      await sinks[0]!.query(
        `INSERT INTO tm_migrations (component, version, description) VALUES ('projections', 99, 'future')`,
      );
      await assert.rejects(sinks[1]!.migrate('projections', ledgerMigrations), (error) =>
        isTidemarkError(error, 'storage_error'),
      );
    } finally {
      for (const sink of sinks) await sink.close();
    }
  });

  it('commits or rolls back a transaction as a whole, and tells listeners of commits', async () => {
    const sink = await PostgresProjectionSink.connect(connection(source.schema('tx')));
    try {
      await sink.migrate('test', [
        { version: 1, description: 't', sql: 'CREATE TABLE t (id integer PRIMARY KEY, at text)' },
      ]);
      let commits = 0;
      sink.onCommit(() => commits++);
      const when = new Date('2024-05-06T07:08:09.010Z');
      await sink.transaction(async (sql) => {
        await sql.execute('INSERT INTO t (id, at) VALUES ($1, $2)', [1, when]);
        assert.equal((await sql.execute('UPDATE t SET id = id WHERE id = $1', [1])).rowCount, 1);
      });
      await assert.rejects(
        sink.transaction(async (sql) => {
          await sql.execute('INSERT INTO t (id, at) VALUES ($1, $2)', [2, null]);
          throw new Error('handler failed');
        }),
        /handler failed/,
      );
      assert.deepEqual(await sink.query('SELECT id, at FROM t ORDER BY id'), [
        { id: 1, at: when.toISOString() },
      ]);
      assert.equal(commits, 1);
      // BIGINT comes back as a number, like SQLite's integers.
      assert.deepEqual(
        await sink.query('SELECT count(*) AS n, 9007199254740993::bigint AS big FROM t'),
        [{ n: 1, big: 9007199254740993n }],
      );
    } finally {
      await sink.close();
    }
  });

  it('counts connection failures and server give-ups as transient, handler errors not', async () => {
    const sink = new PostgresProjectionSink(connection('public'));
    try {
      for (const code of ['57P01', '08006', 'ECONNREFUSED', '40001', '40P01', '55P03']) {
        assert.equal(sink.isTransientError(Object.assign(new Error(code), { code })), true, code);
      }
      assert.equal(sink.isTransientError(new Error('Connection terminated unexpectedly')), true);
      for (const code of ['23505', '42P01', '22P02', undefined]) {
        assert.equal(sink.isTransientError(Object.assign(new Error('x'), { code })), false);
      }
    } finally {
      await sink.close();
    }
  });

  it('fails with unavailable when the database cannot be reached', async () => {
    await assert.rejects(
      PostgresProjectionSink.connect({
        connectionString: 'postgres://nobody:x@127.0.0.1:1/none',
        reconnectWindowMs: 0,
      }),
      (error) => isTidemarkError(error, 'unavailable'),
    );
  });
});
