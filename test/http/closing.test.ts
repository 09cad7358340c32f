/**
 * A server closing while requests are in progress: a request whose headers complete after
 * `close()` began is answered with a problem document (503 `unavailable`, Retry-After,
 * Connection: close), like every other refusal, not with Fastify's own JSON error shape; the
 * request in progress is answered, and its kept-alive connection is closed as soon as it is
 * idle, not when its keep-alive timeout runs out. Driven by signals: the held request waits
 * until the test has seen the server start closing.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { describe, it } from 'node:test';
import { createHttpApp } from 'tidemark/http';

describe('createHttpApp while closing', () => {
  // The timeout is the failure: without the fix the close waits out the keep-alive (raised here).
  it(
    'answers a late request with 503 unavailable and closes kept-alive connections at once',
    { timeout: 30_000 },
    async () => {
      const app = createHttpApp();
      app.server.keepAliveTimeout = 600_000;
      const entered = Promise.withResolvers<void>();
      const release = Promise.withResolvers<void>();
      const closing = Promise.withResolvers<void>();
      app.get('/hold', async () => {
        entered.resolve();
        await release.promise;
        return { held: true };
      });
      app.get('/next', async () => ({ next: true }));
      app.addHook('preClose', async () => closing.resolve());
      const base = await app.listen({ port: 0, host: '127.0.0.1' });
      const port = Number(new URL(base).port);

      // The held request, on a connection of its own that stays open (keep-alive).
      const busy = connect(port, '127.0.0.1');
      await once(busy, 'connect');
      let heldText = '';
      busy.on('data', (chunk) => (heldText += String(chunk)));
      const busyClosed = once(busy, 'close');
      busy.write('GET /hold HTTP/1.1\r\nHost: x\r\n\r\n');
      // A second connection sends its request's headers only after close() began.
      const socket = connect(port, '127.0.0.1');
      await once(socket, 'connect');
      let text = '';
      socket.on('data', (chunk) => (text += String(chunk)));
      const ended = once(socket, 'close');
      socket.write('GET /next HTTP/1.1\r\nHost: x\r\n');
      await entered.promise;
      const closed = app.close();
      await closing.promise;
      socket.write('\r\n');
      await ended;
      release.resolve();
      await busyClosed;
      await closed;

      assert.match(heldText, /^HTTP\/1\.1 200 /, 'the request in progress is answered');
      assert.match(heldText, /\{"held":true\}$/);
      const [head, body] = text.split('\r\n\r\n');
      assert.match(head!, /^HTTP\/1\.1 503 /);
      assert.match(head!, /\r\ncontent-type: application\/problem\+json/i);
      assert.match(head!, /\r\nretry-after: \d+/i);
      assert.match(head!, /\r\nconnection: close/i);
      const problem = JSON.parse(body!) as { status: number; code: string; type: string };
      assert.equal(problem.status, 503);
      assert.equal(problem.code, 'unavailable');
      assert.equal(problem.type, 'urn:tidemark:problem:unavailable');
    },
  );
});
