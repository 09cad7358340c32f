/**
 * Personal data in the archive, on SQLite and PostgreSQL: an order moved to the archive keeps
 * its shipping address sealed in the segment files (their decompressed bytes hold no plaintext),
 * reads in clear through the API while the customer's key exists, still refuses commands as an
 * archived order, and reads as redacted once the customer is forgotten, with the segments
 * untouched.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, it } from 'node:test';
import { isRedactedField } from 'tidemark';
import { startArchivedOrdersService, type ArchiveBackend } from '../support/archived-orders.ts';
import { createTestDatabase } from '../support/services.ts';

const backends: ArchiveBackend[] = [
  { name: 'SQLite', database: async () => ({ url: undefined, drop: async () => {} }) },
  { name: 'PostgreSQL', database: () => createTestDatabase('orders_pd_archive') },
];

/** Every segment file of the archive directory, decompressed. */
const segmentText = (directory: string) =>
  readdirSync(directory, { recursive: true, encoding: 'utf8' })
    .filter((name) => name.endsWith('.tmseg.gz'))
    .map((name) => gunzipSync(readFileSync(join(directory, name))).toString('utf8'))
    .join('\n');

for (const backend of backends) {
  describe(`personal data: archived orders (${backend.name})`, () => {
    it('stay sealed in the segments, read in clear until forgotten, then redacted', async () => {
      const address = `Archive Road ${Math.random().toString(36).slice(2)}`;
      const { archive, call, archiveOrders } = await startArchivedOrdersService(backend);
      const created = await call('POST', '/orders', {
        orderId: 'pd-archived',
        customerId: 'c-archived',
        lines: [{ sku: 'sku-1', quantity: 1, unitPriceCents: 100 }],
        shippingAddress: address,
      });
      assert.equal(created.status, 201);
      await call('POST', '/orders/pd-archived/confirm');
      await call('POST', '/orders/pd-archived/ship');
      await call('POST', '/orders', {
        orderId: 'pd-last',
        customerId: 'c-other',
        lines: [{ sku: 'sku-1', quantity: 1, unitPriceCents: 100 }],
      });
      const progress = await archiveOrders();
      assert.equal(progress.streams, 1);

      const segments = segmentText(archive);
      assert.match(segments, /pd-archived/, 'the order is in the segments');
      // The envelope, inside the event's JSON text (PostgreSQL's jsonb puts a space after colons).
      assert.match(segments, /\\"\$personal\\": ?\\"aes-256-gcm\\"/);
      assert.equal(segments.includes(address), false, 'no plaintext address in the archive');

      const events = async () =>
        (
          (await call('GET', '/orders/pd-archived/events')).body.events as {
            data: Record<string, unknown>;
          }[]
        )[0]!.data.shippingAddress;
      assert.equal(await events(), address, 'read from the archive, in clear');
      // Still an archived order: the protecting store passes isArchived through.
      const refused = await call('POST', '/orders/pd-archived/cancel', { reason: 'late' });
      assert.equal(refused.status, 409);
      assert.equal(refused.body.code, 'stream_archived');

      assert.equal((await call('DELETE', '/customers/c-archived/personal-data')).status, 204);
      assert.ok(isRedactedField(await events()), 'redacted once forgotten');
      assert.equal(segmentText(archive), segments, 'the segments are as they were');
    });
  });
}
