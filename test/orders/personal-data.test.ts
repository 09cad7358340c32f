/**
 * Crypto-shredding in the embedded service (one SQLite file, store-fed projections): the
 * shipping address is readable everywhere through the API while the customer's key exists, is
 * in no byte of the events and snapshots at any time, and after forgetting is in no byte of the
 * file (nor its WAL), reads as redacted, and stays redacted through a rebuild.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { ReadModels, isRedactedField, rebuildProjection, storeFeed } from 'tidemark';
import { orderProjections } from '../../examples/orders/src/projections.ts';
import { json, startTestService, type TestService } from '../support/orders.ts';

const ADDRESS = `Rue des Secrets ${Math.random().toString(36).slice(2)}, 1000 Brussels`;
const KEPT_ADDRESS = `Kept Lane ${Math.random().toString(36).slice(2)}`;
const OTHER_ADDRESS = `Other Street ${Math.random().toString(36).slice(2)}`;

/** Every byte SQLite keeps on disk for the database: the file and its WAL. */
function fileBytes(path: string): Buffer {
  const parts = [readFileSync(path)];
  if (existsSync(`${path}-wal`)) parts.push(readFileSync(`${path}-wal`));
  return Buffer.concat(parts);
}

/** The raw bytes of every row of `table`, each column cast to a blob (a separate connection). */
function tableBytes(path: string, table: string): Buffer {
  const db = new Database(path, { readonly: true });
  try {
    const columns = (db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[]).map(
      (c) => `CAST(${c.name} AS BLOB)`,
    );
    const rows = db
      .prepare(`SELECT ${columns.join(', ')} FROM ${table}`)
      .raw()
      .all() as unknown[][];
    return Buffer.concat(
      rows.flat().map((v) => (Buffer.isBuffer(v) ? v : Buffer.from(String(v ?? '')))),
    );
  } finally {
    db.close();
  }
}

