// The admin console in a real browser (Debian's Chromium, headless, driven by playwright-core)
// against a running Orders service on real SQLite: what the pages show is what the API says; an
// operator finds a parked stream, retries it (once too early, once after the fix) and runs a
// rebuild to its end, from the page alone. No sleeps: the test waits on what the page shows
// (Playwright's waits on selectors and text) and on the service's own signals.
//
// With TIDEMARK_SCREENSHOTS=docs/images it also saves the screenshots of docs/operations.md.
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { createOrder, poisonOrderDetails, startConsoleService } from '../support/admin.ts';
import { openBrowser, type TestBrowser } from '../support/browser.ts';
import { json, type TestService } from '../support/orders.ts';

const poison = poisonOrderDetails();
let service: TestService;
let browser: TestBrowser;
let base: string;
let page: Page;

async function api<T>(path: string): Promise<T> {
  const answer = await fetch(`${base}/admin/api${path}`);
  assert.equal(answer.status, 200, `${path}: ${answer.status}`);
  return (await answer.json()) as T;
}

const screenshot = (name: string) => browser.screenshot(name);

before(async () => {
  service = await startConsoleService();
  await service.app.listen({ port: 0, host: '127.0.0.1' });
  base = `http://127.0.0.1:${(service.app.server.address() as AddressInfo).port}`;
  browser = await openBrowser();
  page = browser.page;
  // The page asks before a rebuild or a skip: the operator says yes.
  page.on('dialog', (dialog) => void dialog.accept());

  // Some orders, one of which the order-details projection cannot take (until it is "fixed").
  for (const [id, customer] of [
    ['a-1001', 'ada'],
    ['a-1002', 'ada'],
    ['b-2001', 'brian'],
  ] as const) {
    await createOrder(service, id, customer);
  }
  await service.app.inject({ method: 'POST', url: '/orders/a-1001/confirm' });
  poison.orders.add('broken-1');
  await createOrder(service, 'broken-1', 'carla');
  await service.app.inject({
    method: 'POST',
    url: '/orders/broken-1/items',
    ...json({ sku: 'sku-9', quantity: 1, unitPriceCents: 500 }),
  });
  // A second one, whose added item the operator will decide never to apply.
  poison.orders.add('broken-2');
  await createOrder(service, 'broken-2', 'dan');
  await service.app.inject({
    method: 'POST',
    url: '/orders/broken-2/items',
    ...json({ sku: 'sku-bad', quantity: 1, unitPriceCents: 1 }),
  });
  await service.app.inject({ method: 'POST', url: '/orders/broken-2/confirm' });
  assert.equal(await service.projections!.whenCaughtUp(10_000), true);
});

after(async () => {
  await browser?.close();
  await service?.dispose();
});

