/**
 * A rebuild of a large log while the service answers queries: no query fails, the switch-over
 * happens under the queries' feet, the old version is gone afterwards, and the rebuild's memory
 * stays flat. TIDEMARK_REBUILD_EVENTS sets the log's size (default 200,000).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { ledger } from 'tidemark';
import { SqliteDatabase, SqliteEventStore, SqliteProjectionSink } from 'tidemark/sqlite';
import { startServiceProcess } from '../support/process.ts';

const root = new URL('../../', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'tidemark-rebuild-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const total = Number(process.env.TIDEMARK_REBUILD_EVENTS ?? 200_000);
const perOrder = 10;
const orders = Math.ceil(total / perOrder);

async function seed(path: string): Promise<void> {
  const store = new SqliteEventStore(path, { synchronous: 'NORMAL' });
  const at = new Date().toISOString();
  for (let start = 0; start < orders; start += 500) {
    const chunk = [];
    for (let o = start; o < Math.min(orders, start + 500); o++) {
      const events = [
        {
          type: 'OrderCreated',
          data: { orderId: `o${o}`, customerId: `c${o % 97}`, lines: [], at },
        },
        ...Array.from({ length: perOrder - 1 }, (_, k) => ({
          type: 'ItemAdded',
          data: { sku: `S${k}`, quantity: 1 + (k % 3), unitPriceCents: 100 * (k + 1), at },
        })),
      ];
      chunk.push(store.appendToStream(`order-o${o}`, events, { expectedVersion: 0 }));
    }
    await Promise.all(chunk);
  }
  await store.close();
}

it(`rebuilds ${total.toLocaleString('en-US')} events beside the active version while queries run`, async () => {
  const path = join(dir, 'big.db');
  await seed(path);
  // The service first catches up with the whole log: let a consistency wait last that long.
  const service = await startServiceProcess({
    DATABASE_URL: path,
    CONSISTENCY_TIMEOUT_MS: '300000',
  });
  try {
    // Wait for the service's projections to catch up, on the service's own signal.
    const last = `1:${orders * perOrder}:${perOrder}:order-o${orders - 1}`;
    for (const url of ['/orders/x', '/orders', '/customers/c1/summary']) {
      const response = await fetch(`${service.url}${url}`, {
        headers: { 'consistency-token': last },
      });
      await response.arrayBuffer();
    }
    const ready = await fetch(`${service.url}/orders/o1`, {
      headers: { 'consistency-token': last },
    });
    assert.equal(ready.headers.get('consistency'), 'fresh');

    let stop = false;
    const failures: string[] = [];
    let queries = 0;
    const querying = (async () => {
      for (let i = 0; !stop; i++) {
        const id = `o${(i * 7919) % orders}`;
        const response = await fetch(`${service.url}/orders/${id}`);
        const body = (await response.json()) as { lines?: unknown[]; version?: number };
        queries++;
        if (response.status !== 200 || body.lines?.length !== perOrder - 1) {
          failures.push(`${id}: ${response.status} ${JSON.stringify(body).slice(0, 200)}`);
        }
        const list = await fetch(`${service.url}/orders?customerId=c${i % 97}&limit=5`);
        if (list.status !== 200) failures.push(`list: ${list.status}`);
        await list.arrayBuffer();
      }
    })();

    const rebuild = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(
        process.execPath,
        [
          join(root, 'bin/tidemark.js'),
          'projections',
          'rebuild',
          'order-details',
          '--drop-after',
          '3000',
          '--json',
        ],
        { cwd: root, env: { ...process.env, DATABASE_URL: path }, maxBuffer: 16 * 1024 * 1024 },
        (error, stdout, stderr) =>
          resolve({
            code: error ? Number((error as { code?: number }).code ?? 1) : 0,
            stdout,
            stderr,
          }),
      ),
    );
    // Keep querying across the drop of the old tables, then stop.
    stop = true;
    await querying;
    assert.equal(rebuild.code, 0, rebuild.stderr);
    const result = JSON.parse(rebuild.stdout) as {
      version: number;
      events: number;
      seconds: number;
      dropped: number[];
      peakRssMb: number;
    };
    assert.equal(result.events, orders * perOrder);
    assert.deepEqual(result.dropped, [1]);
    assert.match(rebuild.stderr, /switched over: queries now read version 2/);
    assert.deepEqual(failures, []);
    assert.ok(queries > 0);

    const database = new SqliteDatabase(path);
    const sink = new SqliteProjectionSink(database);
    assert.equal(await ledger.activeVersion(sink, 'order-details'), 2);
    assert.deepEqual(
      (await ledger.projections(sink, 'order-details')).map((r) => [r.version, r.state]),
      [[2, 'active']],
    );
    await assert.rejects(sink.query('SELECT count(*) FROM orders_v1'));
    const [count] = await sink.query<{ n: number }>('SELECT count(*) AS n FROM orders_v2');
    assert.equal(count!.n, orders);
    await database.close();
    process.stderr.write(
      `rebuild of ${result.events} events: ${result.seconds.toFixed(1)} s, ` +
        `${Math.round(result.events / result.seconds)} events/s, peak RSS ${result.peakRssMb} MB, ${queries} queries during it\n`,
    );
  } finally {
    service.child.kill('SIGTERM');
    await service.exited;
  }
});