describe('personal data: crypto-shredding (SQLite, store-fed)', () => {
  let service: TestService;
  const call = async (method: string, url: string, body?: unknown, headers = {}) => {
    const response = await service.app.inject({
      method: method as 'GET',
      url,
      ...(body === undefined ? {} : json(body)),
      headers: { ...(body === undefined ? {} : json(body).headers), ...headers },
    });
    return {
      status: response.statusCode,
      headers: response.headers,
      body: response.body === '' ? undefined : (response.json() as Record<string, unknown>),
    };
  };
  const line = { sku: 'A', quantity: 1, unitPriceCents: 100 };

  before(async () => {
    service = await startTestService();
  });
  after(() => service.dispose());

  it('validates shippingAddress: a string of 1..500 without control characters but line breaks', async () => {
    for (const shippingAddress of ['', 'x'.repeat(501), 'tab\there', 42, { street: 'x' }, null]) {
      const refused = await call('POST', '/orders', {
        orderId: 'bad-address',
        customerId: 'cust-bad',
        lines: [line],
        shippingAddress,
      });
      assert.equal(refused.status, 400, JSON.stringify(shippingAddress));
      assert.equal(refused.body!.code, 'validation_failed');
    }
    assert.equal(await service.storage.store.streamVersion('order-bad-address'), 0);
    assert.equal((await service.storage.subjectKeys.readKeys(['cust-bad'])).size, 0);
    const multiline = await call('POST', '/orders', {
      orderId: 'good-address',
      customerId: 'cust-good',
      lines: [line],
      shippingAddress: 'Line 1\nLine 2',
    });
    assert.equal(multiline.status, 201);
  });

  it('lists the forget route in /openapi.json, refuses a body, and forgets nothing then', async () => {
    const openapi = (await call('GET', '/openapi.json')).body as {
      paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
    };
    const operation = openapi.paths['/customers/{customerId}/personal-data']?.delete;
    assert.ok(operation, 'DELETE /customers/{customerId}/personal-data is in the document');
    assert.ok(operation.responses['204'] && operation.responses['404']);

    await call('POST', '/orders', {
      orderId: 'pd-body',
      customerId: 'cust-body',
      lines: [line],
      shippingAddress: KEPT_ADDRESS,
    });
    const withBody = await call('DELETE', '/customers/cust-body/personal-data', { now: true });
    assert.equal(withBody.status, 400);
    assert.equal(withBody.body!.code, 'unexpected_body');
    // Nothing was forgotten: the address still reads in clear.
    const events = (await call('GET', '/orders/pd-body/events')).body!.events as {
      data: Record<string, unknown>;
    }[];
    assert.equal(events[0]!.data.shippingAddress, KEPT_ADDRESS);
  });

  it('seals the address at rest, shows it while the key exists, redacts it everywhere once forgotten', async () => {
    const path = service.databaseUrl;
    const created = await call('POST', '/orders', {
      orderId: 'pd-1',
      customerId: 'cust-forget',
      lines: [line],
      shippingAddress: ADDRESS,
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const other = await call('POST', '/orders', {
      orderId: 'pd-2',
      customerId: 'cust-keep',
      lines: [line],
      shippingAddress: OTHER_ADDRESS,
    });
    assert.equal(other.status, 201);
    // An order without the field: the contract is unchanged for it.
    const plain = await call('POST', '/orders', {
      orderId: 'pd-3',
      customerId: 'cust-forget',
      lines: [line],
    });
    assert.equal(plain.status, 201);

    // 99 more events on pd-1: the handler snapshots the stream at version 100.
    for (let i = 0; i < 99; i++) {
      const added = await call('POST', '/orders/pd-1/items', line);
      assert.equal(added.status, 200);
    }
    const token = String(
      (await call('POST', '/orders/pd-1/items', line)).headers['consistency-token'],
    );

    // Readable while the key exists: read model, store reads, history.
    const order = await call('GET', '/orders/pd-1', undefined, { 'consistency-token': token });
    assert.equal(order.headers['consistency'], 'fresh');
    assert.equal(order.body!.shippingAddress, ADDRESS);
    const withoutAddress = await call('GET', '/orders/pd-3');
    assert.equal('shippingAddress' in withoutAddress.body!, false);
    const events = await call('GET', '/orders/pd-1/events');
    const first = (events.body!.events as { data: Record<string, unknown> }[])[0]!;
    assert.equal(first.data.shippingAddress, ADDRESS);
    const history = await call('GET', '/orders/pd-1/history?version=1');
    assert.equal((history.body!.state as Record<string, unknown>).shippingAddress, ADDRESS);
    const loaded = await service.handler.load('order-pd-1');
    assert.equal(loaded.fromSnapshot, 100, 'the load starts from the snapshot');
    assert.equal((loaded.state as { shippingAddress: string }).shippingAddress, ADDRESS);

    // At rest: the events and the snapshot hold the envelope, never the address.
    for (const table of ['tm_events', 'tm_snapshots', 'tm_subject_keys', 'tm_subject_streams']) {
      const bytes = tableBytes(path, table);
      assert.ok(bytes.length > 0, `${table} has rows`);
      assert.equal(bytes.includes(ADDRESS), false, `${table} holds the address in clear`);
    }
    assert.match(tableBytes(path, 'tm_events').toString(), /"\$personal":"aes-256-gcm"/);
    assert.match(tableBytes(path, 'tm_snapshots').toString(), /"\$personal":"aes-256-gcm"/);
    // The read models copied it in clear (that is what forgetting must clean up).
    assert.equal(fileBytes(path).includes(ADDRESS), true);
    const [keyRow] = await service.storage.subjectKeys
      .readKeys(['cust-forget'])
      .then((m) => [...m.values()]);
    const keyBytes = Buffer.from(keyRow!.key!);

    // Forget: 204, then 204 again (idempotent); an unknown customer is a 404 problem.
    const forgotten = await call('DELETE', '/customers/cust-forget/personal-data');
    assert.equal(forgotten.status, 204);
    assert.equal((await call('DELETE', '/customers/cust-forget/personal-data')).status, 204);
    const unknown = await call('DELETE', '/customers/nobody/personal-data');
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body!.code, 'unknown_subject');
    assert.match(String(unknown.headers['content-type']), /^application\/problem\+json/);

    // Redacted everywhere at once: read models, store reads, history, the state loaded.
    const redacted = (await call('GET', '/orders/pd-1')).body!;
    assert.deepEqual(redacted.shippingAddress, { $personal: 'redacted', subject: 'cust-forget' });
    const listed = await call('GET', '/orders?customerId=cust-forget');
    const items = listed.body!.items as Record<string, unknown>[];
    assert.ok(isRedactedField(items.find((o) => o.orderId === 'pd-1')!.shippingAddress));
    const redactedEvents = await call('GET', '/orders/pd-1/events');
    const redactedFirst = (redactedEvents.body!.events as { data: Record<string, unknown> }[])[0]!;
    assert.ok(isRedactedField(redactedFirst.data.shippingAddress));
    const redactedHistory = await call('GET', '/orders/pd-1/history?version=1');
    assert.ok(
      isRedactedField((redactedHistory.body!.state as Record<string, unknown>).shippingAddress),
    );
    const reloaded = await service.handler.load('order-pd-1');
    assert.equal(reloaded.fromSnapshot, undefined, 'the sealed snapshot no longer opens');
    assert.ok(isRedactedField((reloaded.state as { shippingAddress: unknown }).shippingAddress));
    assert.equal(reloaded.version, 101);
    // The other customer is untouched.
    assert.equal((await call('GET', '/orders/pd-2')).body!.shippingAddress, OTHER_ADDRESS);

    // No byte of the file or its WAL holds the address or the key any more.
    const after = fileBytes(path);
    assert.equal(after.includes(ADDRESS), false, 'the address survives somewhere in the file');
    assert.equal(after.includes(keyBytes), false, 'the key survives somewhere in the file');
    assert.equal(after.includes(OTHER_ADDRESS), true, 'the other read model is still there');

    // Commands on the forgotten customer's streams: allowed, and the address stays redacted;
    // new personal data for the customer is refused (409 subject_forgotten), nothing written.
    const confirm = await call('POST', '/orders/pd-1/confirm');
    assert.equal(confirm.status, 200);
    const refused = await call('POST', '/orders', {
      orderId: 'pd-4',
      customerId: 'cust-forget',
      lines: [line],
      shippingAddress: 'New Address 1',
    });
    assert.equal(refused.status, 409);
    assert.equal(refused.body!.code, 'subject_forgotten');
    assert.equal(await service.storage.store.streamVersion('order-pd-4'), 0);
    const noAddress = await call('POST', '/orders', {
      orderId: 'pd-4',
      customerId: 'cust-forget',
      lines: [line],
    });
    assert.equal(noAddress.status, 201);

    // A rebuild after forgetting produces the redacted read models.
    const feeds = { store: storeFeed(service.storage.store) };
    for (const definition of orderProjections) {
      const result = await rebuildProjection(
        { sink: service.storage.sink, feeds },
        { definition, dropGraceMs: 0 },
      );
      assert.equal(result.version, 2);
    }
    // Read through a fresh ReadModels: the service's caches the old version's names a moment.
    const readModels = new ReadModels({
      sink: service.storage.sink,
      projections: orderProjections,
    });
    const docOf = async (orderId: string) => {
      const table = await readModels.table('order-details', 'orders');
      assert.equal(table, 'orders_v2');
      const [row] = await readModels.query<{ doc: string }>(
        `SELECT doc FROM ${table} WHERE order_id = $1`,
        [orderId],
      );
      return JSON.parse(row!.doc) as Record<string, unknown>;
    };
    const rebuilt = await docOf('pd-1');
    assert.equal(rebuilt.status, 'confirmed');
    assert.deepEqual(rebuilt.shippingAddress, { $personal: 'redacted', subject: 'cust-forget' });
    assert.equal((await docOf('pd-2')).shippingAddress, OTHER_ADDRESS);
    await service.storage.subjectKeys.scrub!();
    assert.equal(fileBytes(path).includes(ADDRESS), false);
  });
});
