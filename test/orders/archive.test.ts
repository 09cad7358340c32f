/**
 * Archived orders over HTTP, on SQLite and PostgreSQL: a shipped or cancelled order moved to
 * the archive still answers `/events`, `/history` and `GET /orders/{id}` as before, a command
 * on it is refused with 409 `stream_archived` (problem+json) and writes nothing, and open orders
 * are not archived (the Orders policy).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startArchivedOrdersService, type ArchiveBackend } from '../support/archived-orders.ts';
import { createTestDatabase } from '../support/services.ts';

const backends: ArchiveBackend[] = [
  { name: 'SQLite', database: async () => ({ url: undefined, drop: async () => {} }) },
  { name: 'PostgreSQL', database: () => createTestDatabase('orders_archive') },
];

for (const backend of backends) {
  describe(`orders: archived orders (${backend.name})`, () => {
    it('stay readable, refuse commands with 409 stream_archived, and open orders stay hot', async () => {
      const { service, call, archiveOrders } = await startArchivedOrdersService(backend);
      const line = { sku: 'sku-1', quantity: 2, unitPriceCents: 250 };
      const create = async (orderId: string) =>
        assert.equal(
          (await call('POST', '/orders', { orderId, customerId: 'c-1', lines: [line] })).status,
          201,
        );
      await create('shipped-1');
      await call('POST', '/orders/shipped-1/confirm');
      await call('POST', '/orders/shipped-1/ship');
      await create('cancelled-1');
      await call('POST', '/orders/cancelled-1/cancel', { reason: 'changed my mind' });
      await create('open-1');
      await create('last-1'); // holds the log's last position

      const before: Record<string, unknown> = {};
      for (const id of ['shipped-1', 'cancelled-1', 'open-1']) {
        before[`${id}/events`] = (await call('GET', `/orders/${id}/events`)).body;
        before[`${id}/history`] = (await call('GET', `/orders/${id}/history?version=2`)).body;
      }
      assert.ok(await service.projections!.whenCaughtUp(10_000));
      const view = (await call('GET', '/orders/shipped-1')).body;

      const progress = await archiveOrders();
      assert.equal(progress.streams, 2);
      assert.equal(await service.storage.store.isArchived!('order-shipped-1'), true);
      assert.equal(await service.storage.store.isArchived!('order-open-1'), false);

      for (const id of ['shipped-1', 'cancelled-1', 'open-1']) {
        assert.deepEqual((await call('GET', `/orders/${id}/events`)).body, before[`${id}/events`]);
        assert.deepEqual(
          (await call('GET', `/orders/${id}/history?version=2`)).body,
          before[`${id}/history`],
        );
      }
      assert.deepEqual((await call('GET', '/orders/shipped-1')).body, view);

      const refused = await call('POST', '/orders/shipped-1/cancel', {});
      assert.equal(refused.status, 409);
      assert.match(refused.type, /^application\/problem\+json/);
      assert.equal(refused.body.code, 'stream_archived');
      const item = await call('POST', '/orders/cancelled-1/items', line);
      assert.equal(item.status, 409);
      assert.equal(item.body.code, 'stream_archived');
      // Creating an archived id again is refused the same way, never a new stream.
      const again = await call('POST', '/orders', {
        orderId: 'shipped-1',
        customerId: 'c-1',
        lines: [line],
      });
      assert.equal(again.status, 409);
      assert.equal(again.body.code, 'stream_archived');
      assert.deepEqual(
        (await call('GET', '/orders/shipped-1/events')).body,
        before['shipped-1/events'],
      );
      // Open orders take commands as before.
      assert.equal((await call('POST', '/orders/open-1/confirm')).status, 200);
    });
  });
}
