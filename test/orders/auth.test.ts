/**
 * Bearer authentication of the Orders service, over real HTTP on real SQLite. The keys are
 * made by `jose` and published as a JWKS by a small HTTP server in this file, as an identity
 * provider would; tokens are signed here the way such a provider signs them.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import {
  SignJWT,
  UnsecuredJWT,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  type CryptoKey,
  type JWTPayload,
} from 'jose';
import { isTidemarkError, type Logger } from 'tidemark';
import { createAuthenticator } from 'tidemark/http';
import { authFromEnv } from 'tidemark/service';
import { startServiceProcess } from '../support/process.ts';
import { startTestService, type TestService } from '../support/orders.ts';

const ISSUER = 'https://id.tidemark.test/';
const AUDIENCE = 'orders-api';
const PROBLEM = /^application\/problem\+json/;
const KID = 'key-1';

let jwks: Server;
let jwksUrl: string;
let signingKey: CryptoKey;
let publicPem: string;
let otherKey: CryptoKey;
let service: TestService;
let base: string;
let sequence = 0;

before(async () => {
  const pair = await generateKeyPair('ES256');
  signingKey = pair.privateKey;
  publicPem = await exportSPKI(pair.publicKey);
  // Another key pair under the same kid: what a forger without the private key can make.
  otherKey = (await generateKeyPair('ES256')).privateKey;
  const jwk = { ...(await exportJWK(pair.publicKey)), kid: KID, alg: 'ES256', use: 'sig' };
  jwks = createServer((_request, response) => {
    response.setHeader('content-type', 'application/json');
    response.end(JSON.stringify({ keys: [jwk] }));
  });
  await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
  jwksUrl = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/.well-known/jwks.json`;

  service = await startTestService({
    auth: { mode: 'jwt', jwksUrl, issuer: ISSUER, audience: AUDIENCE, clockToleranceSeconds: 5 },
  });
  base = await service.app.listen({ port: 0, host: '127.0.0.1' });
});

after(async () => {
  await service.dispose();
  await new Promise((resolve) => jwks.close(resolve));
});

interface TokenOptions {
  sub?: string;
  roles?: unknown;
  iss?: string;
  aud?: string;
  /** Seconds from now. */
  exp?: number;
  nbf?: number;
  key?: CryptoKey | Uint8Array;
  alg?: string;
  kid?: string;
  extra?: JWTPayload;
}

async function token(options: TokenOptions = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ roles: options.roles ?? ['reader', 'writer'], ...options.extra })
    .setProtectedHeader({ alg: options.alg ?? 'ES256', kid: options.kid ?? KID })
    .setIssuer(options.iss ?? ISSUER)
    .setAudience(options.aud ?? AUDIENCE)
    .setIssuedAt(now)
    .setExpirationTime(now + (options.exp ?? 300));
  if (options.sub !== '') jwt.setSubject(options.sub ?? 'user-1');
  if (options.nbf !== undefined) jwt.setNotBefore(now + options.nbf);
  return jwt.sign(options.key ?? signingKey);
}

