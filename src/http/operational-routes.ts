/**
 * Operational routes: liveness (`/health`), readiness (`/ready`), Prometheus metrics
 * (`/metrics`) and the OpenAPI document (`/openapi.json`).
 */
import type { FastifyInstance } from 'fastify';
import type { Registry } from '../metrics.ts';
import type { AuthHook } from './auth.ts';
import type { OpenApiDocument } from './openapi.ts';
import type { JsonSchema } from './validation.ts';

export interface ReadinessCheck {
  /** Resolves with details when ready; throws (or resolves `ready: false`) when not. */
  (): Promise<{ ready: boolean; details?: Record<string, unknown> }>;
}

export interface OperationalOptions {
  metrics: Registry;
  readiness: ReadinessCheck | undefined;
  openapi: { document: OpenApiDocument; info: { title: string; version: string } } | undefined;
  /** Guards /ready, /metrics and /openapi.json; /health stays open for liveness probes. */
  guard: AuthHook | undefined;
}

export function registerOperationalRoutes(app: FastifyInstance, options: OperationalOptions) {
  const guarded = options.guard ? { onRequest: options.guard } : {};
  app.get('/health', async () => ({ status: 'ok' }));
  app.get('/ready', guarded, async (_request, reply) => {
    if (!options.readiness) return { ready: true };
    try {
      const report = await options.readiness();
      return reply.code(report.ready ? 200 : 503).send(report);
    } catch (error) {
      return reply.code(503).send({ ready: false, error: (error as Error).message });
    }
  });
  app.get('/metrics', guarded, async (_request, reply) =>
    reply.header('content-type', options.metrics.contentType).send(await options.metrics.metrics()),
  );
  const openapi = options.openapi;
  if (openapi) {
    // Built on the first request: every route of the plugin is registered by then.
    app.get('/openapi.json', guarded, async () => openapi.document.toJSON(openapi.info));
    describe(openapi.document, app.prefix);
  }
}

const READY_REPORT = {
  type: 'object',
  required: ['ready'],
  properties: {
    ready: { type: 'boolean' },
    details: { type: 'object', description: "The service's own report (projections, relay, …)" },
    error: { type: 'string', description: 'Why readiness could not be told' },
  },
};

/** The operational routes in the OpenAPI document. */
function describe(document: OpenApiDocument, prefix: string): void {
  const json = (schema: JsonSchema) => ({ 'application/json': { schema } });
  document.add(`${prefix}/health`, 'GET', {
    summary: 'Liveness: the process answers',
    responses: {
      '200': {
        description: 'Alive',
        content: json({
          type: 'object',
          required: ['status'],
          properties: { status: { const: 'ok' } },
        }),
      },
    },
  });
  document.add(`${prefix}/ready`, 'GET', {
    summary: 'Readiness: 200 when every check passes, 503 with the report when not',
    responses: {
      '200': { description: 'Ready', content: json(READY_REPORT) },
      '503': { description: 'Not ready (or closing)', content: json(READY_REPORT) },
    },
  });
  document.add(`${prefix}/metrics`, 'GET', {
    summary: 'Prometheus metrics (text exposition format)',
    responses: {
      '200': { description: 'Metrics', content: { 'text/plain': { schema: { type: 'string' } } } },
    },
  });
  document.add(`${prefix}/openapi.json`, 'GET', {
    summary: 'This document',
    responses: { '200': { description: 'OpenAPI 3.1', content: json({ type: 'object' }) } },
  });
}