describe('admin console in Chromium', () => {
  it('shows the projections as the API reports them, with the live lag chart', async () => {
    await page.goto(`${base}/admin`);
    const rows = page.locator('table[data-testid=projections] tbody tr');
    await rows.nth(2).waitFor();
    // The chart draws once a sample is in.
    await page.locator('[data-testid=chart-events] canvas').waitFor();
    await page.locator('[data-testid=chart-events][data-samples="4"]').waitFor();
    const answer = await api<{
      projections: {
        name: string;
        version: number;
        state: string;
        parked: number;
        lagEvents: number;
      }[];
    }>('/projections');
    const shown = await rows.evaluateAll((trs) =>
      trs.map((tr) => {
        const cells = [...tr.querySelectorAll('td')].map((td) => td.textContent!.trim());
        return {
          name: cells[0],
          version: Number(cells[1]!.replace(/^v(\d+).*/, '$1')),
          state: cells[2],
          lagEvents: Number(cells[6]),
          parked: Number(cells[8]),
        };
      }),
    );
    assert.deepEqual(
      shown,
      answer.projections.map(({ name, version, state, lagEvents, parked }) => ({
        name,
        version,
        state,
        lagEvents,
        parked,
      })),
    );
    assert.equal(
      shown.find((r) => r.name === 'order-details')!.parked,
      2 + 3,
      'two poisoned orders',
    );
    await screenshot('admin-projections');
  });

  it('finds the parked stream; a retry before the fix is refused and changes nothing; after it, the stream applies', async () => {
    await page.click('a[href="#/parked"]');
    const stream = page.locator('[data-testid=parked-stream][data-stream="order-broken-1"]');
    await stream.waitFor();
    const listed = await api<{
      parked: { reason: string; error: string; event: { eventId: string } }[];
    }>('/parked?stream=order-broken-1');
    assert.equal(await stream.locator('tbody tr').count(), listed.parked.length);
    for (const p of listed.parked) {
      const row = stream.locator(`tr[data-event="${p.event.eventId}"]`);
      assert.equal((await row.locator('.badge').textContent())?.trim(), p.reason);
      assert.equal((await row.locator('.error-text').textContent())?.trim(), p.error);
    }
    assert.match(listed.parked[0]!.error, /poisoned by the test/);
    await screenshot('admin-dead-letters');

    // Too early: the handler still fails. The page says why; the events stay parked.
    await stream.locator('[data-testid=retry]').click();
    await page.locator('.problem[data-code=retry_failed]').waitFor();
    assert.equal(
      (await api<{ parked: unknown[] }>('/parked?stream=order-broken-1')).parked.length,
      2,
    );
    assert.equal((await fetch(`${base}/orders/broken-1`)).status, 404);

    // The fix is deployed: the retry applies both, in order.
    poison.fixed = true;
    await stream.locator('[data-testid=retry]').click();
    await page.getByText('applied 2 parked event(s) of order-broken-1').waitFor();
    await stream.waitFor({ state: 'detached' });
    const order = await fetch(`${base}/orders/broken-1`);
    assert.equal(order.status, 200);
    assert.equal(((await order.json()) as { version: number }).version, 2);
  });

  it('skips an event for good, then retries the rest of its stream', async () => {
    const stream = page.locator('[data-testid=parked-stream][data-stream="order-broken-2"]');
    await stream.waitFor();
    const { parked } = await api<{ parked: { event: { eventId: string; type: string } }[] }>(
      '/parked?stream=order-broken-2',
    );
    assert.deepEqual(
      parked.map((p) => p.event.type),
      ['OrderCreated', 'ItemAdded', 'OrderConfirmed'],
    );
    const added = parked[1]!.event.eventId;
    await stream.locator(`tr[data-event="${added}"] [data-testid=skip]`).click();
    await page.getByText(`skipped ${added}; retry order-broken-2 to apply the rest`).waitFor();
    await stream.locator(`tr[data-event="${added}"]`).waitFor({ state: 'detached' });
    await stream.locator('[data-testid=retry]').click();
    await page.getByText('applied 2 parked event(s) of order-broken-2').waitFor();
    await page.locator('[data-testid=no-parked]').waitFor();
    const order = (await (await fetch(`${base}/orders/broken-2`)).json()) as {
      status: string;
      lines: { sku: string }[];
    };
    assert.equal(order.status, 'confirmed');
    assert.deepEqual(
      order.lines.map((l) => l.sku),
      ['sku-1'],
      'the skipped item was never applied',
    );
  });

  it('browses a stream: its events with metadata, and its state at any version', async () => {
    await page.click('a[href="#/streams"]');
    await page.fill('input[name=prefix]', 'order-a-');
    await page.click('form.search button');
    await page.locator('table[data-testid=streams][data-prefix="order-a-"]').waitFor();
    const shown = await page
      .locator('table[data-testid=streams] tbody tr')
      .evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-stream')));
    const listed = await api<{ streams: { streamId: string }[] }>('/streams?prefix=order-a-');
    assert.deepEqual(
      shown,
      listed.streams.map((s) => s.streamId),
    );

    await page.click('a[href="#/streams/order-a-1001"]');
    const state = page.locator('pre[data-testid=state]');
    await page.locator('pre[data-testid=state][data-version="2"]').waitFor();
    const folded = await api<{ state: unknown }>('/streams/order-a-1001/state?version=2');
    assert.deepEqual(JSON.parse((await state.textContent())!), folded.state);
    assert.equal((folded.state as { status: string }).status, 'confirmed');

    // Back to version 1: the order before it was confirmed.
    await page.click('table[data-testid=events] tr[data-version="1"]');
    await page.locator('pre[data-testid=state][data-version="1"]').waitFor();
    assert.equal((JSON.parse((await state.textContent())!) as { status: string }).status, 'open');
    await page.locator('table[data-testid=events] tr[data-version="1"] summary').click();
    const details = JSON.parse(
      (await page
        .locator('table[data-testid=events] tr[data-version="1"] details pre')
        .textContent())!,
    ) as { metadata: Record<string, unknown> };
    assert.ok(details.metadata.correlationId, 'metadata shown with the event');
    await screenshot('admin-stream');
  });

  it('runs a rebuild from the page and watches it switch over and finish', async () => {
    await page.click('a[href="#/projections"]');
    await page.locator('[data-testid=rebuild-order-list]').click();
    const job = page.locator('table[data-testid=rebuilds] tbody tr').first();
    await job.waitFor();
    const id = Number(await job.getAttribute('data-rebuild'));
    // The library's signal that it has finished, then the page's.
    const settled = await api<{ rebuild: { state: string; version: number; dropped: number[] } }>(
      `/rebuilds/${id}?waitMs=60000`,
    );
    assert.equal(settled.rebuild.state, 'done');
    await page.locator(`tr[data-rebuild="${id}"][data-state=done]`).waitFor();
    const version = settled.rebuild.version;
    await page
      .locator(
        `table[data-testid=projections] tr[data-projection=order-list][data-version="${version}"][data-state=active]`,
      )
      .waitFor();
    // The old version is gone from the ledger, and from the page.
    const { projections } = await api<{ projections: { name: string; version: number }[] }>(
      '/projections',
    );
    assert.deepEqual(
      projections.filter((p) => p.name === 'order-list').map((p) => p.version),
      [version],
    );
    await page
      .locator('table[data-testid=projections] tr[data-projection=order-list][data-version="1"]')
      .waitFor({ state: 'detached' });
    assert.deepEqual(settled.rebuild.dropped, [1]);
    await screenshot('admin-rebuild');
  });

  it('reported no script error and loaded nothing it could not', () => {
    // The retry refused on purpose is the one failed request the page logs.
    const unexpected = browser.errors.filter((e) => !/status of 409/.test(e));
    assert.deepEqual(unexpected, []);
  });
});