async function call(
  method: string,
  path: string,
  options: { bearer?: string; body?: unknown; headers?: Record<string, string> } = {},
) {
  const headers: Record<string, string> = { ...options.headers };
  if (options.bearer !== undefined) headers.authorization = `Bearer ${options.bearer}`;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${base}${path}`, {
    method,
    headers,
    ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
  });
  const type = response.headers.get('content-type') ?? '';
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    type,
    body: (type.includes('json') ? JSON.parse(text) : text) as Record<string, unknown>,
  };
}

const newOrder = (orderId = `a${++sequence}-${Date.now().toString(36)}`) => ({
  orderId,
  customerId: 'c-auth',
  lines: [{ sku: 'A', quantity: 1, unitPriceCents: 100 }],
});

/** The store's head and the order's stream: what a refused request must leave as it was. */
async function snapshotOf(orderId: string) {
  const store = service.storage.store;
  return {
    head: await store.headPosition(),
    version: await store.streamVersion(`order-${orderId}`),
  };
}

/**
 * Sends a create under an Idempotency-Key with the given credentials, checks the refusal, that
 * nothing changed, and that no idempotency record was kept: the same request with a good token
 * afterwards runs (201) and is not a replay.
 */
async function assertRefusedCreate(
  bearer: string | undefined,
  status: 401 | 403,
  expected: Record<string, unknown>,
  headers: Record<string, string> = {},
) {
  const order = newOrder();
  const key = `k-${order.orderId}`;
  const before = await snapshotOf(order.orderId);
  const refused = await call('POST', '/orders', {
    ...(bearer !== undefined ? { bearer } : {}),
    body: order,
    headers: { 'idempotency-key': key, ...headers },
  });
  assert.equal(refused.status, status, JSON.stringify(refused.body));
  assert.match(refused.type, PROBLEM);
  for (const [name, value] of Object.entries(expected)) {
    assert.deepEqual(refused.body[name], value, `${name} of ${JSON.stringify(refused.body)}`);
  }
  assert.equal(refused.body.instance, '/orders');
  assert.deepEqual(await snapshotOf(order.orderId), before, 'a refused request changed the store');

  const accepted = await call('POST', '/orders', {
    bearer: await token({ roles: ['writer'] }),
    body: order,
    headers: { 'idempotency-key': key },
  });
  assert.equal(accepted.status, 201, JSON.stringify(accepted.body));
  assert.equal(accepted.headers.get('idempotent-replayed'), null);
  return refused;
}

describe('bearer authentication (JWKS)', () => {
  it('401 without a token: a bare Bearer challenge (RFC 6750 §3.1), nothing stored', async () => {
    const refused = await assertRefusedCreate(undefined, 401, {
      code: 'unauthenticated',
      reason: 'missing',
      type: 'urn:tidemark:problem:unauthenticated',
    });
    assert.equal(refused.headers.get('www-authenticate'), 'Bearer');
  });

  const invalid: [string, () => Promise<string>, string][] = [
    ['expired', () => token({ exp: -60 }), 'expired'],
    ['not yet valid', () => token({ nbf: 120 }), 'not_yet_valid'],
    ['signed by another key', () => token({ key: otherKey }), 'bad_signature'],
    ['from another issuer', () => token({ iss: 'https://evil.test/' }), 'claim_mismatch'],
    ['for another audience', () => token({ aud: 'billing-api' }), 'claim_mismatch'],
    ['without a subject', () => token({ sub: '' }), 'claim_mismatch'],
    [
      // The classic confusion: the public key, which anyone has, used as an HMAC secret.
      'HS256 with the public key as secret',
      () => token({ alg: 'HS256', key: new TextEncoder().encode(publicPem) }),
      'algorithm_not_allowed',
    ],
    [
      'unsigned (alg none)',
      async () =>
        new UnsecuredJWT({ roles: ['writer'] })
          .setSubject('user-1')
          .setIssuer(ISSUER)
          .setAudience(AUDIENCE)
          .setExpirationTime('5m')
          .encode(),
      'algorithm_not_allowed',
    ],
    ['not a JWT', async () => 'not.a.jwt', 'malformed'],
  ];
  for (const [name, make, reason] of invalid) {
    it(`401 invalid_token for a token ${name}, and nothing changes`, async () => {
      const refused = await assertRefusedCreate(await make(), 401, {
        code: 'unauthenticated',
        reason,
        status: 401,
      });
      assert.match(
        refused.headers.get('www-authenticate') ?? '',
        /^Bearer error="invalid_token", error_description="[^"\\]+"$/,
      );
    });
  }

  it('401 for a tampered token: a signed token whose payload was changed afterwards', async () => {
    const [header, , signature] = (await token({ roles: ['reader'] })).split('.');
    const forged = Buffer.from(
      JSON.stringify({
        sub: 'user-1',
        iss: ISSUER,
        aud: AUDIENCE,
        roles: ['writer'],
        exp: Math.floor(Date.now() / 1000) + 300,
      }),
    ).toString('base64url');
    await assertRefusedCreate(`${header}.${forged}.${signature}`, 401, {
      reason: 'bad_signature',
    });
  });

  it('refuses before reading the body: a bad body without a token is 401, not 400', async () => {
    const response = await fetch(`${base}/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{not json',
    });
    assert.equal(response.status, 401);
    assert.equal(((await response.json()) as { code: string }).code, 'unauthenticated');
  });

  it('403 insufficient_scope for a reader sending a command, and nothing changes', async () => {
    const refused = await assertRefusedCreate(await token({ roles: ['reader'] }), 403, {
      code: 'forbidden',
      required: ['writer'],
      status: 403,
    });
    assert.match(
      refused.headers.get('www-authenticate') ?? '',
      /^Bearer error="insufficient_scope", error_description="[^"\\]+", scope="writer"$/,
    );
  });

  it('a subject with quotes, line breaks or non-ASCII still gets a clean 403 challenge', async () => {
    const refused = await call('POST', '/orders', {
      bearer: await token({ sub: 'Zoë "the reader"\r\nX-Evil: 1', roles: ['reader'] }),
      body: newOrder(),
    });
    assert.equal(refused.status, 403);
    assert.equal(refused.headers.get('x-evil'), null);
    assert.match(
      refused.headers.get('www-authenticate') ?? '',
      /^Bearer error="insufficient_scope", error_description="[\x20\x21\x23-\x5b\x5d-\x7e]+", scope="writer"$/,
    );
    assert.equal(refused.body.code, 'forbidden');
  });

  it('a refused command on an existing order leaves its stream as it was', async () => {
    const order = newOrder();
    const writer = await token({ roles: ['writer'] });
    assert.equal((await call('POST', '/orders', { bearer: writer, body: order })).status, 201);
    const before = await snapshotOf(order.orderId);
    const reader = await token({ roles: ['reader'] });
    const refused = await call('POST', `/orders/${order.orderId}/confirm`, { bearer: reader });
    assert.equal(refused.status, 403);
    const expired = await token({ roles: ['writer'], exp: -60 });
    assert.equal(
      (await call('POST', `/orders/${order.orderId}/cancel`, { bearer: expired })).status,
      401,
    );
    assert.deepEqual(await snapshotOf(order.orderId), before);
  });

  it("a writer's command records the token's subject as the events' actor", async () => {
    const order = newOrder();
    const writer = await token({ sub: 'alice@example.test', roles: ['writer'] });
    const created = await call('POST', '/orders', { bearer: writer, body: order });
    assert.equal(created.status, 201);
    const bob = await token({ sub: 'bob', roles: ['writer'] });
    assert.equal(
      (await call('POST', `/orders/${order.orderId}/confirm`, { bearer: bob })).status,
      200,
    );
    const events = await service.storage.store.readStream(`order-${order.orderId}`);
    assert.deepEqual(
      events.map((e) => [e.type, e.metadata.actor]),
      [
        ['OrderCreated', 'alice@example.test'],
        ['OrderConfirmed', 'bob'],
      ],
    );
    // And the events route shows it to a reader.
    const shown = await call('GET', `/orders/${order.orderId}/events`, {
      bearer: await token({ roles: ['reader'] }),
    });
    assert.equal(shown.status, 200);
    const listed = shown.body.events as { metadata: Record<string, unknown> }[];
    assert.deepEqual(
      listed.map((e) => e.metadata.actor),
      ['alice@example.test', 'bob'],
    );
  });

  it('queries need the reader role; /health, /ready and /metrics stay open', async () => {
    const order = newOrder();
    await call('POST', '/orders', { bearer: await token({ roles: ['writer'] }), body: order });
    const path = `/orders/${order.orderId}/history?version=1`;
    assert.equal((await call('GET', path)).status, 401);
    const writerOnly = await call('GET', path, { bearer: await token({ roles: ['writer'] }) });
    assert.equal(writerOnly.status, 403);
    assert.deepEqual(writerOnly.body.required, ['reader']);
    const reader = await call('GET', path, { bearer: await token({ roles: ['reader'] }) });
    assert.equal(reader.status, 200, JSON.stringify(reader.body));
    for (const open of ['/health', '/ready', '/metrics', '/openapi.json']) {
      assert.equal((await call('GET', open)).status, 200, open);
    }
    // Refusals are counted like any answer.
    const metrics = String((await call('GET', '/metrics')).body);
    for (const status of ['401', '403']) {
      assert.match(
        metrics,
        new RegExp(
          `tidemark_http_requests_total\\{[^}]*route="/orders/:orderId/history"[^}]*status="${status}"`,
        ),
      );
    }
  });

  it('the OpenAPI document declares the bearer scheme and the roles of each operation', async () => {
    const document = (await call('GET', '/openapi.json')).body as {
      components?: { securitySchemes?: Record<string, unknown> };
      paths: Record<string, Record<string, { security?: unknown; responses: object }>>;
    };
    assert.deepEqual(document.components?.securitySchemes?.bearer, {
      type: 'http',
      scheme: 'bearer',
      bearerFormat: 'JWT',
    });
    const create = document.paths['/orders']!.post!;
    assert.deepEqual(create.security, [{ bearer: ['writer'] }]);
    assert.ok('401' in create.responses && '403' in create.responses);
    assert.deepEqual(document.paths['/orders/{orderId}']!.get!.security, [{ bearer: ['reader'] }]);
  });

  it('forgetting a customer needs the operator role: a writer is refused and nothing is forgotten', async () => {
    const order = {
      ...newOrder(),
      customerId: `c-forget-${sequence}`,
      shippingAddress: 'Operator Lane 1',
    };
    const path = `/customers/${order.customerId}/personal-data`;
    await call('POST', '/orders', { bearer: await token({ roles: ['writer'] }), body: order });
    assert.equal((await call('DELETE', path)).status, 401);
    const writer = await call('DELETE', path, {
      bearer: await token({ roles: ['reader', 'writer'] }),
    });
    assert.equal(writer.status, 403);
    assert.deepEqual(writer.body.required, ['operator']);
    const events = async () =>
      (
        await call('GET', `/orders/${order.orderId}/events`, {
          bearer: await token({ roles: ['reader'] }),
        })
      ).body.events as { data: Record<string, unknown> }[];
    assert.equal((await events())[0]!.data.shippingAddress, 'Operator Lane 1');
    const operator = await call('DELETE', path, { bearer: await token({ roles: ['operator'] }) });
    assert.equal(operator.status, 204);
    assert.deepEqual((await events())[0]!.data.shippingAddress, {
      $personal: 'redacted',
      subject: order.customerId,
    });
    const document = (await call('GET', '/openapi.json')).body as {
      paths: Record<string, Record<string, { security?: unknown }>>;
    };
    assert.deepEqual(document.paths['/customers/{customerId}/personal-data']!.delete!.security, [
      { bearer: ['operator'] },
    ]);
  });

  it('another subject reusing an idempotency key gets 422, not the first answer', async () => {
    const order = newOrder();
    const key = `shared-${order.orderId}`;
    const first = await call('POST', '/orders', {
      bearer: await token({ sub: 'alice', roles: ['writer'] }),
      body: order,
      headers: { 'idempotency-key': key },
    });
    assert.equal(first.status, 201);
    const again = await call('POST', '/orders', {
      bearer: await token({ sub: 'alice', roles: ['writer'] }),
      body: order,
      headers: { 'idempotency-key': key },
    });
    assert.equal(again.headers.get('idempotent-replayed'), 'true');
    const other = await call('POST', '/orders', {
      bearer: await token({ sub: 'mallory', roles: ['writer'] }),
      body: order,
      headers: { 'idempotency-key': key },
    });
    assert.equal(other.status, 422);
    assert.equal(other.body.code, 'idempotency_key_reused');
  });

  it('a JWKS that cannot be fetched answers 503, never lets the request in', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const unreachable = await startTestService({
      auth: {
        mode: 'jwt',
        jwksUrl: `http://127.0.0.1:${port}/jwks.json`,
        issuer: ISSUER,
        audience: AUDIENCE,
      },
    });
    try {
      const answer = await unreachable.app.inject({
        method: 'POST',
        url: '/orders',
        headers: { authorization: `Bearer ${await token()}`, 'content-type': 'application/json' },
        payload: JSON.stringify(newOrder()),
      });
      assert.equal(answer.statusCode, 503, answer.body);
      assert.equal(answer.json().code, 'unavailable');
      assert.equal(await unreachable.storage.store.headPosition(), 0);
    } finally {
      await unreachable.dispose();
    }
  });
});

