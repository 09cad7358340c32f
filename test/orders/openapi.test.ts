/**
 * The Orders service's /openapi.json against its own answers: every answer of a walk through
 * the contract (successes and the problems of each kind) has a documented status, a documented
 * content type, the documented headers in their documented format, and a body that matches its
 * schema. And the document is precise enough to fail: an answer without its ETag, or with a
 * field the schema does not have, does not conform. (CI also runs schemathesis against the
 * document: scripts/schemathesis.mjs.)
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import Ajv from 'ajv';
import { startTestService, type TestService } from '../support/orders.ts';

type Schema = Record<string, unknown>;
interface Answer {
  status: number;
  headers: Record<string, string | undefined>;
  body: unknown;
}
interface Operation {
  parameters?: { name: string; in: string; schema: Schema }[];
  responses: Record<
    string,
    {
      headers?: Record<string, { required?: boolean; schema: Schema }>;
      content?: Record<string, { schema: Schema }>;
    }
  >;
}

let service: TestService;
let document: {
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Schema> };
};
const ajv = new Ajv.default({ strict: false, allErrors: true, validateFormats: false });

before(async () => {
  service = await startTestService({ consistencyTimeoutMs: 5000 });
  document = (await service.app.inject({ method: 'GET', url: '/openapi.json' })).json();
});
after(() => service.dispose());

const resolve = (schema: Schema): Schema =>
  typeof schema.$ref === 'string'
    ? document.components.schemas[schema.$ref.replace('#/components/schemas/', '')]!
    : schema;

/** What does not conform in an answer to `method path` (an OpenAPI path template). */
function nonConformance(method: string, path: string, answer: Answer): string[] {
  const operation = document.paths[path]?.[method.toLowerCase()];
  if (!operation) return [`${method} ${path} is not documented`];
  const documented = operation.responses[String(answer.status)];
  if (!documented) return [`status ${answer.status} is not documented`];
  const problems: string[] = [];
  for (const [name, header] of Object.entries(documented.headers ?? {})) {
    const value = answer.headers[name.toLowerCase()];
    if (value === undefined) {
      if (header.required) problems.push(`header ${name} is missing`);
    } else if (!ajv.validate(header.schema, value)) {
      problems.push(`header ${name}: ${ajv.errorsText()}`);
    }
  }
  const type = String(answer.headers['content-type'] ?? '').split(';')[0]!;
  // No content documented (a 204): the answer must carry none either.
  if (!documented.content)
    return type === '' ? problems : [...problems, `content ${type} on a ${answer.status}`];
  const content = documented.content?.[type];
  if (!content) return [...problems, `content type ${type} is not documented`];
  if (!ajv.validate(resolve(content.schema), answer.body))
    problems.push(`body: ${ajv.errorsText()}`);
  return problems;
}

