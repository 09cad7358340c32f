/**
 * Crypto-shredding on real infrastructure (PostgreSQL + Kafka, Kafka-fed projections): the topic
 * only ever carries the sealed envelope, which an outside consumer with key access opens as
 * docs/kafka-wire-format.md says; no PostgreSQL table holds the address but the read models, and
 * after forgetting none does; read models are redacted, and a rebuild from Kafka's earliest
 * offsets produces redacted read models.
 */
import assert from 'node:assert/strict';
import { createDecipheriv } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { ReadModels, isRedactedField, rebuildProjection, type EncryptedField } from 'tidemark';
import { KafkaAdmin, kafkaFeed } from 'tidemark/kafka';
import { createOrdersService, type OrdersService } from '../../examples/orders/src/app.ts';
import { orderProjections } from '../../examples/orders/src/projections.ts';
import {
  createTestDatabase,
  kafkaConnection,
  uniqueName,
  uniqueTopic,
  type TestDatabase,
} from '../support/services.ts';
import { readTopic } from './support.ts';

const ADDRESS = `Kafkastraat ${Math.random().toString(36).slice(2)}, Gent`;
const OTHER_ADDRESS = `Keep Lane ${Math.random().toString(36).slice(2)}`;
const SOURCE = 'tidemark://orders-personal-data';
const line = { sku: 'A', quantity: 1, unitPriceCents: 100 };

/** What an outside consumer does with the documented envelope and the subject's key. */
function openEnvelope(field: EncryptedField, key: Buffer): unknown {
  const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(field.iv, 'base64'));
  decipher.setAAD(Buffer.from(field.subject, 'utf8'));
  decipher.setAuthTag(Buffer.from(field.tag, 'base64'));
  const text = Buffer.concat([
    decipher.update(Buffer.from(field.ciphertext, 'base64')),
    decipher.final(),
  ]).toString('utf8');
  return JSON.parse(text);
}

