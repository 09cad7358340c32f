/**
 * The console's JSON API. Each route validates its input, calls one of the library's operations
 * and shapes the answer for the page; a refused action changes nothing.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import {
  StreamNotFoundError,
  listParked,
  projectionStatus,
  retryParked,
  skipParked,
  type ProjectionDefinition,
  type ProjectionOperations,
  type RecordedEvent,
} from '../../index.ts';
import { HttpProblem } from '../problem.ts';
import type { JsonSchema } from '../validation.ts';
import type { AdminConsoleOptions } from './plugin.ts';
import { adminProblem as fail } from './problems.ts';
import type { RebuildJobs } from './rebuilds.ts';

interface Context {
  options: AdminConsoleOptions;
  ops: ProjectionOperations;
  rebuilds: RebuildJobs;
  refreshMs: number;
}

const maxInt = Number.MAX_SAFE_INTEGER;
const name = { type: 'string', minLength: 1, maxLength: 200 };
const streamId = { type: 'string', minLength: 1, maxLength: 1000 };
const params = (properties: Record<string, JsonSchema>): JsonSchema => ({
  type: 'object',
  required: Object.keys(properties),
  properties,
  additionalProperties: false,
});
const query = (properties: Record<string, JsonSchema>): JsonSchema => ({
  type: 'object',
  properties,
  additionalProperties: false,
});
/** Actions take no body: none, or `{}`; anything else is refused before the action runs. */
async function noBody(request: FastifyRequest): Promise<void> {
  const body = request.body;
  if (body === undefined || body === null) return;
  if (typeof body === 'object' && !Array.isArray(body) && Object.keys(body).length === 0) return;
  throw new HttpProblem(400, 'validation_failed', 'Invalid request', 'this action takes no body', {
    errors: [{ in: 'body', path: '/', message: 'must be empty' }],
  });
}

function eventView(e: RecordedEvent) {
  return {
    eventId: e.eventId,
    streamId: e.streamId,
    streamVersion: e.streamVersion,
    position: e.position,
    type: e.type,
    schemaVersion: e.schemaVersion,
    data: e.data,
    metadata: e.metadata,
    recordedAt: e.recordedAt,
  };
}

