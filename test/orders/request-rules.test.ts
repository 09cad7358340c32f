/**
 * Request rules of the command routes, each a problem document with a documented code that
 * changes nothing: strong If-Match comparison, If-Match on a create, bodies that are not UTF-8
 * or are compressed, and the bound on X-Correlation-Id (it is stored in every event).
 */
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { startTestService, type TestService } from '../support/orders.ts';

let service: TestService;
before(async () => {
  service = await startTestService();
});
after(() => service.dispose());

let sequence = 0;
const newId = () => `rr${++sequence}-${Date.now().toString(36)}`;

async function send(
  method: string,
  url: string,
  payload?: string | Buffer,
  headers: Record<string, string> = {},
) {
  const response = await service.app.inject({
    method: method as 'POST',
    url,
    headers: payload === undefined ? headers : { 'content-type': 'application/json', ...headers },
    ...(payload === undefined ? {} : { payload }),
  });
  return {
    status: response.statusCode,
    headers: response.headers,
    type: String(response.headers['content-type'] ?? ''),
    body: response.json() as Record<string, unknown>,
  };
}

const storedEvents = async () =>
  (await service.storage.store.listStreams({ limit: 1_000_000 })).reduce(
    (sum, s) => sum + s.version,
    0,
  );

async function refused(
  request: () => Promise<Awaited<ReturnType<typeof send>>>,
  status: number,
  code: string,
) {
  const before = await storedEvents();
  const response = await request();
  assert.equal(response.status, status, JSON.stringify(response.body));
  assert.match(response.type, /^application\/problem\+json/);
  assert.equal(response.body.code, code);
  assert.equal(await storedEvents(), before, 'nothing stored');
  return response;
}

const order = (orderId?: string) =>
  JSON.stringify({
    ...(orderId ? { orderId } : {}),
    customerId: 'c-1',
    lines: [{ sku: 'A', quantity: 1, unitPriceCents: 100 }],
  });

describe('If-Match compares entity tags exactly', () => {
  it('"01" and "0" match no version: 412; "1" matches version 1', async () => {
    const orderId = newId();
    assert.equal((await send('POST', '/orders', order(orderId))).status, 201);
    for (const tag of ['"01"', '"0"', '"001"']) {
      await refused(
        () => send('POST', `/orders/${orderId}/confirm`, undefined, { 'if-match': tag }),
        412,
        'wrong_expected_version',
      );
    }
    const confirmed = await send('POST', `/orders/${orderId}/confirm`, undefined, {
      'if-match': '"1"',
    });
    assert.equal(confirmed.status, 200);
    assert.equal(confirmed.headers.etag, '"2"');
  });

  it('on a create of a new id, any If-Match fails the precondition: 412, not 404', async () => {
    for (const tag of ['"1"', '"0"', '*']) {
      const orderId = newId();
      await refused(
        () => send('POST', '/orders', order(orderId), { 'if-match': tag }),
        412,
        'wrong_expected_version',
      );
      assert.equal(await service.storage.store.streamVersion(`order-${orderId}`), 0);
    }
  });
});

describe('bodies', () => {
  it('invalid UTF-8 in a JSON body: 400 malformed_json, not replaced and stored', async () => {
    const bytes = Buffer.concat([
      Buffer.from('{"customerId":"c-'),
      Buffer.from([0xff, 0xfe]),
      Buffer.from('","lines":[]}'),
    ]);
    const response = await refused(() => send('POST', '/orders', bytes), 400, 'malformed_json');
    assert.match(String(response.body.detail), /UTF-8/);
  });

  it('Content-Encoding gzip: 415 with Accept-Encoding: identity', async () => {
    const response = await refused(
      () => send('POST', '/orders', gzipSync(order()), { 'content-encoding': 'gzip' }),
      415,
      'unsupported_media_type',
    );
    assert.equal(response.headers['accept-encoding'], 'identity');
    assert.equal(
      (await send('POST', '/orders', order(), { 'content-encoding': 'identity' })).status,
      201,
    );
  });
});

describe('X-Correlation-Id', () => {
  it('over 128 characters, or not visible ASCII: 400 invalid_correlation_id', async () => {
    for (const id of ['x'.repeat(129), 'with space']) {
      await refused(
        () => send('POST', '/orders', order(), { 'x-correlation-id': id }),
        400,
        'invalid_correlation_id',
      );
    }
  });

  it('128 characters are stored in the events as sent', async () => {
    const orderId = newId();
    const id = 'k'.repeat(128);
    assert.equal(
      (await send('POST', '/orders', order(orderId), { 'x-correlation-id': id })).status,
      201,
    );
    const [event] = await service.storage.store.readStream(`order-${orderId}`);
    assert.equal(event!.metadata.correlationId, id);
  });
});
