// The archive suite against a real PostgreSQL database (a schema per test).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import pg from 'pg';
import { ArchiveAwareStore, DirectoryArchive, archiveStreams } from 'tidemark';
import { PostgresEventStore, PostgresProjectionSink } from 'tidemark/postgres';
import { schemaSource, type SchemaSource } from '../support/pg-schemas.ts';
import { createTestDatabase } from '../support/services.ts';
import { archiveSuite } from './suite.ts';

let source: SchemaSource;
before(async () => {
  source = schemaSource(await createTestDatabase('archive'));
});
after(() => source.drop());

archiveSuite('PostgreSQL', async (label) => {
  const schema = source.schema(label);
  const clock = { now: new Date() };
  const options = { connectionString: source.db.url, schema, poolSize: 4 };
  const store = await PostgresEventStore.connect({ ...options, now: () => clock.now });
  const sink = await PostgresProjectionSink.connect(options);
  return {
    store,
    sink,
    clock,
    close: async () => {
      await sink.close();
      await store.close();
    },
  };
});

it('archived events above an append still in flight wait for it, like hot ones (gap safety)', async () => {
  const schema = source.schema('gap');
  const old = new Date(Date.now() - 200 * 86_400_000);
  const hot = await PostgresEventStore.connect({
    connectionString: source.db.url,
    schema,
    poolSize: 4,
    now: () => old,
  });
  const dir = mkdtempSync(join(tmpdir(), 'tidemark-archive-gap-'));
  const raw = new pg.Client({ connectionString: source.db.url });
  await raw.connect();
  try {
    const segments = new DirectoryArchive(dir);
    const store = new ArchiveAwareStore(hot, segments);
    await hot.appendToStream('order-a', [{ type: 'Counted', data: {} }]);
    // An append that holds its position, uncommitted.
    await raw.query('BEGIN');
    const held = await raw.query<{ first_position: string }>(
      `SELECT first_position FROM "${schema}".tm_append('order-x', -1, '[{"i":"x1","t":"Counted","s":1,"d":{},"m":{}}]', now())`,
    );
    const heldAt = Number(held.rows[0]!.first_position);
    // Committed after it, with higher positions; order-b then moves to the archive.
    await hot.appendToStream('order-b', [
      { type: 'Counted', data: {} },
      { type: 'Closed', data: {} },
    ]);
    await hot.appendToStream('order-c', [{ type: 'Counted', data: {} }]);
    const moved = await archiveStreams({
      tables: store.tables,
      segments,
      olderThanMs: 90 * 86_400_000,
      policy: (events) => events.at(-1)?.type === 'Closed',
    });
    assert.equal(moved.streams, 1);
    const archivedAt = (await store.readStream('order-b')).map((e) => e.position);
    assert.ok(archivedAt.every((p) => p > heldAt));

    // While order-x may still commit below them, neither hot nor archived events past it show.
    const early = await store.readAll({ maxCount: 100 });
    assert.deepEqual(
      early.map((e) => e.streamId),
      ['order-a'],
    );
    await raw.query('COMMIT');
    const all = await store.readAll({ maxCount: 100 });
    assert.deepEqual(
      all.map((e) => e.streamId),
      ['order-a', 'order-x', 'order-b', 'order-b', 'order-c'],
    );
    assert.deepEqual(
      all.map((e) => e.position),
      [...all.map((e) => e.position)].sort((x, y) => x - y),
    );
  } finally {
    await raw.end();
    await hot.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
