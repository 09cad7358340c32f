/**
 * Operational routes: liveness (`/health`), readiness (`/ready`), Prometheus metrics
 * (`/metrics`) and the OpenAPI document (`/openapi.json`).
 */
import type { FastifyInstance } from 'fastify';
import type { Registry } from '../metrics.ts';
import type { OpenApiDocument } from './openapi.ts';

export interface ReadinessCheck {
  /** Resolves with details when ready; throws (or resolves `ready: false`) when not. */
  (): Promise<{ ready: boolean; details?: Record<string, unknown> }>;
}

export interface OperationalOptions {
  metrics: Registry;
  readiness: ReadinessCheck | undefined;
  openapi: { document: OpenApiDocument; info: { title: string; version: string } } | undefined;
}

export function registerOperationalRoutes(app: FastifyInstance, options: OperationalOptions) {
  app.get('/health', async () => ({ status: 'ok' }));
  app.get('/ready', async (_request, reply) => {
    if (!options.readiness) return { ready: true };
    try {
      const report = await options.readiness();
      return reply.code(report.ready ? 200 : 503).send(report);
    } catch (error) {
      return reply.code(503).send({ ready: false, error: (error as Error).message });
    }
  });
  app.get('/metrics', async (_request, reply) =>
    reply.header('content-type', options.metrics.contentType).send(await options.metrics.metrics()),
  );
  const openapi = options.openapi;
  if (openapi) {
    // Built on the first request: every route of the plugin is registered by then.
    app.get('/openapi.json', async () => openapi.document.toJSON(openapi.info));
  }
}
