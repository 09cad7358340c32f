// The store identity: written once when a store's schema is created, kept by every later open
// (and by a copy of the database), different for every other store.
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MemoryEventStore } from 'tidemark/memory';
import { PostgresEventStore } from 'tidemark/postgres';
import { SqliteEventStore } from 'tidemark/sqlite';
import { createTestDatabase, type TestDatabase } from '../support/services.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('store identity', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tidemark-store-id-'));
  let db: TestDatabase;
  before(async () => {
    db = await createTestDatabase('store_id');
  });
  after(async () => {
    rmSync(dir, { recursive: true, force: true });
    await db.drop();
  });

  it('memory: one per instance, shared by a reopened store', async () => {
    const a = new MemoryEventStore();
    const b = new MemoryEventStore();
    assert.match(await a.storeId(), UUID);
    assert.notEqual(await a.storeId(), await b.storeId());
    assert.equal(await a.reopen().storeId(), await a.storeId());
  });

  it('sqlite: written at migration, kept by reopening and by a copy of the file', async () => {
    const path = join(dir, 'a.db');
    const first = new SqliteEventStore(path);
    const id = await first.storeId();
    assert.match(id, UUID);
    await first.close();
    const again = new SqliteEventStore(path);
    assert.equal(await again.storeId(), id);
    await again.close();
    copyFileSync(path, join(dir, 'copy.db'));
    const copy = new SqliteEventStore(join(dir, 'copy.db'));
    assert.equal(await copy.storeId(), id, 'a restored copy is the same store');
    await copy.close();
    const other = new SqliteEventStore(join(dir, 'b.db'));
    assert.notEqual(await other.storeId(), id);
    await other.close();
  });

  it('postgres: written at migration, one per schema', async () => {
    const a = await PostgresEventStore.connect({ connectionString: db.url, schema: 'id_a' });
    const id = await a.storeId();
    assert.match(id, UUID);
    await a.close();
    const again = await PostgresEventStore.connect({ connectionString: db.url, schema: 'id_a' });
    assert.equal(await again.storeId(), id);
    await again.close();
    const b = await PostgresEventStore.connect({ connectionString: db.url, schema: 'id_b' });
    assert.notEqual(await b.storeId(), id);
    await b.close();
  });
});