describe('bearer authentication (shared secret)', () => {
  const secret = 'a shared secret of at least thirty-two bytes';
  const key = new TextEncoder().encode(secret);
  let hmac: TestService;
  let actionsRun = 0;
  before(async () => {
    hmac = await startTestService({
      auth: {
        mode: 'jwt',
        secret,
        issuer: ISSUER,
        audience: AUDIENCE,
        rolesClaim: 'scope',
        routeRoles: { operationalReads: ['operator'] },
      },
    });
    // An admin surface of the same service, guarded as the console is: every route behind
    // guard('operations'), so the operator role.
    await hmac.app.register(
      async (admin) => {
        admin.addHook('onRequest', hmac.auth!.guard('operations')!);
        admin.post('/projections/:name/rebuild', async () => ({ started: ++actionsRun }));
      },
      { prefix: '/admin' },
    );
  });
  after(() => hmac.dispose());

  const send = async (bearer: string) =>
    hmac.app.inject({
      method: 'POST',
      url: '/orders',
      headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
      payload: JSON.stringify(newOrder()),
    });

  it('HS256 with roles from a scope string', async () => {
    const good = await token({
      alg: 'HS256',
      key,
      roles: undefined,
      extra: { scope: 'openid writer' },
    });
    assert.equal((await send(good)).statusCode, 201);
    const readerOnly = await token({ alg: 'HS256', key, extra: { scope: 'reader' } });
    assert.equal((await send(readerOnly)).statusCode, 403);
  });

  it('refuses an asymmetric token, and a token signed with another secret', async () => {
    const es = await send(await token({ extra: { scope: 'writer' } }));
    assert.equal(es.statusCode, 401);
    assert.equal(es.json().reason, 'algorithm_not_allowed');
    const otherSecret = new TextEncoder().encode('another secret, also thirty-two bytes long');
    const forged = await send(
      await token({ alg: 'HS256', key: otherSecret, extra: { scope: 'writer' } }),
    );
    assert.equal(forged.statusCode, 401);
    assert.equal(forged.json().reason, 'bad_signature');
    assert.equal(await hmac.storage.store.headPosition(), 1);
  });

  it('routes that change operational state need the operator role; the action runs only then', async () => {
    const rebuild = (scope?: string) =>
      hmac.app.inject({
        method: 'POST',
        url: '/admin/projections/order-list/rebuild',
        headers: scope ? { authorization: `Bearer ${scope}` } : {},
      });
    const none = await rebuild();
    assert.equal(none.statusCode, 401);
    assert.equal(none.headers['www-authenticate'], 'Bearer');
    const writer = await rebuild(
      await token({ alg: 'HS256', key, extra: { scope: 'reader writer' } }),
    );
    assert.equal(writer.statusCode, 403);
    assert.deepEqual(writer.json().required, ['operator']);
    assert.equal(actionsRun, 0);
    const operator = await rebuild(
      await token({ alg: 'HS256', key, extra: { scope: 'operator' } }),
    );
    assert.equal(operator.statusCode, 200);
    assert.equal(actionsRun, 1);
  });

  it('operational reads can be guarded too (routeRoles.operationalReads); /health stays open', async () => {
    const get = async (url: string, scope?: string) =>
      (
        await hmac.app.inject({
          method: 'GET',
          url,
          headers: scope
            ? { authorization: `Bearer ${await token({ alg: 'HS256', key, extra: { scope } })}` }
            : {},
        })
      ).statusCode;
    assert.equal(await get('/health'), 200);
    for (const url of ['/ready', '/metrics', '/openapi.json']) {
      assert.equal(await get(url), 401, url);
      assert.equal(await get(url, 'reader writer'), 403, url);
      assert.equal(await get(url, 'operator'), 200, url);
    }
  });

  it('refuses unsafe settings when it is built', () => {
    const bad = [
      { mode: 'jwt', secret: 'too short', issuer: ISSUER, audience: AUDIENCE },
      { mode: 'jwt', secret, jwksUrl: 'http://x.test/', issuer: ISSUER, audience: AUDIENCE },
      { mode: 'jwt', secret, issuer: ISSUER, audience: AUDIENCE, algorithms: ['none'] },
      { mode: 'jwt', secret, issuer: ISSUER, audience: AUDIENCE, algorithms: ['RS256'] },
      {
        mode: 'jwt',
        jwksUrl: 'http://x.test/',
        issuer: ISSUER,
        audience: AUDIENCE,
        algorithms: ['HS256'],
      },
      { mode: 'jwt', secret, issuer: '', audience: AUDIENCE },
      { mode: 'jwt', secret, issuer: ISSUER, audience: [] },
    ] as const;
    for (const options of bad) {
      assert.throws(
        () => createAuthenticator(options as never),
        (error) => isTidemarkError(error, 'invalid_argument'),
        JSON.stringify(options),
      );
    }
  });
});

