/**
 * The Orders projections' batch path has exactly the effect of applying events one at a time
 * (their `apply` is a batch of one): random order histories, applied in batches of 1, 7 and 500
 * into fresh databases, give the same rows.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { BusinessRuleError, ProjectionRunner, fold, type RecordedEvent } from 'tidemark';
import { MemoryEventStore } from 'tidemark/memory';
import { SqliteDatabase, SqliteProjectionSink } from 'tidemark/sqlite';
import {
  orderDecider,
  type OrderCommand,
  type OrderEvent,
} from '../../examples/orders/src/domain.ts';
import { orderProjections } from '../../examples/orders/src/projections.ts';

/** A small deterministic generator (mulberry32), so a failure can be replayed. */
function random(seed: number) {
  return () => {
    seed |= 0;
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random valid histories: commands the decider accepts, over a few orders and customers. */
async function history(store: MemoryEventStore, seed: number, commands: number): Promise<void> {
  const next = random(seed);
  const pick = <T>(items: readonly T[]) => items[Math.floor(next() * items.length)]!;
  const at = '2026-11-27T10:00:00.000Z';
  for (let i = 0; i < commands; i++) {
    const orderId = `o${Math.floor(next() * 40)}`;
    const streamId = `order-${orderId}`;
    const events = (await store.readStream<OrderEvent>(streamId)) as unknown as OrderEvent[];
    const state = fold(orderDecider, events);
    const sku = pick(['A', 'B', 'C']);
    const command: OrderCommand = pick<OrderCommand>([
      {
        type: 'CreateOrder',
        data: {
          orderId,
          customerId: pick(['c1', 'c2', 'c3']),
          lines: [{ sku, quantity: 2, unitPriceCents: 150 }],
          at,
        },
      },
      {
        type: 'AddItem',
        data: {
          sku,
          quantity: 1 + Math.floor(next() * 3),
          unitPriceCents: 100 + Math.floor(next() * 50),
          at,
        },
      },
      { type: 'RemoveItem', data: { sku, at } },
      { type: 'ConfirmOrder', data: { at } },
      { type: 'CancelOrder', data: { reason: 'x', at } },
      { type: 'ShipOrder', data: { at } },
    ]);
    try {
      const decided = orderDecider.decide(command, state);
      const list = Array.isArray(decided) ? decided : [decided];
      await store.appendToStream(streamId, list as OrderEvent[], {
        expectedVersion: events.length,
      });
    } catch (error) {
      // Refused by a rule: the history goes on without it. Anything else is a bug of the test.
      if (!(error instanceof BusinessRuleError)) throw error;
    }
  }
}

async function rows(sink: SqliteProjectionSink): Promise<Record<string, unknown[]>> {
  const out: Record<string, unknown[]> = {};
  for (const projection of orderProjections) {
    for (const table of projection.tables) {
      out[table] = await sink.query(`SELECT * FROM ${table}_v1 ORDER BY 1`);
    }
  }
  return out;
}

async function project(store: MemoryEventStore, batchSize: number) {
  const database = new SqliteDatabase(':memory:');
  const sink = new SqliteProjectionSink(database);
  const runners = orderProjections.map(
    (projection) => new ProjectionRunner({ projection, store, sink, batchSize }),
  );
  for (const runner of runners) await runner.start();
  for (const runner of runners) assert.equal(await runner.whenCaughtUp(), true);
  for (const runner of runners) await runner.stop();
  const result = await rows(sink);
  await database.close();
  return result;
}

it('batched and one-at-a-time application give the same read models', async () => {
  for (const seed of [1, 2, 3, 4, 5]) {
    const store = new MemoryEventStore();
    await history(store, seed, 600);
    const all = (await store.readAll({ maxCount: 10_000 })) as RecordedEvent[];
    assert.ok(all.length > 50, `seed ${seed}: a history worth testing (${all.length} events)`);
    // Batches of one are `apply` event by event; larger ones fold several events of an order
    // in memory and write once.
    const single = await project(store, 1);
    for (const batchSize of [7, 500]) {
      assert.deepEqual(
        await project(store, batchSize),
        single,
        `seed ${seed}, batches of ${batchSize}`,
      );
    }
    assert.ok((single.customer_summary as unknown[]).length > 0);
  }
});
