// rebuildProjection's `signal` (what stops an admin console's rebuild when its service stops):
// before the switch-over the rebuild rejects and leaves its version `building`; during the grace
// period it resolves at once and leaves the old version's tables for a later drop.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  defineProjection,
  projectionStatus,
  rebuildProjection,
  storeFeed,
  type ProjectionOperations,
} from 'tidemark';
import { MemoryEventStore } from 'tidemark/memory';
import { SqliteProjectionSink } from 'tidemark/sqlite';

const counts = defineProjection({
  name: 'counts',
  version: 1,
  handles: ['Counted'],
  tables: ['counts'],
  async init({ sql, table }) {
    await sql.execute(`CREATE TABLE ${table('counts')} (id TEXT PRIMARY KEY, n INTEGER NOT NULL)`);
  },
  async apply(event, { sql, table }) {
    await sql.execute(
      `INSERT INTO ${table('counts')} (id, n) VALUES (?, 1) ON CONFLICT (id) DO UPDATE SET n = n + 1`,
      [event.streamId],
    );
  },
});

async function setUp(): Promise<ProjectionOperations> {
  const store = new MemoryEventStore();
  for (const id of ['a', 'b', 'c']) {
    await store.appendToStream(id, [{ type: 'Counted', data: {} }]);
  }
  return { sink: new SqliteProjectionSink(':memory:'), feeds: { store: storeFeed(store) } };
}

const states = async (ops: ProjectionOperations) =>
  (await projectionStatus(ops)).map((s) => `v${s.version} ${s.state}`);

describe('rebuildProjection with an abort signal', () => {
  it('aborted before it caught up: rejects, and the new version stays building', async () => {
    const ops = await setUp();
    await rebuildProjection(ops, { definition: counts, dropGraceMs: 0 }); // v1, active
    const abort = new AbortController();
    abort.abort();
    await assert.rejects(
      rebuildProjection(ops, { definition: counts, dropGraceMs: 0, signal: abort.signal }),
      /stopped before it caught up/,
    );
    assert.deepEqual(await states(ops), ['v1 active', 'v2 building']);
  });

  it('aborted in the grace period: resolves at once, the old version is left for a later drop', async () => {
    const ops = await setUp();
    await rebuildProjection(ops, { definition: counts, dropGraceMs: 0 });
    const abort = new AbortController();
    const started = performance.now();
    const result = await rebuildProjection(ops, {
      definition: counts,
      dropGraceMs: 600_000,
      signal: abort.signal,
      onSwitchedOver: () => abort.abort(),
    });
    assert.ok(performance.now() - started < 60_000, 'did not wait out the grace period');
    assert.equal(result.version, 2);
    assert.deepEqual(result.dropped, []);
    assert.deepEqual(await states(ops), ['v1 retired', 'v2 active']);
  });
});
