/**
 * The projection host as a service runs it, against a real SQLite file, while another process
 * (here: a second connection running the library's rebuild, as the CLI does) switches a
 * projection over. The host's own reconcile is set an hour apart, so what these tests see comes
 * from the ledger at the time of the status read, not from a timer that happened to fire.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { ProjectionHost, rebuildProjection, storeFeed, type ProjectionStatus } from 'tidemark';
import { SqliteDatabase, SqliteEventStore, SqliteProjectionSink } from 'tidemark/sqlite';
import { orderProjections } from '../../examples/orders/src/projections.ts';

const dir = mkdtempSync(join(tmpdir(), 'tidemark-host-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const details = orderProjections.find((p) => p.name === 'order-details')!;

const created = (orderId: string) => ({
  type: 'OrderCreated',
  data: {
    orderId,
    customerId: 'c-1',
    lines: [{ sku: 'A', quantity: 1, unitPriceCents: 100 }],
    at: '2026-12-04T00:00:00.000Z',
  },
});

const versions = (statuses: ProjectionStatus[]) =>
  statuses.map((s) => `${s.name} v${s.version} ${s.state}`).sort();

it('a switch-over made by another process shows in status at once: the retired version is not listed', async () => {
  const path = join(dir, 'switch.db');
  const store = new SqliteEventStore(path);
  const database = new SqliteDatabase(path);
  const sink = new SqliteProjectionSink(database);
  const host = new ProjectionHost({
    projections: [details],
    store,
    sink,
    reconcileIntervalMs: 3_600_000,
  });
  // The other process: its own connections to the same file.
  const otherStore = new SqliteEventStore(path);
  const otherDatabase = new SqliteDatabase(path);
  const otherSink = new SqliteProjectionSink(otherDatabase);
  try {
    await host.start();
    for (const id of ['o-1', 'o-2', 'o-3']) {
      await store.appendToStream(`order-${id}`, [created(id)], { expectedVersion: 'no_stream' });
    }
    assert.equal(await host.whenCaughtUp(10_000), true);
    assert.deepEqual(versions(await host.status()), ['order-details v1 active']);

    let switchedOver = false;
    const result = await rebuildProjection(
      { sink: otherSink, feeds: { store: storeFeed(otherStore) } },
      {
        definition: details,
        dropGraceMs: 0,
        onSwitchedOver: () => (switchedOver = true),
      },
    );
    assert.equal(result.version, 2);
    assert.equal(switchedOver, true);
    // Read right after the other process retired v1: v1 must not be listed as active (nor at
    // all: it no longer runs here).
    const now = await host.status();
    assert.equal(
      now.some((s) => s.version === 1),
      false,
      `status still lists v1: ${versions(now).join(', ')}`,
    );
    // And the host takes the new active version up (the status read started a reconcile).
    const v2Listed = new Promise<void>((resolve) => {
      const check = async () => {
        if (versions(await host.status()).includes('order-details v2 active')) {
          off();
          resolve();
        }
      };
      const off = host.onChange(() => void check());
      void check();
    });
    await v2Listed;
    assert.equal(await host.whenCaughtUp(10_000), true);
    const [row] = await sink.query<{ n: number }>('SELECT count(*) AS n FROM orders_v2');
    assert.equal(Number(row!.n), 3);
  } finally {
    await host.stop();
    await otherDatabase.close();
    await otherStore.close();
    await database.close();
    await store.close();
  }
});
