/**
 * The composition root on its own terms: an embedded service never loads Kafka's client, its
 * metrics go to the application's registry beside prom-client's process metrics, and one scrape
 * reads the runners' status once, whatever the number of gauges. With
 * `personalData` its store seals the declared fields and `forget` shreds a subject.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import Fastify from 'fastify';
import { collectDefaultMetrics } from 'prom-client';
import { definePersonalData, isEncryptedField, isRedactedField } from 'tidemark';
import { Registry, createService } from 'tidemark/service';
import { createOrdersService } from '../../examples/orders/src/app.ts';

const dir = mkdtempSync(join(tmpdir(), 'tidemark-service-'));
after(() => rmSync(dir, { recursive: true, force: true }));

// Records every module the process resolves after the hook is in place, then starts an
// embedded service, and finally imports tidemark/kafka to show the hook would have seen it.
const probe = `
import { registerHooks } from 'node:module';
const seen = [];
registerHooks({ resolve(specifier, context, next) { const r = next(specifier, context); seen.push(r.url); return r; } });
const kafka = () => seen.filter((url) => url.includes('/@platformatic/kafka/')).length;
const { createService } = await import('tidemark/service');
const service = await createService({ name: 'probe', storage: process.argv[1] });
await service.start();
const ready = (await service.app.inject({ url: '/ready' })).statusCode;
await service.stop();
const embedded = kafka();
await import('tidemark/kafka');
console.log(JSON.stringify({ ready, embedded, afterImport: kafka() }));
`;

describe('createService', () => {
  it('starts an embedded service without loading Kafka’s client', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [
      '--conditions=tidemark-source',
      '--input-type=module',
      '--eval',
      probe,
      join(dir, 'probe.db'),
    ]);
    const result = JSON.parse(stdout) as { ready: number; embedded: number; afterImport: number };
    assert.equal(result.ready, 200);
    assert.equal(result.embedded, 0);
    assert.ok(result.afterImport > 0, 'the hook sees @platformatic/kafka when it is loaded');
  });

  it('puts its metrics on the application’s registry, beside prom-client’s process metrics', async () => {
    const registry = new Registry();
    collectDefaultMetrics({ register: registry });
    const own = await createOrdersService({ databaseUrl: join(dir, 'own.db'), metrics: registry });
    try {
      await own.start();
      await own.app.inject({
        method: 'POST',
        url: '/orders',
        payload: { customerId: 'c', lines: [] },
      });
      await own.app.inject({ method: 'GET', url: '/no-such-path' });
      await own.app.inject({ method: 'GET', url: '/no-such-path' });
      await own.app.inject({ method: 'PUT', url: '/orders' });
      const text = await registry.metrics();
      assert.match(text, /^process_cpu_user_seconds_total \d/m);
      assert.match(text, /^nodejs_eventloop_lag_seconds \d/m);
      assert.match(
        text,
        /^tidemark_projection_lag_events\{projection="order-details",version="1"\} \d/m,
      );
      assert.match(
        text,
        /^tidemark_http_requests_total\{method="POST",route="\/orders",status="201"\} 1$/m,
      );
      // Requests no route took are counted too, once each, not under a route of the plugin.
      assert.match(
        text,
        /^tidemark_http_requests_total\{method="GET",route="unmatched",status="404"\} 2$/m,
      );
      assert.match(
        text,
        /^tidemark_http_requests_total\{method="PUT",route="unmatched",status="405"\} 1$/m,
      );
      assert.equal(own.metrics, registry, 'the service serves the application’s registry');
    } finally {
      await own.stop();
    }
  });

  it('mounts its routes in an application of one’s own, under a prefix', async () => {
    const service = await createOrdersService({ databaseUrl: join(dir, 'mounted.db') });
    const host = Fastify();
    host.get('/', async () => ({ home: true }));
    await host.register(service.plugin, { prefix: '/shop' });
    try {
      await service.start();
      const created = await host.inject({
        method: 'POST',
        url: '/shop/orders',
        payload: { customerId: 'c', lines: [] },
      });
      assert.equal(created.statusCode, 201, created.body);
      const read = await host.inject({
        url: `/shop/orders/${created.json().orderId}`,
        headers: { 'consistency-token': String(created.headers['consistency-token']) },
      });
      assert.equal(read.headers.consistency, 'fresh');
      assert.deepEqual((await host.inject({ url: '/' })).json(), { home: true });
      assert.equal((await host.inject({ url: '/shop/ready' })).statusCode, 200);
    } finally {
      await host.close();
      await service.stop();
    }
  });

  it('reads the runners’ status once per scrape, for every gauge', async () => {
    const service = await createOrdersService({ databaseUrl: join(dir, 'scrape.db') });
    try {
      await service.start();
      const host = service.projections!;
      const real = host.status.bind(host);
      let reads = 0;
      Object.assign(host, { status: () => (reads++, real()) });
      const scrape = await service.app.inject({ url: '/metrics' });
      const gauges = scrape.body.match(/^# TYPE tidemark_projection_\w+ gauge$/gm) ?? [];
      assert.ok(gauges.length >= 6, scrape.body);
      assert.equal(reads, 1);
      await service.app.inject({ url: '/metrics' });
      assert.equal(reads, 2, 'the next scrape reads a fresh status');
    } finally {
      await service.stop();
    }
  });

  it('seals the declared personal fields of its store, and forgets a subject', async () => {
    const service = await createService({
      name: 'people',
      storage: join(dir, 'people.db'),
      personalData: definePersonalData({ Registered: { subject: 'personId', fields: ['email'] } }),
    });
    try {
      const { store } = service.storage;
      await store.appendToStream('person-p1', [
        { type: 'Registered', data: { personId: 'p1', email: 'p1@example.org' } },
      ]);
      // As stored: the field sealed, the rest as given.
      const db = new Database(join(dir, 'people.db'), { readonly: true });
      const [stored] = db.prepare('SELECT data FROM tm_events').pluck().all() as string[];
      db.close();
      const sealed = JSON.parse(String(stored)) as Record<string, unknown>;
      assert.equal(sealed.personId, 'p1');
      assert.ok(isEncryptedField(sealed.email), String(stored));
      assert.deepEqual((await store.readStream('person-p1'))[0]!.data, {
        personId: 'p1',
        email: 'p1@example.org',
      });
      const result = await service.forget('p1');
      assert.deepEqual(result.streamIds, ['person-p1']);
      const email = (await store.readStream('person-p1'))[0]!.data as { email: unknown };
      assert.ok(isRedactedField(email.email));
      await assert.rejects(service.forget('p1'), { code: 'subject_forgotten' });
      await assert.rejects(service.forget('p2'), { code: 'unknown_subject' });
    } finally {
      await service.stop();
    }
  });
});
