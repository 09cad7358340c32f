/**
 * Action routes: operations that are not a command on one stream get the plugin's validation,
 * Problem Details, request metrics and OpenAPI entry, under the plugin's prefix too.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import Fastify, { type InjectOptions } from 'fastify';
import { UnknownSubjectError } from 'tidemark';
import {
  HttpProblem,
  actionRoute,
  createMetricsRegistry,
  schemaOf,
  tidemarkHttp,
  type TidemarkHttpOptions,
} from 'tidemark/http';

async function build(prefix: string) {
  const done: string[] = [];
  const routes = [
    actionRoute({
      method: 'POST',
      url: '/tags/:tag/rename',
      summary: 'Rename a tag',
      params: schemaOf<{ tag: string }>({
        type: 'object',
        properties: { tag: { type: 'string', maxLength: 8 } },
      }),
      body: schemaOf<{ to: string }>({
        type: 'object',
        required: ['to'],
        properties: { to: { type: 'string', minLength: 1 } },
      }),
      handler: async ({ params, body }) => {
        if (params.tag === 'locked') throw new HttpProblem(409, 'tag_locked', 'Locked');
        done.push(`${params.tag}->${body.to}`);
        return { renamed: params.tag, to: body.to };
      },
    }),
    actionRoute({
      method: 'DELETE',
      url: '/subjects/:id',
      successStatus: 204,
      handler: async ({ params }) => {
        if (params.id === 'nobody') throw new UnknownSubjectError(params.id);
        done.push(`forgot ${params.id}`);
        return { ignored: true };
      },
    }),
  ];
  const metrics = createMetricsRegistry();
  const app = Fastify();
  const options: TidemarkHttpOptions = {
    actions: routes,
    metrics,
    openapi: { title: 't', version: '1' },
  };
  await app.register(tidemarkHttp, { ...options, prefix } as never);
  await app.ready();
  return { app, done, metrics };
}

describe('action routes', () => {
  it('run the handler and answer its body, or 204 with none', async () => {
    const { app, done } = await build('/admin');
    const renamed = await app.inject({
      method: 'POST',
      url: '/admin/tags/red/rename',
      payload: { to: 'blue' },
    });
    assert.equal(renamed.statusCode, 200);
    assert.deepEqual(renamed.json(), { renamed: 'red', to: 'blue' });
    const forgotten = await app.inject({ method: 'DELETE', url: '/admin/subjects/s-1' });
    assert.equal(forgotten.statusCode, 204);
    assert.equal(forgotten.body, '');
    assert.deepEqual(done, ['red->blue', 'forgot s-1']);
    await app.close();
  });

  it('refuse bad requests as problems before the handler runs, and map thrown errors', async () => {
    const { app, done } = await build('');
    const cases: [InjectOptions, number, string][] = [
      [{ method: 'POST', url: '/tags/red/rename', payload: { to: '' } }, 400, 'validation_failed'],
      [
        { method: 'POST', url: '/tags/red/rename', payload: { to: 'x', z: 1 } },
        400,
        'validation_failed',
      ],
      [
        { method: 'POST', url: '/tags/much-too-long/rename', payload: { to: 'x' } },
        400,
        'validation_failed',
      ],
      [{ method: 'DELETE', url: '/subjects/s-2', payload: { now: true } }, 400, 'unexpected_body'],
      [
        {
          method: 'POST',
          url: '/tags/red/rename',
          payload: 'to=x',
          headers: { 'content-type': 'text/plain' },
        },
        415,
        'unsupported_media_type',
      ],
      [{ method: 'POST', url: '/tags/locked/rename', payload: { to: 'x' } }, 409, 'tag_locked'],
      [{ method: 'DELETE', url: '/subjects/nobody' }, 404, 'unknown_subject'],
    ];
    for (const [request, status, code] of cases) {
      const response = await app.inject(request);
      assert.equal(response.statusCode, status, `${request.method} ${request.url}`);
      assert.match(String(response.headers['content-type']), /^application\/problem\+json/);
      assert.equal(response.json().code, code);
    }
    assert.deepEqual(done, []);
    await app.close();
  });

  it('are listed in /openapi.json with the full path and counted in the request metrics', async () => {
    const { app, metrics } = await build('/admin');
    await app.inject({ method: 'DELETE', url: '/admin/subjects/s-3' });
    const openapi = (await app.inject({ method: 'GET', url: '/admin/openapi.json' })).json();
    const paths = Object.keys(openapi.paths);
    assert.ok(paths.includes('/admin/subjects/{id}') && paths.includes('/admin/tags/{tag}/rename'));
    const rename = openapi.paths['/admin/tags/{tag}/rename'].post;
    assert.equal(rename.summary, 'Rename a tag');
    assert.deepEqual(rename.requestBody.content['application/json'].schema.required, ['to']);
    assert.ok(openapi.paths['/admin/subjects/{id}'].delete.responses['204']);
    assert.match(
      await metrics.metrics(),
      /tidemark_http_requests_total\{method="DELETE",route="\/admin\/subjects\/:id",status="204"\} 1/,
    );
    await app.close();
  });
});