describe('authFromEnv: settings from the environment', () => {
  const keys = { AUTH_SECRET: 's'.repeat(32), AUTH_ISSUER: 'a, b', AUTH_AUDIENCE: 'orders' };
  it('keys win over the development switch; lists are comma-separated', () => {
    assert.deepEqual(authFromEnv({ ...keys, AUTH_ROLES_CLAIM: 'scope' }, { insecureDev: true }), {
      mode: 'jwt',
      secret: 's'.repeat(32),
      issuer: ['a', 'b'],
      audience: ['orders'],
      rolesClaim: 'scope',
    });
  });
  it('off only when asked for, and never beside keys', () => {
    assert.deepEqual(authFromEnv({}, { insecureDev: true }), { mode: 'off' });
    assert.deepEqual(authFromEnv({ TIDEMARK_AUTH: 'off' }), { mode: 'off' });
    for (const [env, insecureDev] of [
      [{}, false],
      [{ ...keys, TIDEMARK_AUTH: 'off' }, false],
      [{ TIDEMARK_AUTH: 'no' }, true],
    ] as const) {
      assert.throws(
        () => authFromEnv(env, { insecureDev }),
        (error) => isTidemarkError(error, 'invalid_argument'),
        JSON.stringify(env),
      );
    }
  });
});

