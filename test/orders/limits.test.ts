/**
 * The contract's own limits against what a URL path can carry: every id the service accepts on
 * create can be addressed afterwards, ids no client can put in a path are refused up front, and
 * history versions outside 1..current are 404 as docs/orders-api.md says.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestService, type TestService } from '../support/orders.ts';

let service: TestService;
before(async () => {
  service = await startTestService({ consistencyTimeoutMs: 5000 });
});
after(() => service.dispose());

async function call(method: string, url: string, body?: unknown, headers = {}) {
  const response = await service.app.inject({
    method: method as 'GET',
    url,
    headers: {
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...headers,
    },
    ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
  });
  return {
    status: response.statusCode,
    type: String(response.headers['content-type'] ?? ''),
    headers: response.headers,
    body: response.json() as Record<string, unknown>,
  };
}

const storedEvents = async () =>
  (await service.storage.store.listStreams({ limit: 1_000_000 })).reduce(
    (sum, s) => sum + s.version,
    0,
  );

let sequence = 0;
const newId = () => `lim${++sequence}-${Date.now().toString(36)}`;
const line = (sku: string) => ({ sku, quantity: 1, unitPriceCents: 100 });

describe('ids at the contract limits are reachable through the path', () => {
  for (const [name, customerId] of [
    ['120 ASCII characters', 'c'.repeat(120)],
    ['128 ASCII characters', 'k'.repeat(128)],
    ['128 emoji (256 UTF-16 units, 1536 percent-encoded characters)', '😀'.repeat(128)],
  ] as const) {
    it(`a customer id of ${name}: created, then its summary reads`, async () => {
      const created = await call('POST', '/orders', { customerId, lines: [line('A')] });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const summary = await call(
        'GET',
        `/customers/${encodeURIComponent(customerId)}/summary`,
        undefined,
        { 'consistency-token': String(created.headers['consistency-token']) },
      );
      assert.equal(summary.status, 200, JSON.stringify(summary.body));
      assert.equal(summary.body.customerId, customerId);
      assert.equal(summary.body.orderCount, 1);
      assert.equal(summary.headers.consistency, 'fresh');
    });
  }

  for (const count of [51, 64]) {
    it(`a sku of ${count} emoji: added, then deleted through its URL-encoded path`, async () => {
      const orderId = newId();
      const sku = '🧦'.repeat(count);
      const created = await call('POST', '/orders', {
        orderId,
        customerId: 'c-1',
        lines: [line(sku), line('B')],
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const removed = await call('DELETE', `/orders/${orderId}/items/${encodeURIComponent(sku)}`);
      assert.equal(removed.status, 200, JSON.stringify(removed.body));
      assert.equal(removed.body.version, 2);
    });
  }

  it('a 64-character order id works in every path; a 65-character one is a validation problem, not a bare 414', async () => {
    const orderId = 'o'.repeat(64);
    assert.equal(
      (await call('POST', '/orders', { orderId, customerId: 'c', lines: [] })).status,
      201,
    );
    assert.equal((await call('GET', `/orders/${orderId}/events`)).status, 200);
    const tooLong = await call('GET', `/orders/${'o'.repeat(65)}`);
    assert.equal(tooLong.status, 400);
    assert.match(tooLong.type, /^application\/problem\+json/);
    assert.equal(tooLong.body.code, 'validation_failed');
  });
});

describe('dot segments are refused: no client could address them', () => {
  for (const [name, body] of [
    ['order id .', { orderId: '.', customerId: 'c', lines: [] }],
    ['order id ..', { orderId: '..', customerId: 'c', lines: [] }],
    ['customer id .', { customerId: '.', lines: [] }],
    ['customer id ..', { customerId: '..', lines: [] }],
    ['sku ..', { customerId: 'c', lines: [line('..')] }],
  ] as const) {
    it(`${name} on create: 400 validation_failed, nothing stored`, async () => {
      const before = await storedEvents();
      const response = await call('POST', '/orders', body);
      assert.equal(response.status, 400);
      assert.match(response.type, /^application\/problem\+json/);
      assert.equal(response.body.code, 'validation_failed');
      assert.equal(await storedEvents(), before);
    });
  }

  it('sku . on add-item: 400 validation_failed, nothing stored', async () => {
    const orderId = newId();
    await call('POST', '/orders', { orderId, customerId: 'c', lines: [] });
    const before = await storedEvents();
    const response = await call('POST', `/orders/${orderId}/items`, line('.'));
    assert.equal(response.status, 400);
    assert.equal(response.body.code, 'validation_failed');
    assert.equal(await storedEvents(), before);
  });

  it('ids that merely contain dots are fine', async () => {
    const orderId = `a.b..${newId()}`;
    const created = await call('POST', '/orders', {
      orderId,
      customerId: '...',
      lines: [line('.x.')],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal((await call('DELETE', `/orders/${orderId}/items/.x.`)).status, 200);
  });
});

describe('history versions outside 1..current', () => {
  it('are 404 version_not_found; a version that is not an integer is 400', async () => {
    const orderId = newId();
    await call('POST', '/orders', { orderId, customerId: 'c', lines: [line('A')] });
    await call('POST', `/orders/${orderId}/confirm`);
    for (const version of ['0', '-1', '3', '99999999999999999999']) {
      const response = await call('GET', `/orders/${orderId}/history?version=${version}`);
      assert.equal(response.status, 404, `version ${version}: ${JSON.stringify(response.body)}`);
      assert.match(response.type, /^application\/problem\+json/);
      assert.equal(response.body.code, 'version_not_found');
    }
    for (const version of ['1', '2']) {
      const response = await call('GET', `/orders/${orderId}/history?version=${version}`);
      assert.equal(response.status, 200);
      assert.equal(response.body.version, Number(version));
    }
    for (const version of ['x', '1.5', '']) {
      const response = await call('GET', `/orders/${orderId}/history?version=${version}`);
      assert.equal(response.status, 400, `version '${version}'`);
      assert.equal(response.body.code, 'validation_failed');
    }
    const unknown = await call('GET', `/orders/${newId()}/history?version=0`);
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.code, 'order_not_found');
  });
});
