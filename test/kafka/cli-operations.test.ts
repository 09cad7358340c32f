/**
 * The CLI's operations on Kafka-fed projections, beside a running service in Kafka mode:
 * `projections status` reads the lag from the partitions (not from the store's head), a
 * `projections rebuild` is taken up by the running service (which goes on applying the new
 * version after the CLI has gone), and `dlq retry` on a Kafka-fed version applies only the
 * parked events, with the Kafka feed's dedupe (it reads no feed).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { ledger } from 'tidemark';
import { KafkaAdmin } from 'tidemark/kafka';
import { createOrdersService } from '../../examples/orders/src/app.ts';
import { kafkaBrokers, kafkaConnection, uniqueName, uniqueTopic } from '../support/services.ts';

const root = new URL('../../', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'tidemark-kafka-ops-'));
const topic = uniqueTopic('ops');
after(async () => {
  rmSync(dir, { recursive: true, force: true });
  const admin = new KafkaAdmin(kafkaConnection());
  await admin.deleteTopic(topic, { ifExists: true });
  await admin.close();
});

function cli(args: string[], env: Record<string, string>) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
    execFile(
      process.execPath,
      [join(root, 'bin/tidemark.js'), ...args],
      { cwd: root, env: { ...process.env, ...env } },
      (error, stdout, stderr) =>
        resolve({
          code: error ? Number((error as { code?: number }).code ?? 1) : 0,
          stdout,
          stderr,
        }),
    ),
  );
}

it(
  'status, a live rebuild and a dead-letter retry on Kafka-fed projections',
  { timeout: 240_000 },
  async () => {
    const path = join(dir, 'orders.db');
    const groupPrefix = uniqueName('ops');
    const env = {
      DATABASE_URL: path,
      KAFKA_BROKERS: kafkaBrokers().join(','),
      TIDEMARK_CONFIG: join(root, 'test/kafka/fixtures/rebuild.config.ts'),
      TIDEMARK_TEST_TOPIC: topic,
      TIDEMARK_TEST_GROUP_PREFIX: groupPrefix,
    };
    const service = await createOrdersService({
      databaseUrl: path,
      kafka: {
        connection: kafkaConnection(),
        topic,
        partitions: 3,
        relayName: uniqueName('ops'),
        groupPrefix,
      },
    });
    await service.start();
    const create = async (orderId: string, customerId: string) => {
      const created = await service.app.inject({
        method: 'POST',
        url: '/orders',
        payload: { orderId, customerId, lines: [{ sku: 'A', quantity: 1, unitPriceCents: 100 }] },
      });
      assert.equal(created.statusCode, 201);
      return String(created.headers['consistency-token']);
    };
    const summary = async (customerId: string, token: string) => {
      const got = await service.app.inject({
        url: `/customers/${customerId}/summary`,
        headers: { 'consistency-token': token },
      });
      assert.equal(got.headers.consistency, 'fresh');
      return got.json() as { orderCount: number; totalSpentCents: number };
    };
    try {
      let token = '';
      for (let i = 0; i < 30; i++) token = await create(`k-${i}`, `c-${i % 3}`);
      assert.equal((await summary('c-2', token)).orderCount, 10);
      const head = await service.storage.store.headPosition();
      assert.equal(head, 30);

      // Status: Kafka-fed versions, their lag read from the partitions.
      const status = await cli(['projections', 'status', '--json'], env);
      assert.equal(status.code, 0, status.stderr);
      const rows = JSON.parse(status.stdout) as {
        name: string;
        feed: string;
        lagEvents: number | null;
        partitions?: { lag: number }[];
      }[];
      assert.equal(rows.length, 3);
      for (const row of rows) {
        assert.equal(row.feed, 'kafka', row.name);
        assert.equal(row.lagEvents, 0, `${row.name} has applied everything`);
        assert.equal(row.partitions?.length, 3);
      }

      // A rebuild while the service runs: the service builds along, switches, goes on with it.
      const rebuild = await cli(
        ['projections', 'rebuild', 'customer-summary', '--drop-after', '0', '--json'],
        env,
      );
      assert.equal(rebuild.code, 0, rebuild.stderr);
      assert.match(rebuild.stderr, /from Kafka's earliest offsets/);
      assert.equal(await ledger.activeVersion(service.storage.sink, 'customer-summary'), 2);
      token = await create('k-after', 'c-2');
      assert.equal(
        (await summary('c-2', token)).orderCount,
        11,
        'the running service applies the rebuilt version',
      );

      // A dead letter on a Kafka-fed version: an event it applied already, parked by hand.
      const [created] = await service.storage.store.readStream('order-k-1');
      await service.storage.sink.transaction((sql) =>
        ledger.park(sql, 'customer-summary', 2, created!, 'parked by the test', 1),
      );
      const retry = await cli(['dlq', 'retry', 'customer-summary', 'order-k-1', '--json'], env);
      assert.equal(retry.code, 0, retry.stderr);
      assert.equal((JSON.parse(retry.stdout) as { applied: number }).applied, 1);
      assert.deepEqual(await ledger.parked(service.storage.sink, { name: 'customer-summary' }), []);
      // No second effect of that event, nor of anything else in the log.
      token = await create('k-last', 'c-1');
      const c1 = await summary('c-1', token);
      assert.equal(c1.orderCount, 11);
      assert.equal(c1.totalSpentCents, 0);
    } finally {
      await service.stop();
    }
  },
);