describe('local development: authentication off', () => {
  it('createOrdersService with auth off is open and warns once at start', async () => {
    const warnings: { obj: object; msg?: string }[] = [];
    const logger: Logger = {
      debug() {},
      info() {},
      error() {},
      warn: (obj, msg) => void warnings.push({ obj, ...(msg ? { msg } : {}) }),
    };
    const open = await startTestService({ auth: { mode: 'off' }, logger });
    try {
      assert.equal(warnings.length, 1, JSON.stringify(warnings));
      assert.deepEqual(warnings[0]!.obj, { auth: 'off' });
      assert.match(warnings[0]!.msg ?? '', /authentication is OFF/);
      const order = newOrder();
      const created = await open.app.inject({
        method: 'POST',
        url: '/orders',
        headers: { 'content-type': 'application/json' },
        payload: JSON.stringify(order),
      });
      assert.equal(created.statusCode, 201);
      const [event] = await open.storage.store.readStream(`order-${order.orderId}`);
      assert.equal(event!.metadata.actor, undefined);
    } finally {
      await open.dispose();
    }
  });

  it('npm start (--insecure-dev) serves without a token and logs the warning', async () => {
    const dir = service.dir;
    const process1 = await startServiceProcess({
      DATABASE_URL: `${dir}/dev.db`,
      KAFKA_BROKERS: '',
    });
    try {
      // pino's warn level is 40.
      const warning = await process1.waitForLog((line) => line.level === 40);
      assert.equal(warning.auth, 'off');
      assert.match(String(warning.msg), /authentication is OFF/);
      const listening = await process1.waitForLog(
        (line) => line.msg === 'Tidemark Orders is listening',
      );
      assert.equal(listening.auth, 'off');
      const created = await fetch(`${process1.url}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(newOrder()),
      });
      assert.equal(created.status, 201);
    } finally {
      process1.child.kill('SIGTERM');
      await process1.exited;
    }
  });

  it('with keys in the environment the process requires a token, --insecure-dev or not', async () => {
    const secret = 'an environment secret of thirty-two bytes or more';
    const process2 = await startServiceProcess({
      DATABASE_URL: `${service.dir}/keyed.db`,
      KAFKA_BROKERS: '',
      AUTH_SECRET: secret,
      AUTH_ISSUER: ISSUER,
      AUTH_AUDIENCE: AUDIENCE,
    });
    try {
      const listening = await process2.waitForLog(
        (line) => line.msg === 'Tidemark Orders is listening',
      );
      assert.equal(listening.auth, 'jwt');
      const post = (authorization?: string) =>
        fetch(`${process2.url}/orders`, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            ...(authorization ? { authorization } : {}),
          },
          body: JSON.stringify(newOrder()),
        });
      assert.equal((await post()).status, 401);
      const good = await token({ alg: 'HS256', key: new TextEncoder().encode(secret) });
      assert.equal((await post(`Bearer ${good}`)).status, 201);
    } finally {
      process2.child.kill('SIGTERM');
      await process2.exited;
    }
  });

  it('without keys and without a development switch the service refuses to start', async () => {
    const run = promisify(execFile);
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      PORT: '0',
      DATABASE_URL: `${service.dir}/x.db`,
    };
    delete env.AUTH_SECRET;
    delete env.AUTH_JWKS_URL;
    delete env.TIDEMARK_AUTH;
    const failed = await run(
      process.execPath,
      ['--conditions=tidemark-source', 'examples/orders/src/main.ts'],
      { cwd: new URL('../../', import.meta.url).pathname, env },
    ).then(
      () => assert.fail('the service started without authentication'),
      (error: { code: number; stderr: string }) => error,
    );
    assert.equal(failed.code, 2);
    assert.match(failed.stderr, /no authentication configured/);
  });
});
