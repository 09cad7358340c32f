/**
 * The HTTP plugin in someone else's Fastify application: the host's own routes keep their
 * parsing, validation, error answers and 404s exactly as they were without the plugin, whether
 * the plugin is registered before or after them, with or without a prefix; and the plugin's
 * routes keep their own rules (JSON only, strict bodies, Problem Details).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import Fastify, { type FastifyInstance, type InjectOptions } from 'fastify';
import { CommandHandler, type Decider } from 'tidemark';
import { tidemarkHttp, type CommandRoute } from 'tidemark/http';
import { MemoryEventStore } from 'tidemark/memory';

type NoteEvent = { type: 'Noted'; data: { text: string } };
type NoteCommand = { type: 'Note'; data: { text: string } };
const notes: Decider<{ count: number }, NoteCommand, NoteEvent> = {
  initialState: () => ({ count: 0 }),
  evolve: (state) => ({ count: state.count + 1 }),
  decide: (command) => [{ type: 'Noted', data: command.data }],
};

function noteRoutes(): CommandRoute<never, never>[] {
  const handler = new CommandHandler({ decider: notes, store: new MemoryEventStore() });
  const route: CommandRoute<{ id: string }, { text: string }> = {
    method: 'POST',
    url: '/notes/:id',
    params: { type: 'object', properties: { id: { type: 'string' } } },
    body: { type: 'object', required: ['text'], properties: { text: { type: 'string' } } },
    handler,
    requireStream: false,
    streamId: (r) => `note-${r.params.id}`,
    command: (r) => ({ type: 'Note', data: { text: r.body.text } }),
    response: (result) => ({ version: result.nextExpectedVersion }),
  };
  return [route as unknown as CommandRoute<never, never>];
}

/** The host application's own routes, with Fastify's defaults. */
function hostRoutes(app: FastifyInstance, tag: string) {
  app.post(
    `/${tag}/echo`,
    {
      schema: {
        body: {
          type: 'object',
          required: ['n'],
          properties: { n: { type: 'integer' }, d: { type: 'string', default: 'x' } },
        },
      },
    },
    async (request) => ({ body: request.body }),
  );
  app.post(`/${tag}/any`, async (request) => ({
    type: typeof request.body,
    body: request.body ?? null,
  }));
  app.get(`/${tag}/fail`, async () => {
    throw Object.assign(new Error('teapot'), { statusCode: 418 });
  });
  app.get(`/${tag}/crash`, async () => {
    throw new Error('boom');
  });
}

type Placement = { prefix?: string; order: 'before' | 'after' | 'none' };

async function build(placement: Placement): Promise<FastifyInstance> {
  const app = Fastify();
  if (placement.order === 'after') hostRoutes(app, 'early');
  if (placement.order !== 'none') {
    await app.register(tidemarkHttp, {
      commands: noteRoutes(),
      openapi: { title: 't', version: '1' },
      ...(placement.prefix ? { prefix: placement.prefix } : {}),
    } as never);
  }
  if (placement.order !== 'after') hostRoutes(app, 'early');
  hostRoutes(app, 'late');
  await app.ready();
  return app;
}

const requests = (tag: string): [string, InjectOptions][] => [
  ['valid JSON', { method: 'POST', url: `/${tag}/echo`, payload: { n: 5 } }],
  ['a number sent as text (coerced)', { method: 'POST', url: `/${tag}/echo`, payload: { n: '5' } }],
  ['an unknown field (removed)', { method: 'POST', url: `/${tag}/echo`, payload: { n: 1, z: 2 } }],
  ['a missing field', { method: 'POST', url: `/${tag}/echo`, payload: { d: 'y' } }],
  [
    'malformed JSON',
    {
      method: 'POST',
      url: `/${tag}/echo`,
      payload: '{"n":',
      headers: { 'content-type': 'application/json' },
    },
  ],
  [
    'an empty JSON body',
    {
      method: 'POST',
      url: `/${tag}/any`,
      payload: '',
      headers: { 'content-type': 'application/json' },
    },
  ],
  [
    'text/plain',
    {
      method: 'POST',
      url: `/${tag}/any`,
      payload: 'hello',
      headers: { 'content-type': 'text/plain' },
    },
  ],
  [
    'an unknown content type',
    {
      method: 'POST',
      url: `/${tag}/any`,
      payload: '<a/>',
      headers: { 'content-type': 'application/xml' },
    },
  ],
  ['an error with a status', { method: 'GET', url: `/${tag}/fail` }],
  ['an error without one', { method: 'GET', url: `/${tag}/crash` }],
  ['an unknown route', { method: 'GET', url: `/${tag}/nowhere` }],
  ['an unknown route under the prefix', { method: 'GET', url: '/api/nowhere' }],
  ['a wrong method', { method: 'DELETE', url: `/${tag}/echo` }],
];

