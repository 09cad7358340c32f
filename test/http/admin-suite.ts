// The admin console's API against a running Orders service (run on SQLite and on PostgreSQL by
// admin-sqlite.test.ts and admin-postgres.test.ts): what it shows is what the library's
// operations say, its actions change what they should and nothing else, and bad input is a
// documented problem that changes nothing. (The page itself: test/browser.)
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Fastify from 'fastify';
import {
  InvalidArgumentError,
  fold,
  listParked,
  projectionStatus,
  storeFeed,
  type RecordedEvent,
} from 'tidemark';
import { tidemarkAdmin } from 'tidemark/http';
import { orderDecider } from '../../examples/orders/src/domain.ts';
import { orderProjections } from '../../examples/orders/src/projections.ts';
import {
  createOrder,
  poisonOrderDetails,
  startConsoleService,
  type Poison,
} from '../support/admin.ts';
import type { TestService } from '../support/orders.ts';

export interface AdminSuiteBackend {
  name: string;
  /** A database URL for a fresh, empty database (undefined: a SQLite file), and how to drop it. */
  database(): Promise<{ url: string | undefined; drop(): Promise<void> }>;
}

export function adminApiSuite(backend: AdminSuiteBackend): void {
  const poison: Poison = poisonOrderDetails();
  let service: TestService;
  let drop = async () => {};

  before(async () => {
    const database = await backend.database();
    drop = database.drop;
    service = await startConsoleService(database.url ? { databaseUrl: database.url } : {});
  });
  after(async () => {
    await service?.dispose();
    await drop();
  });

  async function get<T = Record<string, unknown>>(
    url: string,
  ): Promise<{ status: number; body: T }> {
    const answer = await service.app.inject({ method: 'GET', url });
    return { status: answer.statusCode, body: answer.json() as T };
  }
  async function post<T = Record<string, unknown>>(
    url: string,
    payload?: string,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; body: T; type: string | undefined }> {
    const answer = await service.app.inject({
      method: 'POST',
      url,
      ...(payload !== undefined ? { payload } : {}),
      headers,
    });
    return {
      status: answer.statusCode,
      body: answer.json() as T,
      type: answer.headers['content-type'] as string | undefined,
    };
  }

  /** What the ledger holds now: versions and parked events (a refused request must not move them). */
  async function ledgerState() {
    const { sink, store } = service.storage;
    const versions = (await projectionStatus({ sink, feeds: { store: storeFeed(store) } })).map(
      (s) => `${s.name} v${s.version} ${s.state}`,
    );
    const parked = (await listParked({ sink })).map(
      (p) => `${p.projection} v${p.version} ${p.event.eventId}`,
    );
    return { versions: versions.sort(), parked: parked.sort(), head: await store.headPosition() };
  }

  describe(`admin console API (${backend.name})`, () => {
    it('serves the page with its assets, and nothing that loads from elsewhere', async () => {
      const page = await service.app.inject({ method: 'GET', url: '/admin' });
      assert.equal(page.statusCode, 200);
      assert.match(page.headers['content-type'] as string, /^text\/html/);
      assert.match(page.headers['content-security-policy'] as string, /default-src 'none'/);
      assert.doesNotMatch(page.body, /https?:\/\//, 'no absolute URL in the page');
      const assets = [...page.body.matchAll(/(?:src|href)="(\/admin\/assets\/[^"]+)"/g)].map(
        (m) => m[1]!,
      );
      assert.equal(assets.length, 2);
      for (const url of assets) {
        const asset = await service.app.inject({ method: 'GET', url });
        assert.equal(asset.statusCode, 200, url);
        assert.match(asset.headers['content-type'] as string, /^text\/(javascript|css)/);
        const again = await service.app.inject({
          method: 'GET',
          url,
          headers: { 'if-none-match': asset.headers.etag as string },
        });
        assert.equal(again.statusCode, 304);
      }
    });

    it("shows every version of the ledger as projectionStatus does, with this process's engines", async () => {
      await createOrder(service, 'status-1');
      assert.equal(await service.projections!.whenCaughtUp(10_000), true);
      const { status, body } = await get<{
        projections: {
          name: string;
          version: number;
          state: string;
          lagEvents: number;
          running: boolean;
        }[];
      }>('/admin/api/projections');
      assert.equal(status, 200);
      const { sink, store } = service.storage;
      const expected = await projectionStatus({ sink, feeds: { store: storeFeed(store) } });
      assert.deepEqual(
        body.projections.map((p) => [p.name, p.version, p.state, p.lagEvents]),
        expected.map((p) => [p.name, p.version, p.state, p.lagEvents]),
      );
      assert.deepEqual(
        body.projections.map((p) => p.name).sort(),
        orderProjections.map((p) => p.name).sort(),
      );
      assert.ok(body.projections.every((p) => p.running === true));
    });

    it('lists a poisoned stream with its error; a retry that fails again changes nothing; after the fix it applies', async () => {
      poison.orders.add('poisoned-1');
      await createOrder(service, 'poisoned-1');
      await service.app.inject({
        method: 'POST',
        url: '/orders/poisoned-1/items',
        headers: { 'content-type': 'application/json' },
        payload: JSON.stringify({ sku: 'sku-2', quantity: 1, unitPriceCents: 99 }),
      });
      assert.equal(await service.projections!.whenCaughtUp(10_000), true);

      const listed = await get<{
        parked: {
          projection: string;
          reason: string;
          error: string;
          attempts: number;
          event: RecordedEvent;
        }[];
      }>('/admin/api/parked?projection=order-details');
      assert.equal(listed.status, 200);
      assert.deepEqual(
        listed.body.parked.map((p) => [p.event.streamId, p.event.streamVersion, p.reason]),
        [
          ['order-poisoned-1', 1, 'failed'],
          ['order-poisoned-1', 2, 'held'],
        ],
      );
      assert.match(listed.body.parked[0]!.error, /poisoned by the test/);
      assert.equal(listed.body.parked[0]!.attempts, 3);
      assert.ok(listed.body.parked[0]!.event.metadata, 'events come with their metadata');
      assert.equal((await service.app.inject('/orders/poisoned-1')).statusCode, 404);

      const before = await ledgerState();
      const failed = await post(
        '/admin/api/projections/order-details/parked/order-poisoned-1/retry',
      );
      assert.equal(failed.status, 409);
      assert.equal(failed.body.code, 'retry_failed');
      assert.match(failed.type!, /application\/problem\+json/);
      assert.deepEqual(await ledgerState(), before, 'a failed retry leaves them parked');

      poison.fixed = true;
      const retried = await post(
        '/admin/api/projections/order-details/parked/order-poisoned-1/retry',
      );
      assert.equal(retried.status, 200);
      assert.equal(retried.body.applied, 2);
      const order = await service.app.inject('/orders/poisoned-1');
      assert.equal(order.statusCode, 200);
      assert.equal((order.json() as { version: number }).version, 2);
      const again = await post(
        '/admin/api/projections/order-details/parked/order-poisoned-1/retry',
      );
      assert.equal(again.status, 404);
      assert.equal(again.body.code, 'parked_not_found');
      poison.fixed = false;
    });

    it("a retried order's personal data reaches the read model in clear: parked events stay sealed, the retry opens them", async () => {
      poison.orders.add('poisoned-pd');
      const created = await service.app.inject({
        method: 'POST',
        url: '/orders',
        headers: { 'content-type': 'application/json' },
        payload: JSON.stringify({
          orderId: 'poisoned-pd',
          customerId: 'customer-pd',
          lines: [{ sku: 'sku-1', quantity: 1, unitPriceCents: 100 }],
          shippingAddress: 'Parked Street 9',
        }),
      });
      assert.equal(created.statusCode, 201);
      assert.equal(await service.projections!.whenCaughtUp(10_000), true);
      poison.fixed = true;
      const retried = await post(
        '/admin/api/projections/order-details/parked/order-poisoned-pd/retry',
      );
      poison.fixed = false;
      assert.equal(retried.status, 200);
      assert.equal(retried.body.applied, 1);
      const order = (await service.app.inject('/orders/poisoned-pd')).json() as {
        shippingAddress: unknown;
      };
      assert.equal(order.shippingAddress, 'Parked Street 9');
    });

    it('skips one parked event for good; a retry then applies the ones behind it', async () => {
      poison.orders.add('poisoned-2');
      await createOrder(service, 'poisoned-2');
      await service.app.inject({
        method: 'POST',
        url: '/orders/poisoned-2/confirm',
      });
      assert.equal(await service.projections!.whenCaughtUp(10_000), true);
      const { body } = await get<{ parked: { event: RecordedEvent }[] }>(
        '/admin/api/parked?stream=order-poisoned-2',
      );
      assert.equal(body.parked.length, 2);
      const first = body.parked[0]!.event;
      const skipped = await post(
        `/admin/api/projections/order-details/parked-events/${first.eventId}/skip`,
        '{}',
        { 'content-type': 'application/json' },
      );
      assert.equal(skipped.status, 200);
      assert.deepEqual(skipped.body.versions, [1]);
      poison.fixed = true;
      const retried = await post(
        '/admin/api/projections/order-details/parked/order-poisoned-2/retry',
      );
      assert.equal(retried.body.applied, 1);
      poison.fixed = false;
      assert.deepEqual(
        (await get<{ parked: unknown[] }>('/admin/api/parked?stream=order-poisoned-2')).body.parked,
        [],
      );
    });

    it('starts a rebuild, refuses a second one while it runs, and reports it done with the old version dropped', async () => {
      const started = await post<{ rebuild: { id: number; version: number; state: string } }>(
        '/admin/api/projections/order-list/rebuild',
      );
      assert.equal(started.status, 202);
      const { version } = started.body.rebuild;
      assert.ok(version >= 2);
      // The new version waits out a grace period after its switch-over: still running now.
      const second = await post('/admin/api/projections/order-list/rebuild');
      assert.equal(second.status, 409);
      assert.equal(second.body.code, 'rebuild_in_progress');

      const followed = await get<{ rebuild: { state: string; dropped: number[]; done: number } }>(
        `/admin/api/rebuilds/${started.body.rebuild.id}?waitMs=30000`,
      );
      const done = followed.body.rebuild;
      assert.equal(done.state, 'done');
      assert.ok(done.dropped.includes(1), `v1 dropped: ${JSON.stringify(done)}`);
      const versions = (await ledgerState()).versions.filter((v) => v.startsWith('order-list '));
      assert.deepEqual(versions, [`order-list v${version} active`]);
      assert.equal((await get('/admin/api/rebuilds/99')).body.code, 'rebuild_not_found');
    });

    it('browses streams: search by prefix, events with metadata, the state at any version', async () => {
      await createOrder(service, 'browse-1');
      for (const sku of ['x', 'y']) {
        await service.app.inject({
          method: 'POST',
          url: '/orders/browse-1/items',
          headers: { 'content-type': 'application/json' },
          payload: JSON.stringify({ sku, quantity: 1, unitPriceCents: 10 }),
        });
      }
      const found = await get<{ streams: { streamId: string; version: number }[] }>(
        '/admin/api/streams?prefix=order-browse-',
      );
      assert.deepEqual(
        found.body.streams.map((s) => [s.streamId, s.version]),
        [['order-browse-1', 3]],
      );

      const events = await get<{
        version: number;
        events: RecordedEvent[];
        stateAvailable: boolean;
      }>('/admin/api/streams/order-browse-1/events');
      assert.deepEqual(
        events.body.events.map((e) => e.type),
        ['OrderCreated', 'ItemAdded', 'ItemAdded'],
      );
      assert.ok(events.body.events.every((e) => typeof e.metadata === 'object' && e.position > 0));
      assert.equal(events.body.stateAvailable, true);

      const stored = await service.storage.store.readStream('order-browse-1');
      for (const version of [1, 2, 3]) {
        const state = await get<{ state: unknown }>(
          `/admin/api/streams/order-browse-1/state?version=${version}`,
        );
        assert.equal(state.status, 200);
        assert.deepEqual(
          state.body.state,
          JSON.parse(JSON.stringify(fold(orderDecider, stored.slice(0, version) as never))),
        );
      }
      const past = await get('/admin/api/streams/order-browse-1/state?version=4');
      assert.equal(past.status, 404);
      assert.equal(past.body.code, 'version_not_found');
      const unknown = await get('/admin/api/streams/order-nope/events');
      assert.equal(unknown.body.code, 'stream_not_found');
      await service.storage.store.appendToStream('audit-1', [{ type: 'Noted', data: {} }]);
      const noDecider = await get('/admin/api/streams/audit-1/state?version=1');
      assert.equal(noDecider.status, 404);
      assert.equal(noDecider.body.code, 'state_not_available');
      const relay = await get('/admin/api/relay');
      assert.equal(relay.body.code, 'relay_not_configured', 'embedded mode: no relay');
    });

    it('answers bad input with a documented problem, and changes nothing', async () => {
      const before = await ledgerState();
      const cases: [
        method: 'GET' | 'POST',
        url: string,
        payload: string | undefined,
        status: number,
        code: string,
      ][] = [
        ['GET', '/admin/api/parked?limit=0', undefined, 400, 'validation_failed'],
        ['GET', '/admin/api/parked?limit=many', undefined, 400, 'validation_failed'],
        ['GET', '/admin/api/parked?colour=red', undefined, 400, 'validation_failed'],
        ['GET', '/admin/api/parked?projection=nope', undefined, 404, 'unknown_projection'],
        ['GET', '/admin/api/streams?limit=501', undefined, 400, 'validation_failed'],
        ['GET', '/admin/api/streams/order-browse-1/state', undefined, 400, 'validation_failed'],
        [
          'GET',
          '/admin/api/streams/order-browse-1/state?version=0',
          undefined,
          400,
          'validation_failed',
        ],
        ['POST', '/admin/api/projections/nope/rebuild', undefined, 404, 'unknown_projection'],
        [
          'POST',
          '/admin/api/projections/order-list/rebuild',
          '{"from":"kafka"}',
          400,
          'validation_failed',
        ],
        ['POST', '/admin/api/projections/order-list/rebuild', '{not json', 400, 'malformed_json'],
        [
          'POST',
          '/admin/api/projections/nope/parked/order-x/retry',
          undefined,
          404,
          'unknown_projection',
        ],
        [
          'POST',
          '/admin/api/projections/order-details/parked/order-x/retry',
          undefined,
          404,
          'parked_not_found',
        ],
        [
          'POST',
          '/admin/api/projections/order-details/parked-events/nope/skip',
          undefined,
          404,
          'parked_not_found',
        ],
      ];
      for (const [method, url, payload, status, code] of cases) {
        const answer = await service.app.inject({
          method,
          url,
          ...(payload !== undefined
            ? { payload, headers: { 'content-type': 'application/json' } }
            : {}),
        });
        assert.equal(answer.statusCode, status, `${method} ${url}: ${answer.body}`);
        assert.match(answer.headers['content-type'] as string, /^application\/problem\+json/);
        assert.equal((answer.json() as { code: string }).code, code, `${method} ${url}`);
      }
      const text = await service.app.inject({
        method: 'POST',
        url: '/admin/api/projections/order-list/rebuild',
        payload: 'x',
        headers: { 'content-type': 'text/plain' },
      });
      assert.equal(text.statusCode, 415);
      // A browser on another site cannot make the console act (no preflight for a plain POST).
      for (const headers of [
        { 'sec-fetch-site': 'cross-site' },
        { 'sec-fetch-site': 'same-site' },
        { origin: 'http://elsewhere.example' },
        { origin: 'null' },
      ]) {
        const answer = await service.app.inject({
          method: 'POST',
          url: '/admin/api/projections/order-list/rebuild',
          headers,
        });
        assert.equal(answer.statusCode, 403, JSON.stringify(headers));
        assert.equal((answer.json() as { code: string }).code, 'cross_origin_refused');
      }
      const own = await service.app.inject({
        method: 'POST',
        url: '/admin/api/projections/nope/rebuild',
        headers: { origin: 'http://localhost:80', 'sec-fetch-site': 'same-origin' },
      });
      assert.equal((own.json() as { code: string }).code, 'unknown_projection', 'its own page may');
      assert.deepEqual(await ledgerState(), before);
      assert.equal(
        (await get<{ rebuilds: unknown[] }>('/admin/api/rebuilds')).body.rebuilds.length,
        1,
        'no refused rebuild is listed',
      );
    });
  });

  describe(`admin console access (${backend.name})`, () => {
    const base = () => ({
      store: service.storage.store,
      sink: service.storage.sink,
      projections: orderProjections,
      feeds: { store: storeFeed(service.storage.store) },
    });

    it('refuses to register without an access check unless opened for local development', async () => {
      const app = Fastify();
      await assert.rejects(
        async () => {
          await app.register(tidemarkAdmin, { prefix: '/admin', ...base() });
          await app.ready();
        },
        (error: unknown) => error instanceof InvalidArgumentError && error.argument === 'authorize',
      );
      await app.close();
    });

    it('runs authorize before every API route: a refused caller learns nothing and changes nothing', async () => {
      const app = Fastify();
      let asked = 0;
      await app.register(tidemarkAdmin, {
        prefix: '/admin',
        ...base(),
        authorize: async (_request, reply) => {
          asked++;
          await reply.code(401).send({ code: 'unauthenticated' });
        },
      });
      poison.orders.add('guarded-1');
      poison.fixed = false;
      await createOrder(service, 'guarded-1');
      assert.equal(await service.projections!.whenCaughtUp(10_000), true);
      const before = await ledgerState();
      for (const [method, url] of [
        ['GET', '/admin/api/projections'],
        ['GET', '/admin/api/parked?limit=nonsense'],
        ['POST', '/admin/api/projections/order-details/parked/order-guarded-1/retry'],
        ['POST', '/admin/api/projections/order-list/rebuild'],
      ] as const) {
        const answer = await app.inject({ method, url });
        assert.equal(answer.statusCode, 401, url);
      }
      assert.equal(asked, 4);
      poison.fixed = true;
      assert.deepEqual(await ledgerState(), before);
      // The page holds no data: it loads, and asks for a token when the API says 401.
      assert.equal((await app.inject('/admin')).statusCode, 200);
      await app.close();
    });
  });
}
