// The Orders service in Kafka mode: store → relay → Kafka → projectors, consistency tokens
// across Kafka. In one process on SQLite, and as three processes (api, relay, projector) on
// PostgreSQL.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { KafkaAdmin, KafkaReader, decodeEvent } from '../../src/kafka/internal.ts';
import { createOrdersService } from '../../examples/orders/src/app.ts';
import { startServiceProcess, type ServiceProcess } from '../support/process.ts';
import {
  createTestDatabase,
  kafkaBrokers,
  kafkaConnection,
  uniqueName,
  uniqueTopic,
} from '../support/services.ts';

const dir = mkdtempSync(join(tmpdir(), 'tidemark-orders-kafka-'));
const topics: string[] = [];
after(async () => {
  rmSync(dir, { recursive: true, force: true });
  const admin = new KafkaAdmin(kafkaConnection());
  for (const topic of topics) await admin.deleteTopic(topic, { ifExists: true });
  await admin.close();
});

const line = (sku: string, quantity = 1, unitPriceCents = 1000) => ({
  sku,
  quantity,
  unitPriceCents,
});

describe('kafka: the Orders service in Kafka mode', () => {
  it(
    'runs every role in one process (SQLite + Kafka); tokens wait for Kafka-fed read models',
    {
      timeout: 120_000,
    },
    async () => {
      const topic = uniqueTopic('orders');
      topics.push(topic);
      const service = await createOrdersService({
        databaseUrl: join(dir, 'orders.db'),
        kafka: {
          connection: kafkaConnection(),
          topic,
          partitions: 3,
          relayName: uniqueName('orders'),
          groupPrefix: uniqueName('orders'),
        },
      });
      await service.start();
      try {
        const { app } = service;
        const created = await app.inject({
          method: 'POST',
          url: '/orders',
          payload: { orderId: 'k-1', customerId: 'cust-1', lines: [line('a', 2)] },
        });
        assert.equal(created.statusCode, 201);
        const token = created.headers['consistency-token'] as string;
        assert.ok(token);
        const read = await app.inject({
          method: 'GET',
          url: '/orders/k-1',
          headers: { 'consistency-token': token },
        });
        assert.equal(read.statusCode, 200);
        assert.equal(read.headers['consistency'], 'fresh');
        assert.equal(read.json().totalCents, 2000);

        for (const url of ['/orders/k-1/items', '/orders/k-1/confirm']) {
          const response = await app.inject({
            method: 'POST',
            url,
            ...(url.endsWith('items') ? { payload: line('b', 1, 500) } : {}),
          });
          assert.equal(response.statusCode, 200, response.body);
          const summary = await app.inject({
            method: 'GET',
            url: '/customers/cust-1/summary',
            headers: { 'consistency-token': response.headers['consistency-token'] as string },
          });
          assert.equal(summary.headers['consistency'], 'fresh');
        }
        const summary = await app.inject({ method: 'GET', url: '/customers/cust-1/summary' });
        assert.deepEqual(summary.json(), {
          customerId: 'cust-1',
          orderCount: 1,
          openOrders: 0,
          totalSpentCents: 2500,
        });

        // The events went through Kafka, in the documented format.
        const reader = new KafkaReader(kafkaConnection());
        const published = (await reader.readAll(topic)).map((r) => decodeEvent(r));
        await reader.close();
        assert.deepEqual(
          published.map((e) => e.type),
          ['OrderCreated', 'ItemAdded', 'OrderConfirmed'],
        );
        assert.deepEqual(published, await service.storage.store.readStream('order-k-1'));

        const ready = await app.inject({ method: 'GET', url: '/ready' });
        assert.equal(ready.statusCode, 200, ready.body);
        assert.equal(ready.json().details.relay.state, 'running');
        const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
        assert.match(metrics, /tidemark_relay_position\{relay="[^"]+"\} 3/);
        assert.match(metrics, /tidemark_projection_partition_lag_events\{/);
      } finally {
        await service.stop();
      }
    },
  );

  it(
    'runs api, relay and projector as processes of their own (PostgreSQL + Kafka)',
    {
      timeout: 180_000,
    },
    async () => {
      const db = await createTestDatabase('orders_kafka');
      const topic = uniqueTopic('orders-split');
      topics.push(topic);
      const env = {
        DATABASE_URL: db.url,
        KAFKA_BROKERS: kafkaBrokers().join(','),
        KAFKA_TOPIC: topic,
        KAFKA_PARTITIONS: '3',
        KAFKA_RELAY_NAME: uniqueName('orders'),
        KAFKA_GROUP_PREFIX: uniqueName('orders'),
      };
      const processes: ServiceProcess[] = [];
      try {
        for (const role of ['relay', 'projector', 'api']) {
          processes.push(await startServiceProcess(env, ['--role', role]));
        }
        const api = processes[2]!.url;
        const post = async (path: string, body?: unknown) => {
          const response = await fetch(`${api}${path}`, {
            method: 'POST',
            ...(body === undefined
              ? {}
              : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
          });
          assert.ok(response.status < 300, await response.clone().text());
          return response.headers.get('consistency-token')!;
        };
        for (let i = 0; i < 5; i++) {
          const token = await post('/orders', {
            orderId: `p-${i}`,
            customerId: 'cust-9',
            lines: [line('a', 1, 100 * (i + 1))],
          });
          const response = await fetch(`${api}/orders/p-${i}`, {
            headers: { 'consistency-token': token },
          });
          assert.equal(response.status, 200);
          assert.equal(response.headers.get('consistency'), 'fresh');
        }
        const token = await post('/orders/p-4/confirm');
        const summary = await fetch(`${api}/customers/cust-9/summary`, {
          headers: { 'consistency-token': token },
        });
        assert.equal(summary.headers.get('consistency'), 'fresh');
        assert.deepEqual(await summary.json(), {
          customerId: 'cust-9',
          orderCount: 5,
          openOrders: 4,
          totalSpentCents: 500,
        });
        // The relay process's admin API counts what it published since it started: every
        // position of this fresh store (the summary above was fed from Kafka), in at least one
        // transaction and at most one per event, plus the first one, which records the store's
        // id and the partition counts in the progress topic before there is any event.
        const relay = (await (await fetch(`${processes[0]!.url}/admin/api/relay`)).json()) as {
          source: string;
          position: number;
          published: number;
          transactions: number;
        };
        assert.equal(relay.source, 'process');
        assert.ok(relay.position >= 6, JSON.stringify(relay));
        assert.equal(relay.published, relay.position, JSON.stringify(relay));
        assert.ok(
          relay.transactions >= 1 && relay.transactions <= relay.published + 1,
          JSON.stringify(relay),
        );
      } finally {
        for (const p of processes) p.child.kill('SIGTERM');
        for (const p of processes) assert.equal(await p.exited, 0);
        await db.drop();
      }
    },
  );
});
