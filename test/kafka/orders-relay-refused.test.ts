// The Orders service whose relay refuses (another store's progress under its relay name): it
// publishes nothing, and readiness and metrics say so.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { KafkaAdmin, KafkaReader } from '../../src/kafka/internal.ts';
import { createOrdersService } from '../../examples/orders/src/app.ts';
import { kafkaConnection, uniqueName, uniqueTopic } from '../support/services.ts';

const dir = mkdtempSync(join(tmpdir(), 'tidemark-orders-refused-'));
const topic = uniqueTopic('orders-refused');
after(async () => {
  rmSync(dir, { recursive: true, force: true });
  const admin = new KafkaAdmin(kafkaConnection());
  await admin.deleteTopic(topic, { ifExists: true });
  await admin.close();
});

const order = (orderId: string) => ({
  method: 'POST' as const,
  url: '/orders',
  payload: { orderId, customerId: 'c', lines: [{ sku: 'a', quantity: 1, unitPriceCents: 100 }] },
});

it(
  'a second environment under the same relay name is refused: not ready, relay_up 0, refused 1',
  { timeout: 120_000 },
  async () => {
    const relayName = uniqueName('orders-env');
    const kafka = (group: string) => ({
      connection: kafkaConnection(),
      topic,
      partitions: 2,
      relayName,
      groupPrefix: uniqueName(group),
    });
    const first = await createOrdersService({
      databaseUrl: join(dir, 'first.db'),
      kafka: kafka('first'),
    });
    await first.start();
    assert.equal((await first.app.inject(order('o-1'))).statusCode, 201);
    assert.equal(await first.relay!.whenCaughtUp(60_000), true);
    await first.stop();

    const second = await createOrdersService({
      databaseUrl: join(dir, 'second.db'),
      kafka: kafka('second'),
    });
    await second.start();
    try {
      assert.equal((await second.app.inject(order('o-2'))).statusCode, 201);
      const ready = await second.app.inject({ method: 'GET', url: '/ready' });
      assert.equal(ready.statusCode, 503, ready.body);
      const relay = ready.json().details.relay;
      assert.equal(relay.state, 'refused');
      assert.equal(relay.refusal.reason, 'store_mismatch');
      const metrics = (await second.app.inject({ method: 'GET', url: '/metrics' })).body;
      assert.match(metrics, /tidemark_relay_up\{relay="[^"]+"\} 0/);
      assert.match(metrics, /tidemark_relay_refused\{relay="[^"]+"\} 1/);
      assert.match(metrics, /tidemark_relay_parked_streams\{relay="[^"]+"\} 0/);
    } finally {
      await second.stop();
    }
    const reader = new KafkaReader(kafkaConnection());
    const records = await reader.readAll(topic);
    await reader.close();
    assert.equal(records.length, 1, "nothing of the second environment's store");
  },
);