async function call(
  method: string,
  url: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const response = await service.app.inject({
    method: method as 'GET',
    url,
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    ...(body === undefined
      ? {}
      : { payload: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  const type = String(response.headers['content-type'] ?? '');
  return {
    status: response.statusCode,
    headers: response.headers as Record<string, string | undefined>,
    body: type.includes('json') ? response.json() : response.body,
  };
}

it('every answer of a walk through the contract conforms to /openapi.json', async () => {
  const seen: string[] = [];
  const expect = async (method: string, path: string, answer: Promise<Answer>, status: number) => {
    const got = await answer;
    assert.equal(got.status, status, `${method} ${path}: ${JSON.stringify(got.body)}`);
    assert.deepEqual(nonConformance(method, path, got), [], `${method} ${path} ${status}`);
    seen.push(`${method} ${path} ${status}`);
    return got;
  };
  const line = { sku: 'BOOK-1', quantity: 2, unitPriceCents: 1250 };
  const created = await expect(
    'POST',
    '/orders',
    call('POST', '/orders', { orderId: 'oa-1', customerId: 'c-7', lines: [line] }),
    201,
  );
  const token = created.headers['consistency-token']!;
  await expect(
    'POST',
    '/orders',
    call('POST', '/orders', { orderId: 'oa-1', customerId: 'c-7', lines: [] }),
    409,
  );
  await expect('POST', '/orders', call('POST', '/orders', { customerId: 'c' }), 400);
  await expect(
    'POST',
    '/orders',
    call('POST', '/orders', 'x', { 'content-type': 'text/plain' }),
    415,
  );
  await expect(
    'POST',
    '/orders/{orderId}/items',
    call('POST', '/orders/oa-1/items', { sku: 'PEN', quantity: 1, unitPriceCents: 300 }),
    200,
  );
  const item = await expect(
    'POST',
    '/orders/{orderId}/items',
    call(
      'POST',
      '/orders/oa-1/items',
      { sku: 'INK', quantity: 1, unitPriceCents: 100 },
      { 'idempotency-key': 'oa-key' },
    ),
    200,
  );
  const replay = await expect(
    'POST',
    '/orders/{orderId}/items',
    call(
      'POST',
      '/orders/oa-1/items',
      { sku: 'INK', quantity: 1, unitPriceCents: 100 },
      { 'idempotency-key': 'oa-key' },
    ),
    200,
  );
  assert.equal(replay.headers['idempotent-replayed'], 'true');
  assert.equal(replay.headers.etag, item.headers.etag);
  await expect(
    'POST',
    '/orders/{orderId}/items',
    call(
      'POST',
      '/orders/oa-1/items',
      { sku: 'INK', quantity: 2, unitPriceCents: 100 },
      { 'idempotency-key': 'oa-key' },
    ),
    422,
  );
  await expect(
    'DELETE',
    '/orders/{orderId}/items/{sku}',
    call('DELETE', '/orders/oa-1/items/INK'),
    200,
  );
  await expect(
    'POST',
    '/orders/{orderId}/confirm',
    call('POST', '/orders/oa-1/confirm', undefined, { 'if-match': '"1"' }),
    412,
  );
  await expect('POST', '/orders/{orderId}/ship', call('POST', '/orders/oa-1/ship'), 409);
  await expect('POST', '/orders/{orderId}/ship', call('POST', '/orders/none/ship'), 404);
  await expect(
    'GET',
    '/orders/{orderId}',
    call('GET', '/orders/oa-1', undefined, { 'consistency-token': token }),
    200,
  );
  await expect('GET', '/orders/{orderId}', call('GET', '/orders/none'), 404);
  await expect('GET', '/orders', call('GET', '/orders?customerId=c-7&limit=1'), 200);
  await expect('GET', '/orders', call('GET', '/orders?limit=0'), 400);
  await expect(
    'GET',
    '/customers/{customerId}/summary',
    call('GET', '/customers/c-7/summary', undefined, { 'consistency-token': token }),
    200,
  );
  await expect('GET', '/orders/{orderId}/events', call('GET', '/orders/oa-1/events'), 200);
  await expect(
    'GET',
    '/orders/{orderId}/history',
    call('GET', '/orders/oa-1/history?version=2'),
    200,
  );
  await expect(
    'GET',
    '/orders/{orderId}/history',
    call('GET', '/orders/oa-1/history?version=0'),
    404,
  );
  // A personal field, as stored and once its customer is forgotten (then a redacted marker).
  const sealed = await expect(
    'POST',
    '/orders',
    call('POST', '/orders', {
      orderId: 'oa-pd',
      customerId: 'c-pd',
      lines: [line],
      shippingAddress: '1 Quay Street',
    }),
    201,
  );
  const sealedToken = { 'consistency-token': sealed.headers['consistency-token']! };
  const before = await expect(
    'GET',
    '/orders/{orderId}',
    call('GET', '/orders/oa-pd', undefined, sealedToken),
    200,
  );
  assert.equal((before.body as { shippingAddress?: unknown }).shippingAddress, '1 Quay Street');
  await expect(
    'DELETE',
    '/customers/{customerId}/personal-data',
    call('DELETE', '/customers/c-pd/personal-data'),
    204,
  );
  const after = await expect('GET', '/orders/{orderId}', call('GET', '/orders/oa-pd'), 200);
  assert.deepEqual((after.body as { shippingAddress?: unknown }).shippingAddress, {
    $personal: 'redacted',
    subject: 'c-pd',
  });
  await expect('GET', '/orders', call('GET', '/orders?customerId=c-pd'), 200);
  await expect('GET', '/health', call('GET', '/health'), 200);
  await expect('GET', '/ready', call('GET', '/ready'), 200);
  await expect('GET', '/metrics', call('GET', '/metrics'), 200);
  assert.equal(seen.length, 28);
});

it('the document can fail an answer: a missing ETag, an undocumented field, an undocumented status', async () => {
  const created = await call('POST', '/orders', { customerId: 'c', lines: [] });
  const orderId = (created.body as { orderId: string }).orderId;
  const read = await call('GET', `/orders/${orderId}`, undefined, {
    'consistency-token': created.headers['consistency-token']!,
  });
  assert.deepEqual(nonConformance('GET', '/orders/{orderId}', read), []);
  const { etag: _etag, ...withoutEtag } = read.headers;
  assert.deepEqual(nonConformance('GET', '/orders/{orderId}', { ...read, headers: withoutEtag }), [
    'header ETag is missing',
  ]);
  assert.match(
    nonConformance('GET', '/orders/{orderId}', {
      ...read,
      body: { ...(read.body as object), colour: 'red' },
    }).join(),
    /body: .*additional properties/,
  );
  assert.deepEqual(nonConformance('GET', '/orders/{orderId}', { ...read, status: 500 }), [
    'status 500 is not documented',
  ]);
  assert.match(
    nonConformance('POST', '/orders', {
      ...created,
      headers: { ...created.headers, etag: '"01"' },
    }).join(),
    /header ETag/,
  );
});

it('the request headers the plugin reads are documented with their formats', () => {
  const confirm = document.paths['/orders/{orderId}/confirm']!.post!;
  const header = (name: string) =>
    confirm.parameters!.find((p) => p.in === 'header' && p.name === name)?.schema;
  for (const [name, good, bad] of [
    ['If-Match', '"12"', 'W/"12"'],
    ['Idempotency-Key', 'key-1', 'with space'],
    ['X-Correlation-Id', 'corr-1', 'x'.repeat(129)],
  ] as const) {
    const schema = header(name);
    assert.ok(schema, `${name} is documented`);
    assert.equal(ajv.validate(schema, good), true, `${name} ${good}`);
    assert.equal(ajv.validate(schema, bad), false, `${name} ${bad}`);
  }
  const getOrder = document.paths['/orders/{orderId}']!.get!;
  const token = getOrder.parameters!.find((p) => p.name === 'Consistency-Token')!.schema;
  assert.equal(ajv.validate(token, '1:12:3:order-o-1'), true);
  assert.equal(ajv.validate(token, '1:0:3:order-o-1'), false);
});
