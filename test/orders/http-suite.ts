/**
 * The Orders HTTP contract, route by route and rule by rule, through in-process injection.
 * Run against every storage backend: SQLite (http-sqlite.test.ts) and PostgreSQL
 * (http-postgres.test.ts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodeConsistencyToken, type EventStore } from 'tidemark';
import { startTestService, type TestService } from '../support/orders.ts';
import { withFaults } from '../support/faults.ts';

const PROBLEM = /^application\/problem\+json/;
let service: TestService;
let sequence = 0;

export interface HttpBackend {
  name: string;
  /** A database URL for a fresh, empty database, and how to drop it afterwards. */
  database(): Promise<{ url: string | undefined; drop(): Promise<void> }>;
}

export function ordersHttpSuite(backend: HttpBackend): void {
  let drop: () => Promise<void> = async () => {};
  before(async () => {
    const database = await backend.database();
    drop = database.drop;
    service = await startTestService({
      consistencyTimeoutMs: 2000,
      ...(database.url ? { databaseUrl: database.url } : {}),
    });
  });
  after(async () => {
    await service.dispose();
    await drop();
  });

  type InjectOptions = { headers?: Record<string, string>; payload?: string };
  async function call(
    method: string,
    url: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ) {
    const options: InjectOptions & { method: string; url: string } = {
      method,
      url,
      headers: { ...headers },
    };
    if (body !== undefined) {
      options.payload = typeof body === 'string' ? body : JSON.stringify(body);
      options.headers!['content-type'] ??= 'application/json';
    }
    const response = await service.app.inject(options as never);
    const type = String(response.headers['content-type'] ?? '');
    return {
      status: response.statusCode,
      headers: response.headers,
      type,
      body: type.includes('json') ? (response.json() as Record<string, unknown>) : response.body,
    };
  }

  const newId = () => `t${++sequence}-${Date.now().toString(36)}`;
  const line = (sku: string, quantity = 1, unitPriceCents = 100) => ({
    sku,
    quantity,
    unitPriceCents,
  });

  async function createOrder(lines = [line('A', 2, 500)], customerId = 'c-1', orderId = newId()) {
    const response = await call('POST', '/orders', { orderId, customerId, lines });
    assert.equal(response.status, 201, JSON.stringify(response.body));
    return { orderId, response };
  }

  /** GET that waits for the write behind `token` (the read-your-writes path). */
  async function read(url: string, token: string | undefined) {
    return call('GET', url, undefined, token ? { 'consistency-token': token } : {});
  }

  const store = (): EventStore => service.storage.store;

  /**
   * How many events the store holds: the sum of every stream's version. Read from the streams
   * themselves, not from the global log's head (on PostgreSQL the gap-safe head may trail a
   * commit for a moment, or step back while some transaction might still be an append).
   */
  async function storedEvents(): Promise<number> {
    const streams = await store().listStreams({ limit: 1_000_000 });
    return streams.reduce((sum, s) => sum + s.version, 0);
  }

  describe(`Orders HTTP API (${backend.name})`, () => {
    describe('commands', () => {
      it('POST /orders: 201 with version 1, Location, ETag and a consistency token; GET reads it back fresh', async () => {
        const orderId = newId();
        const created = await call('POST', '/orders', {
          orderId,
          customerId: 'c-9',
          lines: [line('A', 2, 500)],
        });
        assert.equal(created.status, 201);
        assert.deepEqual(created.body, { orderId, version: 1 });
        assert.equal(created.headers.location, `/orders/${orderId}`);
        assert.equal(created.headers.etag, '"1"');
        const token = decodeConsistencyToken(String(created.headers['consistency-token']));
        assert.equal(token.streamId, `order-${orderId}`);
        assert.equal(token.streamVersion, 1);
        const got = await read(`/orders/${orderId}`, String(created.headers['consistency-token']));
        assert.equal(got.status, 200);
        assert.equal(got.headers.consistency, 'fresh');
        assert.equal(got.headers.etag, '"1"');
        const body = got.body as Record<string, unknown>;
        assert.deepEqual(Object.keys(body).sort(), [
          'createdAt',
          'customerId',
          'lines',
          'orderId',
          'status',
          'totalCents',
          'updatedAt',
          'version',
        ]);
        assert.equal(body.status, 'open');
        assert.equal(body.totalCents, 1000);
        assert.deepEqual(body.lines, [line('A', 2, 500)]);
        assert.equal(body.version, 1);
        assert.equal(body.createdAt, body.updatedAt);
      });

      it('POST /orders without an orderId makes one', async () => {
        const created = await call('POST', '/orders', { customerId: 'c-1', lines: [] });
        assert.equal(created.status, 201);
        const { orderId } = created.body as { orderId: string };
        assert.match(orderId, /^[0-9a-f-]{36}$/);
        assert.equal(created.headers.location, `/orders/${orderId}`);
        assert.equal(await store().streamVersion(`order-${orderId}`), 1);
      });

      it('refuses to create an order id that exists (409)', async () => {
        const { orderId } = await createOrder();
        const again = await call('POST', '/orders', { orderId, customerId: 'c-2', lines: [] });
        assert.equal(again.status, 409);
        assert.match(again.type, PROBLEM);
        assert.equal((again.body as { code: string }).code, 'order_already_exists');
        assert.equal(await store().streamVersion(`order-${orderId}`), 1);
      });

      it('adds items (the same sku adds quantity), removes whole lines', async () => {
        const { orderId } = await createOrder([line('A', 2, 500)]);
        const added = await call('POST', `/orders/${orderId}/items`, line('B', 1, 250));
        assert.deepEqual([added.status, added.body], [200, { orderId, version: 2 }]);
        assert.equal(added.headers.etag, '"2"');
        const more = await call('POST', `/orders/${orderId}/items`, line('A', 3, 500));
        assert.equal(more.status, 200);
        const removed = await call('DELETE', `/orders/${orderId}/items/B`);
        assert.deepEqual([removed.status, removed.body], [200, { orderId, version: 4 }]);
        const got = await read(`/orders/${orderId}`, String(removed.headers['consistency-token']));
        assert.deepEqual((got.body as { lines: unknown }).lines, [line('A', 5, 500)]);
        assert.equal((got.body as { totalCents: number }).totalCents, 2500);
        const absent = await call('DELETE', `/orders/${orderId}/items/B`);
        assert.equal(absent.status, 409);
        assert.equal((absent.body as { code: string }).code, 'line_not_found');
      });

      it('takes a URL-encoded sku in DELETE', async () => {
        const { orderId } = await createOrder([line('red shirt:L', 1)]);
        const removed = await call(
          'DELETE',
          `/orders/${orderId}/items/${encodeURIComponent('red shirt:L')}`,
        );
        assert.equal(removed.status, 200);
      });

      it('runs the order lifecycle and its rules: confirm, ship, cancel', async () => {
        const empty = await createOrder([]);
        const refused = await call('POST', `/orders/${empty.orderId}/confirm`);
        assert.deepEqual(
          [refused.status, (refused.body as { code: string }).code],
          [409, 'order_empty'],
        );

        const { orderId } = await createOrder();
        const early = await call('POST', `/orders/${orderId}/ship`);
        assert.deepEqual(
          [early.status, (early.body as { code: string }).code],
          [409, 'order_not_confirmed'],
        );
        const confirmed = await call('POST', `/orders/${orderId}/confirm`);
        assert.deepEqual([confirmed.status, confirmed.body], [200, { orderId, version: 2 }]);
        const locked = await call('POST', `/orders/${orderId}/items`, line('Z'));
        assert.deepEqual(
          [locked.status, (locked.body as { code: string }).code],
          [409, 'order_not_open'],
        );
        const shipped = await call('POST', `/orders/${orderId}/ship`);
        assert.deepEqual([shipped.status, shipped.body], [200, { orderId, version: 3 }]);
        const late = await call('POST', `/orders/${orderId}/cancel`, { reason: 'too late' });
        assert.deepEqual(
          [late.status, (late.body as { code: string }).code],
          [409, 'order_shipped'],
        );
        const got = await read(`/orders/${orderId}`, String(shipped.headers['consistency-token']));
        assert.equal((got.body as { status: string }).status, 'shipped');

        const other = await createOrder();
        const cancelled = await call('POST', `/orders/${other.orderId}/cancel`, {
          reason: 'changed my mind',
        });
        assert.equal(cancelled.status, 200);
        const [, event] = await store().readStream(`order-${other.orderId}`);
        assert.deepEqual((event!.data as { reason: string }).reason, 'changed my mind');
        const third = await createOrder();
        const bare = await call('POST', `/orders/${third.orderId}/cancel`);
        assert.equal(bare.status, 200);
        const twice = await call('POST', `/orders/${third.orderId}/cancel`, {});
        assert.deepEqual(
          [twice.status, (twice.body as { code: string }).code],
          [409, 'order_cancelled'],
        );
      });

      it('answers 404 order_not_found for every command on an unknown order', async () => {
        const requests: [string, string, unknown][] = [
          ['POST', '/orders/nope/items', line('A')],
          ['DELETE', '/orders/nope/items/A', undefined],
          ['POST', '/orders/nope/confirm', undefined],
          ['POST', '/orders/nope/cancel', undefined],
          ['POST', '/orders/nope/ship', undefined],
        ];
        for (const [method, url, body] of requests) {
          const response = await call(method, url, body);
          assert.equal(response.status, 404, url);
          assert.match(response.type, PROBLEM);
          assert.equal((response.body as { code: string }).code, 'order_not_found');
        }
        assert.equal(await store().streamVersion('order-nope'), 0);
      });
    });

    describe('If-Match', () => {
      it('passes on the current version, fails with 412 otherwise, 400 when malformed', async () => {
        const { orderId } = await createOrder();
        const stale = await call('POST', `/orders/${orderId}/items`, line('B'), {
          'if-match': '"7"',
        });
        assert.equal(stale.status, 412);
        assert.equal((stale.body as { code: string }).code, 'wrong_expected_version');
        const weak = await call('POST', `/orders/${orderId}/items`, line('B'), {
          'if-match': 'W/"1"',
        });
        assert.equal(weak.status, 400);
        const bare = await call('POST', `/orders/${orderId}/items`, line('B'), { 'if-match': '1' });
        assert.equal(bare.status, 400);
        assert.equal((bare.body as { code: string }).code, 'invalid_if_match');
        const ok = await call('POST', `/orders/${orderId}/items`, line('B'), { 'if-match': '"1"' });
        assert.equal(ok.status, 200);
        const star = await call('POST', `/orders/${orderId}/items`, line('C'), { 'if-match': '*' });
        assert.equal(star.status, 200);
        const missing = await call('POST', `/orders/none-such/items`, line('C'), {
          'if-match': '"1"',
        });
        assert.equal(missing.status, 404);
        assert.equal(await store().streamVersion(`order-${orderId}`), 3);
      });

      it('50 concurrent commands with the same If-Match: exactly one succeeds, the rest get 412, versions have no gaps', async () => {
        const { orderId } = await createOrder();
        const responses = await Promise.all(
          Array.from({ length: 50 }, (_, i) =>
            call('POST', `/orders/${orderId}/items`, line(`S${i}`), { 'if-match': '"1"' }),
          ),
        );
        const statuses = responses.map((r) => r.status).sort();
        assert.equal(statuses.filter((s) => s === 200).length, 1);
        assert.equal(statuses.filter((s) => s === 412).length, 49);
        const events = await store().readStream(`order-${orderId}`);
        assert.deepEqual(
          events.map((e) => e.streamVersion),
          [1, 2],
        );
      });

      it('without If-Match, concurrent commands all land, each decided on fresh state', async () => {
        const { orderId } = await createOrder([]);
        const responses = await Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            call('POST', `/orders/${orderId}/items`, line(`S${i}`)),
          ),
        );
        assert.deepEqual(
          responses.map((r) => r.status),
          Array(20).fill(200),
        );
        const events = await store().readStream(`order-${orderId}`);
        assert.deepEqual(
          events.map((e) => e.streamVersion),
          Array.from({ length: 21 }, (_, i) => i + 1),
        );
      });
    });

    describe('Idempotency-Key', () => {
      it('replays the first answer (status, headers, body) to a repeat, without executing again', async () => {
        const key = `key-${newId()}`;
        const orderId = newId();
        const body = { orderId, customerId: 'c-1', lines: [line('A')] };
        const first = await call('POST', '/orders', body, { 'idempotency-key': key });
        const second = await call('POST', '/orders', body, { 'idempotency-key': key });
        assert.equal(first.status, 201);
        assert.equal(second.status, 201);
        assert.deepEqual(second.body, first.body);
        for (const header of ['etag', 'location', 'consistency-token'])
          assert.equal(second.headers[header], first.headers[header]);
        assert.equal(second.headers['idempotent-replayed'], 'true');
        assert.equal(await store().streamVersion(`order-${orderId}`), 1);
      });

      it('replays a 4xx answer too, and refuses the key with another body or path (422)', async () => {
        const key = `key-${newId()}`;
        const first = await call('POST', '/orders/unknown-1/confirm', undefined, {
          'idempotency-key': key,
        });
        const second = await call('POST', '/orders/unknown-1/confirm', undefined, {
          'idempotency-key': key,
        });
        assert.equal(first.status, 404);
        assert.equal(second.status, 404);
        assert.match(second.type, PROBLEM);
        assert.deepEqual(second.body, first.body);
        const otherPath = await call('POST', '/orders/unknown-2/confirm', undefined, {
          'idempotency-key': key,
        });
        assert.equal(otherPath.status, 422);
        assert.equal((otherPath.body as { code: string }).code, 'idempotency_key_reused');
        const orderKey = `key-${newId()}`;
        const orderId = newId();
        await call(
          'POST',
          '/orders',
          { orderId, customerId: 'c', lines: [] },
          { 'idempotency-key': orderKey },
        );
        const otherBody = await call(
          'POST',
          '/orders',
          { orderId, customerId: 'd', lines: [] },
          { 'idempotency-key': orderKey },
        );
        assert.equal(otherBody.status, 422);
      });

      it('answers 409 to a repeat while the first is still running, which executes once', async () => {
        // Fault: hold the first execution's append until the repeat has been answered.
        let release!: () => void;
        const gate = new Promise<void>((resolve) => (release = resolve));
        let entered!: () => void;
        const inside = new Promise<void>((resolve) => (entered = resolve));
        const real = service.storage.store;
        const held = withFaults(real, {
          appendToStream: (async (...args: Parameters<EventStore['appendToStream']>) => {
            entered();
            await gate;
            return real.appendToStream(...args);
          }) as EventStore['appendToStream'],
        });
        const { createOrdersService } = await import('../../examples/orders/src/app.ts');
        void createOrdersService;
        const { CommandHandler } = await import('tidemark');
        const { orderDecider } = await import('../../examples/orders/src/domain.ts');
        const original = service.handler;
        const slow = new CommandHandler({ decider: orderDecider, store: held });
        Object.assign(original, { handle: slow.handle.bind(slow) });
        try {
          const key = `key-${newId()}`;
          const orderId = newId();
          const body = { orderId, customerId: 'c', lines: [] };
          const first = call('POST', '/orders', body, { 'idempotency-key': key });
          await inside;
          const repeat = await call('POST', '/orders', body, { 'idempotency-key': key });
          assert.equal(repeat.status, 409);
          assert.equal((repeat.body as { code: string }).code, 'idempotency_in_progress');
          release();
          assert.equal((await first).status, 201);
          assert.equal(await real.streamVersion(`order-${orderId}`), 1);
        } finally {
          release();
          delete (original as unknown as Record<string, unknown>).handle;
        }
      });

      it('a retry after the first execution died between its append and its stored answer answers from its events, and runs nothing again', async () => {
        // Fault: the answer is never stored (as if the process died right after the append) and
        // the retry comes after the claim's lease (lease 0). The store's own methods, shadowed
        // on the instance for this test only.
        const real = store() as EventStore & {
          completeIdempotencyKey(key: string, response: unknown): Promise<void>;
          claimIdempotencyKey(key: string, fingerprint: string, leaseMs: number): Promise<unknown>;
        };
        const claim = real.claimIdempotencyKey.bind(real);
        let crash = true;
        Object.assign(real, {
          completeIdempotencyKey: async () => {
            if (crash) throw new Error('the process died here');
          },
          claimIdempotencyKey: (key: string, fingerprint: string) => claim(key, fingerprint, 0),
        });
        const complete = async (key: string, response: unknown) => {
          await Object.getPrototypeOf(real).completeIdempotencyKey.call(real, key, response);
        };
        try {
          // A create without an orderId: the id follows from the key, so the retry finds it.
          const createKey = `key-${newId()}`;
          const body = { customerId: 'c-crash', lines: [line('A')] };
          const before = await storedEvents();
          crash = true;
          const died = await call('POST', '/orders', body, { 'idempotency-key': createKey });
          assert.equal(died.status, 500);
          assert.equal(await storedEvents(), before + 1, 'the first execution appended');
          crash = false;
          Object.assign(real, { completeIdempotencyKey: complete });
          const retried = await call('POST', '/orders', body, { 'idempotency-key': createKey });
          assert.equal(retried.status, 201, JSON.stringify(retried.body));
          assert.equal(retried.headers['idempotent-replayed'], 'true');
          const orderId = (retried.body as { orderId: string }).orderId;
          assert.equal(retried.headers.location, `/orders/${orderId}`);
          assert.equal(retried.headers.etag, '"1"');
          assert.equal(await storedEvents(), before + 1, 'nothing ran twice');
          // The answer is stored now: a third try replays it from the record.
          const third = await call('POST', '/orders', body, { 'idempotency-key': createKey });
          assert.deepEqual(third.body, retried.body);

          // A command on an existing order.
          const { orderId: existing } = await createOrder();
          const itemKey = `key-${newId()}`;
          Object.assign(real, {
            completeIdempotencyKey: async () => {
              throw new Error('the process died here');
            },
          });
          const lost = await call('POST', `/orders/${existing}/items`, line('B', 3), {
            'idempotency-key': itemKey,
          });
          assert.equal(lost.status, 500);
          Object.assign(real, { completeIdempotencyKey: complete });
          const again = await call('POST', `/orders/${existing}/items`, line('B', 3), {
            'idempotency-key': itemKey,
          });
          assert.equal(again.status, 200, JSON.stringify(again.body));
          assert.equal(again.headers['idempotent-replayed'], 'true');
          assert.equal(again.headers.etag, '"2"');
          assert.equal(await store().streamVersion(`order-${existing}`), 2, 'one AddItem, not two');
          const fresh = await read(
            `/orders/${existing}`,
            again.headers['consistency-token'] as string,
          );
          assert.equal(fresh.headers.consistency, 'fresh');
          const lines = (fresh.body as { lines: { sku: string; quantity: number }[] }).lines;
          assert.deepEqual(
            lines.map((l) => [l.sku, l.quantity]),
            [
              ['A', 2],
              ['B', 3],
            ],
          );

          // Died before its append: the retry finds nothing and runs the command.
          const { orderId: third2 } = await createOrder();
          const noEventsKey = `key-${newId()}`;
          const handler = service.handler;
          Object.assign(real, {
            releaseIdempotencyKey: async () => {},
          });
          Object.assign(handler, {
            handle: async () => {
              throw new Error('the process died before appending');
            },
          });
          const failed = await call('POST', `/orders/${third2}/confirm`, undefined, {
            'idempotency-key': noEventsKey,
          });
          assert.equal(failed.status, 500);
          delete (handler as unknown as Record<string, unknown>).handle;
          delete (real as unknown as Record<string, unknown>).releaseIdempotencyKey;
          const ran = await call('POST', `/orders/${third2}/confirm`, undefined, {
            'idempotency-key': noEventsKey,
          });
          assert.equal(ran.status, 200, JSON.stringify(ran.body));
          assert.equal(ran.headers['idempotent-replayed'], undefined);
          assert.equal(await store().streamVersion(`order-${third2}`), 2);
        } finally {
          for (const name of [
            'completeIdempotencyKey',
            'claimIdempotencyKey',
            'releaseIdempotencyKey',
          ])
            delete (real as unknown as Record<string, unknown>)[name];
          delete (service.handler as unknown as Record<string, unknown>).handle;
        }
      });

      it('refuses a malformed key', async () => {
        const response = await call(
          'POST',
          '/orders',
          { customerId: 'c', lines: [] },
          { 'idempotency-key': 'x'.repeat(300) },
        );
        assert.equal(response.status, 400);
        assert.equal((response.body as { code: string }).code, 'invalid_idempotency_key');
      });
    });

    describe('bad input: a 4xx problem, and nothing stored', () => {
      const huge = JSON.stringify({
        customerId: 'c',
        lines: [{ sku: 'x'.repeat(2 * 1024 * 1024), quantity: 1, unitPriceCents: 1 }],
      });
      const cases: {
        name: string;
        method: string;
        url: (id: string) => string;
        body?: string;
        headers?: Record<string, string>;
        status: number;
        code: string;
      }[] = [
        {
          name: 'malformed JSON',
          method: 'POST',
          url: () => '/orders',
          body: '{"customerId": "c", "lines": [',
          status: 400,
          code: 'malformed_json',
        },
        {
          name: 'a wrong type',
          method: 'POST',
          url: (id) => `/orders/${id}/items`,
          body: JSON.stringify({ sku: 'A', quantity: '2', unitPriceCents: 1 }),
          status: 400,
          code: 'validation_failed',
        },
        {
          name: 'an unknown field',
          method: 'POST',
          url: (id) => `/orders/${id}/items`,
          body: JSON.stringify({ sku: 'A', quantity: 1, unitPriceCents: 1, colour: 'red' }),
          status: 400,
          code: 'validation_failed',
        },
        {
          name: 'an unknown field on create',
          method: 'POST',
          url: () => '/orders',
          body: JSON.stringify({ customerId: 'c', lines: [], discount: 5 }),
          status: 400,
          code: 'validation_failed',
        },
        {
          name: 'an unknown field in a line',
          method: 'POST',
          url: () => '/orders',
          body: JSON.stringify({
            customerId: 'c',
            lines: [{ sku: 'A', quantity: 1, unitPriceCents: 1, x: 1 }],
          }),
          status: 400,
          code: 'validation_failed',
        },
        {
          name: 'zero quantity',
          method: 'POST',
          url: (id) => `/orders/${id}/items`,
          body: JSON.stringify({ sku: 'A', quantity: 0, unitPriceCents: 1 }),
          status: 400,
          code: 'validation_failed',
        },
        {
          name: 'negative quantity',
          method: 'POST',
          url: (id) => `/orders/${id}/items`,
          body: JSON.stringify({ sku: 'A', quantity: -3, unitPriceCents: 1 }),
          status: 400,
          code: 'validation_failed',
        },
        {
          name: 'a fractional quantity',
          method: 'POST',
          url: (id) => `/orders/${id}/items`,
          body: JSON.stringify({ sku: 'A', quantity: 1.5, unitPriceCents: 1 }),
          status: 400,
          code: 'validation_failed',
        },
        {
          name: 'quantity over 10000',
          method: 'POST',
          url: (id) => `/orders/${id}/items`,
          body: JSON.stringify({ sku: 'A', quantity: 10001, unitPriceCents: 1 }),
          status: 400,
          code: 'validation_failed',
        },
        {
          name: 'a negative price',
          method: 'POST',
          url: (id) => `/orders/${id}/items`,
          body: JSON.stringify({ sku: 'A', quantity: 1, unitPriceCents: -1 }),
          status: 400,
          code: 'validation_failed',
        },
        {
          name: 'a price over the limit',
          method: 'POST',
          url: (id) => `/orders/${id}/items`,
          body: JSON.stringify({ sku: 'A', quantity: 1, unitPriceCents: 100000001 }),
          status: 400,
          code: 'validation_failed',
        },
        {
          name: 'a missing field',
          method: 'POST',
          url: () => '/orders',
          body: JSON.stringify({ lines: [] }),
          status: 400,
          code: 'validation_failed',
        },
        {
          name: 'more than 100 lines',
          method: 'POST',
          url: () => '/orders',
          body: JSON.stringify({
            customerId: 'c',
            lines: Array.from({ length: 101 }, (_, i) => ({
              sku: `S${i}`,
              quantity: 1,
              unitPriceCents: 1,
            })),
          }),
          status: 400,
          code: 'validation_failed',
        },
        {
          name: 'a body that is not an object',
          method: 'POST',
          url: () => '/orders',
          body: '[1,2]',
          status: 400,
          code: 'validation_failed',
        },
        {
          name: 'an empty body where one is needed',
          method: 'POST',
          url: () => '/orders',
          body: '',
          status: 400,
          code: 'validation_failed',
        },
        {
          name: 'a body where none is taken',
          method: 'POST',
          url: (id) => `/orders/${id}/confirm`,
          body: '{"now": true}',
          status: 400,
          code: 'unexpected_body',
        },
        {
          name: 'an order id with a slash-free but invalid character',
          method: 'POST',
          url: () => '/orders',
          body: JSON.stringify({ orderId: 'a b', customerId: 'c', lines: [] }),
          status: 400,
          code: 'validation_failed',
        },
        {
          name: 'an oversize body',
          method: 'POST',
          url: () => '/orders',
          body: huge,
          status: 413,
          code: 'body_too_large',
        },
        {
          name: 'a wrong content type',
          method: 'POST',
          url: () => '/orders',
          body: 'customerId=c',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          status: 415,
          code: 'unsupported_media_type',
        },
        {
          name: 'text/plain',
          method: 'POST',
          url: (id) => `/orders/${id}/items`,
          body: '{"sku":"A","quantity":1,"unitPriceCents":1}',
          headers: { 'content-type': 'text/plain' },
          status: 415,
          code: 'unsupported_media_type',
        },
        {
          name: 'an unknown order',
          method: 'POST',
          url: () => '/orders/does-not-exist/items',
          body: JSON.stringify({ sku: 'A', quantity: 1, unitPriceCents: 1 }),
          status: 404,
          code: 'order_not_found',
        },
        {
          name: 'an unknown route',
          method: 'POST',
          url: () => '/nowhere',
          body: '{}',
          status: 404,
          code: 'route_not_found',
        },
      ];
      for (const c of cases) {
        it(c.name, async () => {
          const { orderId } = await createOrder();
          const before = await storedEvents();
          const response = await service.app.inject({
            method: c.method as 'POST',
            url: c.url(orderId),
            payload: c.body,
            headers: { 'content-type': 'application/json', ...c.headers },
          });
          assert.equal(response.statusCode, c.status, response.body.slice(0, 300));
          assert.match(String(response.headers['content-type']), /^application\/problem\+json/);
          const problem = response.json() as {
            code: string;
            status: number;
            type: string;
            title: string;
          };
          assert.equal(problem.code, c.code);
          assert.equal(problem.status, c.status);
          assert.ok(problem.type && problem.title);
          assert.equal(await storedEvents(), before, 'nothing was stored');
        });
      }
    });

    describe('queries', () => {
      it('lists orders oldest first, filtered by customer and status, a page at a time', async () => {
        const customer = `cust-${newId()}`;
        const ids: string[] = [];
        let token = '';
        for (let i = 0; i < 25; i++) {
          const { orderId, response } = await createOrder([line('A')], customer);
          ids.push(orderId);
          token = String(response.headers['consistency-token']);
        }
        const confirmed = await call('POST', `/orders/${ids[3]}/confirm`);
        token = String(confirmed.headers['consistency-token']);
        const seen: string[] = [];
        let cursor: string | null = null;
        let pages = 0;
        do {
          const url: string = `/orders?customerId=${customer}&limit=10${cursor ? `&cursor=${cursor}` : ''}`;
          const page = await read(url, token);
          assert.equal(page.status, 200);
          const body = page.body as {
            items: { orderId: string; version: number }[];
            nextCursor: string | null;
          };
          seen.push(...body.items.map((o) => o.orderId));
          cursor = body.nextCursor;
          pages++;
        } while (cursor);
        assert.equal(pages, 3);
        assert.deepEqual(seen, ids);
        const byStatus = await read(`/orders?customerId=${customer}&status=confirmed`, token);
        const items = (
          byStatus.body as { items: { orderId: string; version: number; status: string }[] }
        ).items;
        assert.deepEqual(
          items.map((o) => [o.orderId, o.status, o.version]),
          [[ids[3], 'confirmed', 2]],
        );
        const defaultLimit = await read(`/orders?customerId=${customer}`, undefined);
        assert.equal((defaultLimit.body as { items: unknown[] }).items.length, 20);
        for (const bad of [
          'limit=0',
          'limit=101',
          'limit=x',
          'status=lost',
          'cursor=!!',
          'other=1',
        ]) {
          const response = await call('GET', `/orders?${bad}`);
          assert.equal(response.status, 400, bad);
          assert.match(response.type, PROBLEM);
        }
      });

      it('summarises a customer across orders (multi-stream); an unknown one is all zeros', async () => {
        const customer = `cust-${newId()}`;
        const a = await createOrder([line('A', 2, 1000)], customer); // 2000
        const b = await createOrder([line('B', 1, 500)], customer); // 500, will ship
        const c = await createOrder([line('C', 1, 300)], customer); // confirmed then cancelled
        await createOrder([line('D', 1, 1)], customer); // stays open
        await call('POST', `/orders/${a.orderId}/confirm`);
        await call('POST', `/orders/${b.orderId}/items`, line('B', 1, 700)); // line B: 2 x 700
        await call('POST', `/orders/${b.orderId}/confirm`);
        await call('POST', `/orders/${b.orderId}/ship`);
        await call('POST', `/orders/${c.orderId}/confirm`);
        const last = await call('POST', `/orders/${c.orderId}/cancel`);
        const summary = await read(
          `/customers/${customer}/summary`,
          String(last.headers['consistency-token']),
        );
        assert.equal(summary.headers.consistency, 'fresh');
        assert.deepEqual(summary.body, {
          customerId: customer,
          orderCount: 4,
          openOrders: 1,
          totalSpentCents: 2000 + 1400,
        });
        const nobody = await call('GET', '/customers/nobody/summary');
        assert.deepEqual(nobody.body, {
          customerId: 'nobody',
          orderCount: 0,
          openOrders: 0,
          totalSpentCents: 0,
        });
      });

      it('shows the stream from the store, and the order at any version', async () => {
        const { orderId } = await createOrder([line('A', 1, 100)]);
        await call('POST', `/orders/${orderId}/items`, line('B', 2, 200), {
          'x-correlation-id': 'corr-42',
        });
        await call('POST', `/orders/${orderId}/confirm`);
        const events = await call('GET', `/orders/${orderId}/events`);
        assert.equal(events.status, 200);
        const list = (events.body as { events: Record<string, unknown>[] }).events;
        assert.deepEqual(
          list.map((e) => [e.type, e.streamVersion]),
          [
            ['OrderCreated', 1],
            ['ItemAdded', 2],
            ['OrderConfirmed', 3],
          ],
        );
        assert.deepEqual(Object.keys(list[0]!).sort(), [
          'data',
          'eventId',
          'metadata',
          'position',
          'recordedAt',
          'schemaVersion',
          'streamVersion',
          'type',
        ]);
        assert.equal((list[1]!.metadata as { correlationId: string }).correlationId, 'corr-42');
        assert.ok((list[2]!.position as number) > (list[1]!.position as number));
        const v2 = await call('GET', `/orders/${orderId}/history?version=2`);
        assert.equal(v2.status, 200);
        const state = (
          v2.body as { state: Record<string, unknown>; version: number; orderId: string }
        ).state;
        assert.equal((v2.body as { version: number }).version, 2);
        assert.equal(state.status, 'open');
        assert.equal(state.totalCents, 500);
        assert.equal(state.version, 2);
        const v3 = await call('GET', `/orders/${orderId}/history?version=3`);
        assert.equal((v3.body as { state: { status: string } }).state.status, 'confirmed');
        for (const version of ['0', '4', '-1', 'x']) {
          const response = await call('GET', `/orders/${orderId}/history?version=${version}`);
          assert.ok([400, 404].includes(response.status), `version ${version}: ${response.status}`);
        }
        assert.equal((await call('GET', `/orders/${orderId}/history?version=4`)).status, 404);
        assert.equal((await call('GET', `/orders/unknown/events`)).status, 404);
        assert.equal((await call('GET', `/orders/unknown`)).status, 404);
      });

      it('answers stale when the read model has not caught up within the wait', async () => {
        await service.projections!.stop();
        const quick = await startTestService({
          consistencyTimeoutMs: 50,
          roles: ['api'],
          databaseUrl: service.databaseUrl,
        });
        try {
          const created = await quick.app.inject({
            method: 'POST',
            url: '/orders',
            ...{
              payload: JSON.stringify({ customerId: 'c', lines: [] }),
              headers: { 'content-type': 'application/json' },
            },
          });
          const { orderId } = created.json() as { orderId: string };
          const got = await quick.app.inject({
            url: `/orders/${orderId}`,
            headers: { 'consistency-token': String(created.headers['consistency-token']) },
          });
          assert.equal(got.headers.consistency, 'stale');
          assert.equal(got.statusCode, 404);
        } finally {
          await quick.app.close();
          await quick.storage.close();
        }
      });

      it('refuses a malformed consistency token', async () => {
        const response = await call('GET', '/orders/x', undefined, {
          'consistency-token': 'garbage',
        });
        assert.equal(response.status, 400);
        assert.equal((response.body as { code: string }).code, 'invalid_consistency_token');
      });
    });

    describe('operations endpoints', () => {
      it('serves /health, /ready, /metrics and /openapi.json', async () => {
        assert.deepEqual((await call('GET', '/health')).body, { status: 'ok' });
        const ready = await call('GET', '/ready');
        assert.equal(ready.status, 503, 'the projections were stopped by an earlier test');
        const metrics = await call('GET', '/metrics');
        assert.equal(metrics.status, 200);
        assert.match(String(metrics.headers['content-type']), /^text\/plain; version=0\.0\.4/);
        const text = metrics.body as string;
        assert.match(text, /# TYPE tidemark_projection_lag_events gauge/);
        assert.match(
          text,
          /tidemark_projection_position\{projection="order-list",version="1"\} \d+/,
        );
        assert.match(
          text,
          /tidemark_http_requests_total\{method="POST",route="\/orders",status="201"\} \d+/,
        );
        assert.match(
          text,
          /tidemark_command_duration_seconds_bucket\{le="\+Inf",route="POST \/orders"\} \d+/,
        );
        assert.match(
          text,
          /tidemark_command_conflicts_total\{route="\/orders\/:orderId\/items"\} \d+/,
        );
        const openapi = (await call('GET', '/openapi.json')).body as {
          openapi: string;
          paths: Record<string, Record<string, unknown>>;
        };
        assert.equal(openapi.openapi, '3.1.0');
        assert.deepEqual(Object.keys(openapi.paths).sort(), [
          '/customers/{customerId}/personal-data',
          '/customers/{customerId}/summary',
          '/health',
          '/metrics',
          '/openapi.json',
          '/orders',
          '/orders/{orderId}',
          '/orders/{orderId}/cancel',
          '/orders/{orderId}/confirm',
          '/orders/{orderId}/events',
          '/orders/{orderId}/history',
          '/orders/{orderId}/items',
          '/orders/{orderId}/items/{sku}',
          '/orders/{orderId}/ship',
          '/ready',
        ]);
        assert.deepEqual(Object.keys(openapi.paths['/orders']!).sort(), ['get', 'post']);
      });
    });
  });
}
