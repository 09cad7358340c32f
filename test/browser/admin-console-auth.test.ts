// The admin console behind bearer authentication, in Chromium: the page loads (it holds no
// data), its API answers 401 without a token and 403 to a reader, and only an operator's token
// shows the projections and may act; a refused action changes nothing.
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { SignJWT } from 'jose';
import { listParked } from 'tidemark';
import { poisonOrderDetails } from '../support/admin.ts';
import { openBrowser, type TestBrowser } from '../support/browser.ts';
import { startTestService, type TestService } from '../support/orders.ts';

const SECRET = 'a test secret of more than thirty-two bytes';
const ISSUER = 'https://id.tidemark.test/';
const AUDIENCE = 'orders-api';
const poison = poisonOrderDetails();
let service: TestService;
let browser: TestBrowser;
let base: string;

const token = (roles: string[]) =>
  new SignJWT({ roles })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(`someone-with-${roles.join('-') || 'nothing'}`)
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(new TextEncoder().encode(SECRET));

before(async () => {
  service = await startTestService({
    auth: { mode: 'jwt', secret: SECRET, issuer: ISSUER, audience: AUDIENCE },
    admin: { refreshMs: 500 },
  });
  await service.app.listen({ port: 0, host: '127.0.0.1' });
  base = `http://127.0.0.1:${(service.app.server.address() as AddressInfo).port}`;
  browser = await openBrowser();
  poison.orders.add('locked-1');
  await service.app.inject({
    method: 'POST',
    url: '/orders',
    headers: {
      'content-type': 'application/json',
      authorization: `Bearer ${await token(['writer'])}`,
    },
    payload: JSON.stringify({
      orderId: 'locked-1',
      customerId: 'c',
      lines: [{ sku: 's', quantity: 1, unitPriceCents: 1 }],
    }),
  });
  assert.equal(await service.projections!.whenCaughtUp(10_000), true);
  assert.equal((await listParked({ sink: service.storage.sink })).length, 1);
});

after(async () => {
  await browser?.close();
  await service?.dispose();
});

describe('admin console behind authentication', () => {
  it('API: 401 without a token, 403 for a reader, and a refused retry changes nothing', async () => {
    const retry = `${base}/admin/api/projections/order-details/parked/order-locked-1/retry`;
    poison.fixed = true;
    const anonymous = await fetch(retry, { method: 'POST' });
    assert.equal(anonymous.status, 401);
    assert.equal(((await anonymous.json()) as { code: string }).code, 'unauthenticated');
    const reader = await fetch(retry, {
      method: 'POST',
      headers: { authorization: `Bearer ${await token(['reader', 'writer'])}` },
    });
    assert.equal(reader.status, 403);
    assert.equal(((await reader.json()) as { code: string }).code, 'forbidden');
    assert.equal((await listParked({ sink: service.storage.sink })).length, 1, 'still parked');
    poison.fixed = false;
  });

  it('the page asks for a token, refuses a reader, and shows an operator the projections', async () => {
    const { page } = browser;
    await page.goto(`${base}/admin`);
    const form = page.locator('form.token');
    await form.waitFor();
    await page.locator('.problem[data-code=unauthenticated]').waitFor();

    await form.locator('input').fill(await token(['reader']));
    await form.locator('button').click();
    await page.locator('.problem[data-code=forbidden]').waitFor();
    assert.equal(await page.locator('table[data-testid=projections]').count(), 0);

    await form.locator('input').fill(await token(['operator']));
    await form.locator('button').click();
    await page.locator('table[data-testid=projections] tbody tr').nth(2).waitFor();
    assert.equal(await form.count(), 0, 'the form is gone once the API answers');
    await page
      .locator('table[data-testid=projections] tr[data-projection=order-details] td.warn a')
      .getByText('1')
      .waitFor();
    // The failed requests before the operator's token are the only ones the page logged.
    assert.deepEqual(
      browser.errors.filter((e) => !/status of 40[13]/.test(e)),
      [],
    );
  });
});
