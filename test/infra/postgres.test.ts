// The local PostgreSQL answers, with the settings tests rely on, and hands out private databases.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createTestDatabase, postgresUrl, type TestDatabase } from '../support/services.ts';

describe('infra: PostgreSQL', () => {
  it('answers a round trip on the shared database, over TCP on 127.0.0.1', async () => {
    const url = new URL(postgresUrl());
    assert.notEqual(url.hostname, 'localhost', 'use 127.0.0.1, not localhost');
    const client = new pg.Client({ connectionString: postgresUrl() });
    await client.connect();
    try {
      const { rows } = await client.query<{ sum: number; version: number; fsync: string }>(
        "SELECT $1::int + $2::int AS sum, current_setting('server_version_num')::int AS version, current_setting('fsync') AS fsync",
        [20, 22],
      );
      assert.equal(rows[0]!.sum, 42);
      assert.ok(
        rows[0]!.version >= 130000,
        `PostgreSQL 13+ needed (DROP DATABASE ... WITH (FORCE)), got ${rows[0]!.version}`,
      );
      assert.equal(rows[0]!.fsync, 'on');
    } finally {
      await client.end();
    }
  });

  describe('createTestDatabase', () => {
    let db: TestDatabase;
    before(async () => {
      db = await createTestDatabase('infra');
    });
    after(() => db.drop());

    it('gives a fresh database the test role owns, where it can create tables', async () => {
      assert.match(db.name, /^tmt_infra_[0-9a-f]{10}$/);
      const client = new pg.Client({ connectionString: db.url });
      await client.connect();
      try {
        const { rows: tables } = await client.query(
          "SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public'",
        );
        assert.equal(tables[0].n, 0);
        await client.query('CREATE TABLE t (id bigint PRIMARY KEY, body jsonb NOT NULL)');
        await client.query('INSERT INTO t VALUES (1, $1)', [{ hello: 'world' }]);
        const { rows } = await client.query('SELECT body FROM t WHERE id = 1');
        assert.deepEqual(rows[0].body, { hello: 'world' });
      } finally {
        await client.end();
      }
    });

    it('drops it even while a connection is still open', async () => {
      const other = await createTestDatabase('infra-drop');
      const client = new pg.Client({ connectionString: other.url });
      await client.connect();
      client.on('error', () => {}); // the forced drop terminates this session
      await other.drop();
      const admin = new pg.Client({ connectionString: postgresUrl() });
      await admin.connect();
      try {
        const { rows } = await admin.query(
          'SELECT count(*)::int AS n FROM pg_database WHERE datname = $1',
          [other.name],
        );
        assert.equal(rows[0].n, 0);
      } finally {
        await admin.end();
        await client.end().catch(() => {});
      }
    });
  });
});