const answer = async (app: FastifyInstance, request: InjectOptions) => {
  const response = await app.inject(request);
  return {
    status: response.statusCode,
    type: response.headers['content-type'],
    body: response.body,
  };
};

describe('the HTTP plugin in a host application', () => {
  const placements: Placement[] = [
    { order: 'before' },
    { order: 'after' },
    { order: 'before', prefix: '/api' },
    { order: 'after', prefix: '/api' },
  ];
  for (const placement of placements) {
    const label = `registered ${placement.order} the host's routes${placement.prefix ? `, under ${placement.prefix}` : ''}`;
    it(`${label}: the host's routes answer exactly as without the plugin`, async () => {
      const bare = await build({ order: 'none' });
      const withPlugin = await build(placement);
      try {
        for (const tag of ['early', 'late']) {
          for (const [name, request] of requests(tag)) {
            assert.deepEqual(
              await answer(withPlugin, request),
              await answer(bare, request),
              `${tag}: ${name}`,
            );
          }
        }
        // The comparison means something: Fastify's defaults differ from the plugin's rules.
        const text = await answer(bare, requests('late').find(([n]) => n === 'text/plain')![1]);
        assert.equal(text.status, 200);
        const unknown = await answer(bare, { method: 'GET', url: '/late/nowhere' });
        assert.equal(unknown.status, 404);
        assert.doesNotMatch(String(unknown.type), /problem/);
      } finally {
        await bare.close();
        await withPlugin.close();
      }
    });

    it(`${label}: the plugin's routes keep their own rules`, async () => {
      const app = await build(placement);
      const base = placement.prefix ?? '';
      try {
        const ok = await app.inject({
          method: 'POST',
          url: `${base}/notes/a`,
          payload: { text: 'hi' },
        });
        assert.equal(ok.statusCode, 200, ok.body);
        assert.equal(ok.headers.etag, '"1"');
        const plain = await app.inject({
          method: 'POST',
          url: `${base}/notes/a`,
          payload: 'hi',
          headers: { 'content-type': 'text/plain' },
        });
        assert.equal(plain.statusCode, 415);
        assert.match(String(plain.headers['content-type']), /^application\/problem\+json/);
        assert.equal(plain.json().code, 'unsupported_media_type');
        const extra = await app.inject({
          method: 'POST',
          url: `${base}/notes/a`,
          payload: { text: 'hi', z: 1 },
        });
        assert.equal(extra.statusCode, 400);
        assert.equal(extra.json().code, 'validation_failed');
        const openapi = (await app.inject({ method: 'GET', url: `${base}/openapi.json` })).json();
        // Its own routes only, under its prefix: the host's are not described.
        assert.deepEqual(Object.keys(openapi.paths), [
          `${base}/notes/{id}`,
          ...['/health', '/ready', '/metrics', '/openapi.json'].map((path) => `${base}${path}`),
        ]);
        const metrics = await app.inject({ method: 'GET', url: `${base}/metrics` });
        assert.match(
          metrics.body,
          new RegExp(
            `tidemark_command_duration_seconds_count\\{route="POST ${base}/notes/:id"\\} 1`,
          ),
        );
      } finally {
        await app.close();
      }
    });
  }
});
