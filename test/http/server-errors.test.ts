/**
 * What the application made by createHttpApp answers before any route runs, over a real socket:
 * the router's refusals (bad percent-encoding, an over-long segment), Node's parser's (oversized
 * headers, an unknown method, broken framing), 405 with Allow and 404. Each
 * is a problem document with a documented code (the docs test checks the codes).
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { createHttpApp } from 'tidemark/http';

let app: FastifyInstance;
let base: string;
let port: number;

before(async () => {
  app = createHttpApp({ maxParamLength: 40 });
  app.get('/things/:id', async (request) => ({ id: (request.params as { id: string }).id }));
  app.post('/things/:id', async () => ({ ok: true }));
  app.delete('/things/:id/parts/:part', async () => ({ ok: true }));
  base = await app.listen({ port: 0, host: '127.0.0.1' });
  port = Number(new URL(base).port);
});
after(() => app.close());

async function problemOf(response: Response) {
  assert.match(String(response.headers.get('content-type')), /^application\/problem\+json/);
  return (await response.json()) as { status: number; code: string; detail?: string };
}

/** Sends raw bytes and resolves with everything the server wrote before closing. */
function raw(bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(bytes));
    let text = '';
    socket.on('data', (chunk) => (text += String(chunk)));
    socket.on('close', () => resolve(text));
    socket.on('error', reject);
  });
}

function parseRaw(text: string) {
  const [head, body] = text.split('\r\n\r\n');
  const [statusLine, ...headers] = head!.split('\r\n');
  return {
    status: Number(statusLine!.split(' ')[1]),
    type: headers.find((h) => /^content-type:/i.test(h))?.split(': ')[1],
    body: JSON.parse(body!) as { status: number; code: string },
  };
}

describe('createHttpApp: answers before any route', () => {
  it('a bad percent-encoding in the path: 400 invalid_url, the URL not echoed', async () => {
    const response = await fetch(`${base}/things/%E0%A4%A`);
    assert.equal(response.status, 400);
    const body = await problemOf(response);
    assert.equal(body.code, 'invalid_url');
    assert.doesNotMatch(JSON.stringify(body), /%E0/);
  });

  it('a path segment over maxParamLength: 414 uri_too_long; one at the limit is routed', async () => {
    const response = await fetch(`${base}/things/${'x'.repeat(41)}`);
    assert.equal(response.status, 414);
    const body = await problemOf(response);
    assert.equal(body.code, 'uri_too_long');
    assert.doesNotMatch(JSON.stringify(body), /xxxxxxxx/);
    assert.equal((await fetch(`${base}/things/${'x'.repeat(40)}`)).status, 200);
  });

  it('a method a path does not have: 405 method_not_allowed with Allow', async () => {
    const response = await fetch(`${base}/things/1`, { method: 'PUT' });
    assert.equal(response.status, 405);
    assert.equal(response.headers.get('allow'), 'GET, HEAD, POST');
    assert.equal((await problemOf(response)).code, 'method_not_allowed');
    const part = await fetch(`${base}/things/1/parts/2`);
    assert.equal(part.status, 405);
    assert.equal(part.headers.get('allow'), 'DELETE');
  });

  it('QUERY without a content type on a path without QUERY: 405, not a body error', async () => {
    const response = await fetch(`${base}/things/1`, { method: 'QUERY' });
    assert.equal(response.status, 405);
    assert.equal((await problemOf(response)).code, 'method_not_allowed');
  });

  it('no such path: 404 route_not_found', async () => {
    const response = await fetch(`${base}/elsewhere`, { method: 'POST', body: '{}' });
    assert.equal(response.status, 404);
    assert.equal((await problemOf(response)).code, 'route_not_found');
  });

  it('headers over the size limit: 431 headers_too_large, a problem document', async () => {
    const reply = parseRaw(
      await raw(`GET /things/1 HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`),
    );
    assert.equal(reply.status, 431);
    assert.equal(reply.type, 'application/problem+json');
    assert.equal(reply.body.code, 'headers_too_large');
  });

  it('a method Node does not know: 501 method_not_implemented', async () => {
    const reply = parseRaw(await raw('FROB /things/1 HTTP/1.1\r\nHost: x\r\n\r\n'));
    assert.equal(reply.status, 501);
    assert.equal(reply.type, 'application/problem+json');
    assert.equal(reply.body.code, 'method_not_implemented');
  });

  it('a malformed request: 400 malformed_request', async () => {
    const reply = parseRaw(
      await raw('POST /things/1 HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n'),
    );
    assert.equal(reply.status, 400);
    assert.equal(reply.type, 'application/problem+json');
    assert.equal(reply.body.code, 'malformed_request');
  });
});