describe('kafka: personal data, crypto-shredding (PostgreSQL + Kafka, Kafka-fed)', () => {
  let db: TestDatabase;
  let client: pg.Client;
  let service: OrdersService;
  const topic = uniqueTopic('personal');
  const groupPrefix = uniqueName('personal');

  /** Every table of the database, each row as PostgreSQL's text of the whole row. */
  async function rowsText(): Promise<Map<string, string>> {
    const { rows: tables } = await client.query<{ table_name: string }>(
      `SELECT table_name FROM information_schema.tables
       WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1`,
    );
    const texts = new Map<string, string>();
    for (const { table_name } of tables) {
      const { rows } = await client.query<{ row: string }>(
        `SELECT t::text AS row FROM "${table_name}" t`,
      );
      texts.set(table_name, rows.map((r) => r.row).join('\n'));
    }
    return texts;
  }

  const call = async (method: string, url: string, body?: unknown, headers = {}) => {
    const response = await service.app.inject({
      method: method as 'GET',
      url,
      ...(body === undefined ? {} : { payload: body as object }),
      headers,
    });
    return {
      status: response.statusCode,
      headers: response.headers,
      body: response.body === '' ? undefined : (response.json() as Record<string, unknown>),
    };
  };

  before(async () => {
    db = await createTestDatabase('personal_data');
    client = new pg.Client({ connectionString: db.url });
    await client.connect();
    service = await createOrdersService({
      databaseUrl: db.url,
      kafka: {
        connection: kafkaConnection(),
        topic,
        partitions: 2,
        source: SOURCE,
        relayName: uniqueName('personal'),
        groupPrefix,
      },
    });
    await service.start();
  });
  after(async () => {
    await service?.stop();
    await client?.end();
    await db?.drop();
    const admin = new KafkaAdmin(kafkaConnection());
    await admin.deleteTopic(topic, { ifExists: true });
    await admin.close();
  });

  it(
    'publishes only ciphertext, redacts every table and read model once forgotten, and rebuilds redacted from Kafka',
    { timeout: 120_000 },
    async () => {
      const created = await call('POST', '/orders', {
        orderId: 'kp-1',
        customerId: 'k-forget',
        lines: [line],
        shippingAddress: ADDRESS,
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.equal(
        (
          await call('POST', '/orders', {
            orderId: 'kp-2',
            customerId: 'k-keep',
            lines: [line],
            shippingAddress: OTHER_ADDRESS,
          })
        ).status,
        201,
      );
      // To version 100: the handler writes a snapshot of kp-1.
      let token = '';
      for (let i = 0; i < 99; i++) {
        const added = await call('POST', '/orders/kp-1/items', line);
        assert.equal(added.status, 200);
        token = String(added.headers['consistency-token']);
      }
      const order = await call('GET', '/orders/kp-1', undefined, { 'consistency-token': token });
      assert.equal(order.headers['consistency'], 'fresh');
      assert.equal(order.body!.shippingAddress, ADDRESS, 'the Kafka-fed read model shows it');
      assert.equal(order.body!.version, 100);

      // The topic: the envelope, never the address; an outside consumer with the key opens it.
      const records = await readTopic(kafkaConnection(), topic);
      assert.equal(records.length, 101);
      const values = Buffer.concat(records.map((r) => r.value ?? Buffer.alloc(0)));
      assert.equal(values.includes(ADDRESS), false, 'the topic carries the address in clear');
      const createdRecord = records.find(
        (r) =>
          r.key?.toString() === 'order-kp-1' &&
          r.headers.get('ce_type')?.toString() === 'OrderCreated',
      )!;
      const sealed = JSON.parse(createdRecord.value!.toString()).shippingAddress as EncryptedField;
      assert.equal(sealed.$personal, 'aes-256-gcm');
      assert.equal(sealed.subject, 'k-forget');
      const { rows: keyRows } = await client.query<{ key: Buffer; key_id: string }>(
        'SELECT key, key_id FROM tm_subject_keys WHERE subject = $1',
        ['k-forget'],
      );
      assert.equal(sealed.keyId, keyRows[0]!.key_id);
      assert.equal(openEnvelope(sealed, keyRows[0]!.key), ADDRESS);
      const keyHex = keyRows[0]!.key.toString('hex');

      // PostgreSQL: only the read models hold the address; events and the snapshot are sealed.
      const before = await rowsText();
      for (const table of ['tm_events', 'tm_snapshots', 'tm_subject_keys']) {
        assert.ok((before.get(table) ?? '').length > 0, `${table} has rows`);
      }
      assert.match(before.get('tm_snapshots')!, /aes-256-gcm/);
      const holding = [...before].filter(([, text]) => text.includes(ADDRESS)).map(([t]) => t);
      assert.deepEqual(holding.sort(), ['customer_orders_v1', 'order_list_v1', 'orders_v1']);

      // Forget through the API.
      assert.equal((await call('DELETE', '/customers/k-forget/personal-data')).status, 204);

      const redacted = await call('GET', '/orders/kp-1');
      assert.deepEqual(redacted.body!.shippingAddress, {
        $personal: 'redacted',
        subject: 'k-forget',
      });
      assert.equal((await call('GET', '/orders/kp-2')).body!.shippingAddress, OTHER_ADDRESS);
      const events = await call('GET', '/orders/kp-1/events');
      const first = (events.body!.events as { data: Record<string, unknown> }[])[0]!;
      assert.ok(isRedactedField(first.data.shippingAddress));

      const afterForget = await rowsText();
      for (const [table, text] of afterForget) {
        assert.equal(text.includes(ADDRESS), false, `${table} still holds the address`);
        assert.equal(text.includes(keyHex), false, `${table} still holds the key`);
      }
      // The topic is unchanged, but its envelope opens with nothing any more.
      const { rows: tombstone } = await client.query<{ key: Buffer | null }>(
        'SELECT key FROM tm_subject_keys WHERE subject = $1',
        ['k-forget'],
      );
      assert.equal(tombstone[0]!.key, null);
      const again = await readTopic(kafkaConnection(), topic);
      assert.equal(
        Buffer.concat(again.map((r) => r.value ?? Buffer.alloc(0))).includes(ADDRESS),
        false,
      );

      // New events after forgetting flow through Kafka and keep the read model redacted.
      const confirmed = await call('POST', '/orders/kp-1/confirm');
      assert.equal(confirmed.status, 200);
      const seen = await call('GET', '/orders/kp-1', undefined, {
        'consistency-token': String(confirmed.headers['consistency-token']),
      });
      assert.equal(seen.headers['consistency'], 'fresh');
      assert.equal(seen.body!.status, 'confirmed');
      assert.ok(isRedactedField(seen.body!.shippingAddress));

      // A rebuild from Kafka's earliest offsets after forgetting: redacted read models.
      const feed = kafkaFeed({
        connection: kafkaConnection(),
        topics: [topic],
        groupPrefix: uniqueName('personal-rebuild'),
        sources: [SOURCE],
        personalData: service.storage.store.personalData!,
      });
      try {
        const result = await rebuildProjection(
          { sink: service.storage.sink, feeds: { kafka: feed } },
          { definition: orderProjections[0]!, from: 'kafka', dropGraceMs: 0 },
        );
        assert.equal(result.version, 2);
        assert.equal(result.from, 'kafka');
      } finally {
        await feed.close?.();
      }
      const readModels = new ReadModels({
        sink: service.storage.sink,
        projections: orderProjections,
      });
      const table = await readModels.table('order-details', 'orders');
      assert.equal(table, 'orders_v2');
      const docs = await readModels.query<{ order_id: string; doc: string }>(
        `SELECT order_id, doc FROM ${table} ORDER BY order_id`,
      );
      const byId = new Map(
        docs.map((r) => [r.order_id, JSON.parse(r.doc) as Record<string, unknown>]),
      );
      assert.deepEqual(byId.get('kp-1')!.shippingAddress, {
        $personal: 'redacted',
        subject: 'k-forget',
      });
      assert.equal(byId.get('kp-1')!.status, 'confirmed');
      assert.equal(byId.get('kp-2')!.shippingAddress, OTHER_ADDRESS);
      const final = await rowsText();
      for (const [name, text] of final) {
        assert.equal(text.includes(ADDRESS), false, `${name} holds the address after the rebuild`);
      }
    },
  );
});
