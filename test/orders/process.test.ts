/**
 * The service as users run it: a real process on a real port. Includes the crash test: kill -9
 * during a burst of commands, restart, and check that nothing acknowledged was lost and that the
 * read models equal a rebuild from scratch.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { ProjectionRunner } from 'tidemark';
import { SqliteDatabase, SqliteEventStore, SqliteProjectionSink } from 'tidemark/sqlite';
import { orderProjections } from '../../examples/orders/src/projections.ts';
import { startServiceProcess } from '../support/process.ts';

const dir = mkdtempSync(join(tmpdir(), 'tidemark-process-'));
after(() => rmSync(dir, { recursive: true, force: true }));

async function post(url: string, body?: unknown) {
  const response = await fetch(url, {
    method: 'POST',
    ...(body === undefined
      ? {}
      : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
  });
  return {
    status: response.status,
    headers: response.headers,
    body: (await response.json()) as Record<string, unknown>,
  };
}

/** Every projection table of the file, read through its own connection. */
function readModelRows(path: string): Record<string, unknown[]> {
  const db = new Database(path, { readonly: true });
  try {
    const tables: Record<string, unknown[]> = {};
    for (const projection of orderProjections) {
      for (const table of projection.tables) {
        const name = `${table}_v${projection.version}`;
        tables[name] = db.prepare(`SELECT * FROM ${name} ORDER BY 1`).all();
      }
    }
    return tables;
  } finally {
    db.close();
  }
}

/** Rebuilds every read model from the store's log into a fresh database. */
async function rebuiltRows(storePath: string): Promise<Record<string, unknown[]>> {
  const source = new SqliteEventStore(storePath);
  const fresh = join(dir, `rebuild-${Date.now()}.db`);
  const database = new SqliteDatabase(fresh);
  const sink = new SqliteProjectionSink(database);
  const runners = orderProjections.map(
    (projection) => new ProjectionRunner({ projection, store: source, sink }),
  );
  for (const runner of runners) await runner.start();
  for (const runner of runners) assert.equal(await runner.whenCaughtUp(30_000), true);
  for (const runner of runners) await runner.stop();
  await database.close();
  await source.close();
  return readModelRows(fresh);
}

describe('the Orders service as a process', () => {
  it('serves the contract on a real port, and stops cleanly on SIGTERM', async () => {
    const service = await startServiceProcess({ DATABASE_URL: join(dir, 'real.db') });
    try {
      const created = await post(`${service.url}/orders`, {
        customerId: 'c-1',
        lines: [{ sku: 'A', quantity: 1, unitPriceCents: 100 }],
      });
      assert.equal(created.status, 201);
      const orderId = created.body.orderId as string;
      const got = await fetch(`${service.url}/orders/${orderId}`, {
        headers: { 'consistency-token': created.headers.get('consistency-token')! },
      });
      assert.equal(got.status, 200);
      assert.equal(got.headers.get('consistency'), 'fresh');
      assert.equal(((await got.json()) as { orderId: string }).orderId, orderId);
      const ready = await fetch(`${service.url}/ready`);
      assert.equal(ready.status, 200);
      const report = (await ready.json()) as {
        ready: boolean;
        details: { projections: { lagEvents: number }[] };
      };
      assert.equal(report.details.projections.length, 3);
    } finally {
      service.child.kill('SIGTERM');
    }
    assert.equal(await service.exited, 0);
    assert.ok(service.logs.some((l) => l.msg === 'stopped cleanly'));
    // main.ts set the old generation's growth itself (examples/orders/src/heap.ts).
    const listening = service.logs.find((l) => l.msg === 'Tidemark Orders is listening');
    assert.equal(listening?.heap, '--heap-growing-percent=50');
  });

  it('loses nothing acknowledged when killed with SIGKILL mid-burst; read models then equal a rebuild', async () => {
    const path = join(dir, 'crash.db');
    const first = await startServiceProcess({ DATABASE_URL: path });
    const acknowledged = new Map<string, number>(); // orderId -> last acknowledged version
    let stop = false;
    let killed!: () => void;
    const killedSignal = new Promise<void>((resolve) => (killed = resolve));
    const worker = async (w: number) => {
      for (let i = 0; !stop; i++) {
        const orderId = `w${w}-${i}`;
        try {
          const created = await post(`${first.url}/orders`, {
            orderId,
            customerId: `c-${i % 7}`,
            lines: [{ sku: 'A', quantity: 1 + (i % 3), unitPriceCents: 100 }],
          });
          if (created.status !== 201) continue;
          acknowledged.set(orderId, 1);
          const added = await post(`${first.url}/orders/${orderId}/items`, {
            sku: 'B',
            quantity: 1,
            unitPriceCents: 50,
          });
          if (added.status === 200) acknowledged.set(orderId, 2);
          if (i % 2 === 0) {
            const confirmed = await post(`${first.url}/orders/${orderId}/confirm`);
            if (confirmed.status === 200) acknowledged.set(orderId, 3);
          }
          if (acknowledged.size >= 150 && !stop) {
            stop = true;
            first.child.kill('SIGKILL');
            killed();
          }
        } catch {
          // Connection refused or reset: the process is gone. Unacknowledged, so not counted.
          if (stop) return;
        }
      }
    };
    const workers = Promise.all(Array.from({ length: 8 }, (_, w) => worker(w)));
    await killedSignal;
    assert.equal(await first.exited, 'SIGKILL');
    await workers;
    assert.ok(acknowledged.size >= 150);

    const second = await startServiceProcess({ DATABASE_URL: path });
    try {
      let lastToken = '';
      let lastPosition = 0;
      for (const [orderId, version] of acknowledged) {
        const response = await fetch(`${second.url}/orders/${orderId}/events`);
        assert.equal(response.status, 200, `order ${orderId} was acknowledged but is not stored`);
        const { events } = (await response.json()) as {
          events: { streamVersion: number; position: number }[];
        };
        assert.ok(
          events.length >= version,
          `order ${orderId}: acknowledged version ${version}, stored ${events.length}`,
        );
        const last = events[events.length - 1]!;
        if (last.position > lastPosition) {
          lastPosition = last.position;
          lastToken = `1:${last.position}:${last.streamVersion}:order-${orderId}`;
        }
      }
      // Wait (on the service's own signal) until every read model has applied the last write.
      for (const url of ['/orders/x', '/orders', '/customers/c-1/summary']) {
        const response = await fetch(`${second.url}${url}`, {
          headers: { 'consistency-token': lastToken },
        });
        assert.equal(response.headers.get('consistency'), 'fresh', url);
      }
    } finally {
      second.child.kill('SIGTERM');
    }
    assert.equal(await second.exited, 0);
    assert.deepEqual(readModelRows(path), await rebuiltRows(path));
  });
});
