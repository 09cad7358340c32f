/**
 * `tidemark projections rebuild --from kafka`: a new version built from the topic's earliest
 * offsets beside the active one, switched over, the old one dropped; the new read model equals
 * the one it replaces.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { ledger } from 'tidemark';
import { KafkaAdmin } from 'tidemark/kafka';
import { SqliteDatabase, SqliteProjectionSink } from 'tidemark/sqlite';
import { createOrdersService } from '../../examples/orders/src/app.ts';
import { kafkaBrokers, kafkaConnection, uniqueName, uniqueTopic } from '../support/services.ts';

const root = new URL('../../', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'tidemark-kafka-rebuild-'));
const topic = uniqueTopic('rebuild');
after(async () => {
  rmSync(dir, { recursive: true, force: true });
  const admin = new KafkaAdmin(kafkaConnection());
  await admin.deleteTopic(topic, { ifExists: true });
  await admin.close();
});

it(
  'rebuilds a projection from Kafka beside the active version and switches over',
  { timeout: 180_000 },
  async () => {
    const path = join(dir, 'orders.db');
    const groupPrefix = uniqueName('rebuild');
    const service = await createOrdersService({
      databaseUrl: path,
      kafka: {
        connection: kafkaConnection(),
        topic,
        partitions: 3,
        relayName: uniqueName('rebuild'),
        groupPrefix,
      },
    });
    await service.start();
    let token = '';
    try {
      for (let i = 0; i < 40; i++) {
        const created = await service.app.inject({
          method: 'POST',
          url: '/orders',
          payload: {
            orderId: `r-${i}`,
            customerId: `c-${i % 4}`,
            lines: [{ sku: 'A', quantity: 1 + (i % 3), unitPriceCents: 250 }],
          },
        });
        assert.equal(created.statusCode, 201);
        if (i % 3 === 0) {
          const confirmed = await service.app.inject({
            method: 'POST',
            url: `/orders/r-${i}/confirm`,
          });
          token = String(confirmed.headers['consistency-token']);
        }
      }
      const fresh = await service.app.inject({
        url: '/orders/r-39',
        headers: { 'consistency-token': token },
      });
      assert.equal(fresh.headers.consistency, 'fresh');
    } finally {
      await service.stop();
    }
    const database = new SqliteDatabase(path);
    const sink = new SqliteProjectionSink(database);
    const before = await sink.query(
      'SELECT order_id, version, doc FROM orders_v1 ORDER BY order_id',
    );
    assert.equal(before.length, 40);
    await database.close();

    const run = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(
        process.execPath,
        [
          join(root, 'bin/tidemark.js'),
          'projections',
          'rebuild',
          'order-details',
          '--from',
          'kafka',
          '--drop-after',
          '0',
          '--json',
        ],
        {
          cwd: root,
          env: {
            ...process.env,
            DATABASE_URL: path,
            KAFKA_BROKERS: kafkaBrokers().join(','),
            TIDEMARK_CONFIG: join(root, 'test/kafka/fixtures/rebuild.config.ts'),
            TIDEMARK_TEST_TOPIC: topic,
            TIDEMARK_TEST_GROUP_PREFIX: groupPrefix,
          },
        },
        (error, stdout, stderr) =>
          resolve({
            code: error ? Number((error as { code?: number }).code ?? 1) : 0,
            stdout,
            stderr,
          }),
      ),
    );
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /rebuilding order-details as version 2 from Kafka's earliest offsets/);
    assert.match(run.stderr, /switched over: queries now read version 2/);
    const result = JSON.parse(run.stdout) as { version: number; from: string; dropped: number[] };
    assert.deepEqual([result.version, result.from, result.dropped], [2, 'kafka', [1]]);

    const after = new SqliteDatabase(path);
    const reread = new SqliteProjectionSink(after);
    assert.equal(await ledger.activeVersion(reread, 'order-details'), 2);
    assert.deepEqual(
      await reread.query('SELECT order_id, version, doc FROM orders_v2 ORDER BY order_id'),
      before,
    );
    await assert.rejects(reread.query('SELECT count(*) FROM orders_v1'));
    await after.close();
  },
);
