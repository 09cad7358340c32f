// The admin console in Kafka mode, in Chromium, served by an api-only process: the projections
// come from the ledger (fed by Kafka, run by another process), the relay from its committed
// progress in Kafka; an operator retries a parked stream and rebuilds a projection from Kafka's
// earliest offsets, from the page. Real SQLite, real Kafka; waits on the page and on the
// relay's and the rebuild's own signals.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { KafkaAdmin } from '../../src/kafka/internal.ts';
import { createOrdersService, type OrdersService } from '../../examples/orders/src/app.ts';
import { createOrder, poisonOrderDetails } from '../support/admin.ts';
import { openBrowser, type TestBrowser } from '../support/browser.ts';
import { kafkaConnection, uniqueName, uniqueTopic } from '../support/services.ts';

const poison = poisonOrderDetails();
const dir = mkdtempSync(join(tmpdir(), 'tidemark-admin-kafka-'));
const topic = uniqueTopic('admin-orders');
let worker: OrdersService;
let api: OrdersService;
let browser: TestBrowser;
let page: Page;
let base: string;

async function get<T>(path: string): Promise<T> {
  const answer = await fetch(`${base}/admin/api${path}`);
  assert.equal(answer.status, 200, `${path}: ${answer.status}`);
  return (await answer.json()) as T;
}

before(async () => {
  const kafka = {
    connection: kafkaConnection(),
    topic,
    partitions: 3,
    relayName: uniqueName('admin-relay'),
    groupPrefix: uniqueName('admin-orders'),
  };
  const databaseUrl = join(dir, 'orders.db');
  // Two processes' worth of roles on one database: relay and projector here, the API (and the
  // console) there.
  worker = await createOrdersService({ databaseUrl, roles: ['relay', 'projector'], kafka });
  await worker.start();
  api = await createOrdersService({
    databaseUrl,
    roles: ['api'],
    kafka,
    admin: { openForLocalDevelopment: true, rebuildDropGraceMs: 200, refreshMs: 500 },
  });
  await api.start();
  await api.app.listen({ port: 0, host: '127.0.0.1' });
  base = `http://127.0.0.1:${(api.app.server.address() as AddressInfo).port}`;
  browser = await openBrowser();
  page = browser.page;
  page.on('dialog', (dialog) => void dialog.accept());

  await createOrder(api, 'k-1', 'kim');
  await createOrder(api, 'k-2', 'kim');
  poison.orders.add('k-bad');
  await createOrder(api, 'k-bad', 'lee');
  assert.equal(await worker.relay!.whenCaughtUp(30_000), true);
});

after(async () => {
  await browser?.close();
  await api?.stop();
  await worker?.stop();
  rmSync(dir, { recursive: true, force: true });
  const admin = new KafkaAdmin(kafkaConnection());
  await admin.deleteTopic(topic, { ifExists: true });
  await admin.close();
});

describe('admin console in Kafka mode (api-only process)', { timeout: 120_000 }, () => {
  it('shows Kafka-fed projections from the ledger and the relay from its committed progress', async () => {
    await page.goto(`${base}/admin`);
    await page
      .locator('table[data-testid=projections] tbody tr[data-state=active]')
      .nth(2)
      .waitFor();
    const relay = page.locator('[data-testid=relay]');
    await relay.waitFor();
    const seen = await get<{ position: number; head: number; backlog: number; source: string }>(
      '/relay',
    );
    assert.equal(seen.source, 'progress', 'the relay runs in the other process');
    assert.equal(seen.backlog, 0);
    assert.equal(seen.position, seen.head);
    assert.equal((await relay.locator('.relay-backlog').textContent())?.trim(), '0');
    // A few samples of the lag chart (one a poll) before the picture.
    await page.locator('[data-testid=chart-events][data-samples="4"]').waitFor();
    await browser.screenshot('admin-kafka');

    const { projections } = await get<{
      projections: { name: string; feed: string; running: boolean | null }[];
    }>('/projections');
    assert.ok(projections.every((p) => p.feed === 'kafka' && p.running === null));
    const feeds = await page
      .locator('table[data-testid=projections] tbody tr')
      .evaluateAll((trs) => trs.map((tr) => tr.querySelectorAll('td')[3]!.textContent));
    assert.deepEqual(
      feeds,
      projections.map(() => 'kafka'),
    );
  });

  it('finds the parked stream and retries it after the fix', async () => {
    await page.click('a[href="#/parked"]');
    const stream = page.locator('[data-testid=parked-stream][data-stream="order-k-bad"]');
    await stream.waitFor({ timeout: 60_000 });
    poison.fixed = true;
    await stream.locator('[data-testid=retry]').click();
    await page.getByText('applied 1 parked event(s) of order-k-bad').waitFor();
    assert.equal((await api.app.inject('/orders/k-bad')).statusCode, 200);
  });

  it("rebuilds a projection from Kafka's earliest offsets and watches it finish", async () => {
    await page.click('a[href="#/projections"]');
    await page.locator('[data-testid=rebuild-customer-summary]').click();
    const job = page.locator('table[data-testid=rebuilds] tbody tr').first();
    await job.waitFor();
    const id = Number(await job.getAttribute('data-rebuild'));
    const settled = await get<{ rebuild: { state: string; from: string; version: number } }>(
      `/rebuilds/${id}?waitMs=60000`,
    );
    assert.equal(settled.rebuild.state, 'done', JSON.stringify(settled.rebuild));
    assert.equal(settled.rebuild.from, 'kafka');
    await page.locator(`tr[data-rebuild="${id}"][data-state=done]`).waitFor();
    const summary = await api.app.inject('/customers/kim/summary');
    assert.equal((summary.json() as { orderCount: number }).orderCount, 2);
  });
});