export function registerAdminRoutes(api: FastifyInstance, ctx: Context): void {
  const { options, ops, rebuilds } = ctx;
  const definitions = new Map(options.projections.map((p) => [p.name, p]));
  const definition = (projection: string): ProjectionDefinition => {
    const found = definitions.get(projection);
    if (!found)
      throw fail(
        'unknown_projection',
        'Unknown projection',
        `no projection '${projection}' in this service (known: ${[...definitions.keys()].join(', ') || 'none'})`,
      );
    return found;
  };

  api.get('/overview', async () => ({
    refreshMs: ctx.refreshMs,
    head: await options.store.headPosition(),
    feeds: Object.keys(options.feeds),
    runsProjections: options.host !== undefined,
    relay: options.relay !== undefined,
    streamKinds: (options.streams ?? []).map((s) => s.prefix),
    projections: [...definitions.values()].map((p) => ({ name: p.name, codeVersion: p.version })),
    time: new Date().toISOString(),
  }));

  // Every physical version in the ledger, its lag read from its feed; `running` says whether
  // this process runs it (an api-only process runs none and still shows them all).
  api.get('/projections', async () => {
    const [statuses, local] = await Promise.all([
      projectionStatus(ops),
      options.host ? options.host.status() : Promise.resolve(undefined),
    ]);
    return {
      time: new Date().toISOString(),
      projections: statuses.map((s) => {
        const here = local?.find((l) => l.name === s.name && l.version === s.version);
        return {
          ...s,
          deployedCodeVersion: definitions.get(s.name)?.version ?? null,
          running: local === undefined ? null : here !== undefined && here.state !== 'stopped',
          ...(here?.lastError ? { lastError: here.lastError } : {}),
        };
      }),
      rebuilds: rebuilds.list(),
    };
  });

  api.get(
    '/parked',
    {
      schema: {
        querystring: query({
          projection: name,
          stream: streamId,
          limit: { type: 'integer', minimum: 1, maximum: 1000, default: 200 },
        }),
      },
    },
    async (request) => {
      const q = request.query as { projection?: string; stream?: string; limit: number };
      if (q.projection !== undefined) definition(q.projection);
      const parked = await listParked(ops, {
        limit: q.limit,
        ...(q.projection ? { name: q.projection } : {}),
        ...(q.stream ? { streamId: q.stream } : {}),
      });
      return {
        parked: parked.map((p) => ({
          projection: p.projection,
          version: p.version,
          reason: p.reason,
          error: p.error,
          attempts: p.attempts,
          parkedAt: p.parkedAt,
          event: eventView(p.event),
        })),
      };
    },
  );

  api.post(
    '/projections/:projection/parked/:streamId/retry',
    { schema: { params: params({ projection: name, streamId }) }, preValidation: noBody },
    async (request) => {
      const p = request.params as { projection: string; streamId: string };
      const projection = definition(p.projection);
      let applied: number;
      try {
        applied = await retryParked(ops, projection, p.streamId);
      } catch (error) {
        throw fail(
          'retry_failed',
          'Retry failed',
          `the events of '${p.streamId}' stay parked: ${(error as Error).message}`,
        );
      }
      if (applied === 0)
        throw fail(
          'parked_not_found',
          'Nothing parked',
          `no parked events of '${p.streamId}' in ${p.projection}`,
        );
      return { projection: p.projection, streamId: p.streamId, applied };
    },
  );

  api.post(
    '/projections/:projection/parked-events/:eventId/skip',
    { schema: { params: params({ projection: name, eventId: streamId }) }, preValidation: noBody },
    async (request) => {
      const p = request.params as { projection: string; eventId: string };
      definition(p.projection);
      const versions = await skipParked(ops, p.projection, p.eventId);
      if (versions.length === 0)
        throw fail(
          'parked_not_found',
          'Nothing parked',
          `no parked event ${p.eventId} in ${p.projection}`,
        );
      return { projection: p.projection, eventId: p.eventId, versions };
    },
  );

  api.post(
    '/projections/:projection/rebuild',
    { schema: { params: params({ projection: name }) }, preValidation: noBody },
    async (request, reply) => {
      const p = request.params as { projection: string };
      const projection = definition(p.projection);
      const running = rebuilds.runningOf(projection.name);
      if (running)
        throw fail(
          'rebuild_in_progress',
          'Rebuild in progress',
          `${projection.name} v${running.version ?? '?'} is being rebuilt by this service`,
        );
      const job = await rebuilds.start(projection);
      return reply.code(202).send({ rebuild: job });
    },
  );

  api.get('/rebuilds', async () => ({ rebuilds: rebuilds.list() }));

  // One rebuild; with `waitMs`, answers when it has finished (or the wait is over): a script or
  // a test can follow a rebuild without polling.
  api.get(
    '/rebuilds/:id',
    {
      schema: {
        params: params({ id: { type: 'integer', minimum: 1, maximum: maxInt } }),
        querystring: query({
          waitMs: { type: 'integer', minimum: 0, maximum: 60_000, default: 0 },
        }),
      },
    },
    async (request) => {
      const { id } = request.params as { id: number };
      const { waitMs } = request.query as { waitMs: number };
      const job = await rebuilds.settled(id, waitMs);
      if (!job)
        throw fail('rebuild_not_found', 'No such rebuild', `no rebuild ${id} in this process`);
      return { rebuild: job };
    },
  );

  api.get('/relay', async () => {
    const source = options.relay;
    if (!source)
      throw fail(
        'relay_not_configured',
        'No relay',
        'this service runs without Kafka (embedded mode): there is no relay',
      );
    if ('status' in source) {
      const s = await source.status();
      return {
        source: 'process',
        name: s.name,
        state: s.state,
        position: s.position,
        head: s.head,
        backlog: s.backlog,
        pastHead: s.pastHead,
        eventsPerSecond: s.eventsPerSecond,
        // Since this process started: their ratio is the events per transaction.
        published: s.published,
        transactions: s.transactions,
        lastPublishedAt: s.lastPublishedAt ?? null,
        lastError: s.lastError ?? null,
        refusal: s.refusal ?? null,
        partitions: s.partitions,
        parked: s.parked,
      };
    }
    // Another process runs the relay: what its committed progress says, checked against the store.
    const s = await source.inspect();
    return {
      source: 'progress',
      name: s.name,
      state: s.storeCheck === 'other_store' || s.storeCheck === 'past_head' ? 'refused' : 'unknown',
      storeCheck: s.storeCheck,
      position: s.published,
      head: s.head,
      backlog: s.backlog,
      pastHead: s.pastHead,
      partitions: s.partitions,
      parked: s.parked,
    };
  });

  api.get(
    '/streams',
    {
      schema: {
        querystring: query({
          prefix: { type: 'string', maxLength: 1000 },
          after: { type: 'string', maxLength: 1000 },
          limit: { type: 'integer', minimum: 1, maximum: 500, default: 50 },
        }),
      },
    },
    async (request) => {
      const q = request.query as { prefix?: string; after?: string; limit: number };
      const streams = await options.store.listStreams({
        limit: q.limit,
        ...(q.prefix ? { prefix: q.prefix } : {}),
        ...(q.after ? { after: q.after } : {}),
      });
      return {
        streams,
        next: streams.length === q.limit ? streams[streams.length - 1]!.streamId : null,
      };
    },
  );

  api.get(
    '/streams/:streamId/events',
    {
      schema: {
        params: params({ streamId }),
        querystring: query({
          from: { type: 'integer', minimum: 1, maximum: maxInt, default: 1 },
          limit: { type: 'integer', minimum: 1, maximum: 1000, default: 200 },
        }),
      },
    },
    async (request) => {
      const { streamId: id } = request.params as { streamId: string };
      const q = request.query as { from: number; limit: number };
      const version = await options.store.streamVersion(id);
      if (version === 0) throw new StreamNotFoundError(id);
      const events = await options.store.readStream(id, { fromVersion: q.from, maxCount: q.limit });
      return {
        streamId: id,
        version,
        events: events.map(eventView),
        stateAvailable: kindOf(id) !== undefined,
      };
    },
  );

  const kindOf = (id: string) =>
    // The longest prefix wins, so `order-` and `order-archive-` can have deciders of their own.
    [...(options.streams ?? [])]
      .filter((k) => id.startsWith(k.prefix))
      .sort((a, b) => b.prefix.length - a.prefix.length)[0];

  api.get(
    '/streams/:streamId/state',
    {
      schema: {
        params: params({ streamId }),
        querystring: {
          ...query({ version: { type: 'integer', minimum: 1, maximum: maxInt } }),
          required: ['version'],
        },
      },
    },
    async (request) => {
      const { streamId: id } = request.params as { streamId: string };
      const { version } = request.query as { version: number };
      const kind = kindOf(id);
      if (!kind)
        throw fail(
          'state_not_available',
          'No decider for this stream',
          `no decider is registered for stream ids like '${id}' (known prefixes: ${(options.streams ?? []).map((s) => s.prefix).join(', ') || 'none'})`,
        );
      const current = await options.store.streamVersion(id);
      if (current === 0) throw new StreamNotFoundError(id);
      if (version > current)
        throw fail('version_not_found', 'Version not found', `${id} is at version ${current}`);
      let state = kind.decider.initialState();
      // Bounded reads: a long stream is folded a page at a time.
      for (let from = 1; from <= version; from += 1000) {
        const page = await options.store.readStream(id, {
          fromVersion: from,
          toVersion: Math.min(version, from + 999),
        });
        for (const event of page) state = kind.decider.evolve(state, event as never);
      }
      return { streamId: id, version, currentVersion: current, state };
    },
  );
}
