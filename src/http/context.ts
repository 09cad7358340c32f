/**
 * What the route registrars of the plugin share: its options resolved once, its instruments,
 * its error mapping and its OpenAPI document.
 */
import type { Counter, Histogram } from 'prom-client';
import type { IdempotencyStore, Logger } from '../core/index.ts';
import { counter, histogram, type Registry } from '../metrics.ts';
import type { Authenticator } from './auth.ts';
import type { OpenApiDocument } from './openapi.ts';
import type { ProblemMapper } from './problem.ts';
import type { Validators } from './validation.ts';

export interface HttpInstruments {
  requests: Counter<'method' | 'route' | 'status'>;
  commandSeconds: Histogram<'route'>;
  conflicts: Counter<'route'>;
  consistencyWaits: Counter<'outcome'>;
}

/** The plugin's metrics (names are part of the operations contract: docs/operations.md). */
export function httpInstruments(registry: Registry): HttpInstruments {
  return {
    requests: counter(registry, {
      name: 'tidemark_http_requests_total',
      help: 'HTTP requests answered, by route and status.',
      labelNames: ['method', 'route', 'status'],
    }),
    commandSeconds: histogram(registry, {
      name: 'tidemark_command_duration_seconds',
      help: 'Time to handle a command (load, decide, append), by command route.',
      labelNames: ['route'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    }),
    conflicts: counter(registry, {
      name: 'tidemark_command_conflicts_total',
      help: 'Commands refused because the stream moved (409/412 wrong_expected_version).',
      labelNames: ['route'],
    }),
    consistencyWaits: counter(registry, {
      name: 'tidemark_consistency_waits_total',
      help: 'Queries that waited for a consistency token, by outcome (fresh or stale).',
      labelNames: ['outcome'],
    }),
  };
}

export interface RouteContext {
  /** The prefix the plugin is registered under ('' for none). */
  prefix: string;
  bodyLimit: number;
  validators: Validators;
  toProblem: ProblemMapper;
  instruments: HttpInstruments;
  openapi: OpenApiDocument;
  logger: Logger | undefined;
  /** Guards the routes by role; undefined: open. */
  auth: Authenticator | undefined;
}

/** What command routes need beyond the shared context. */
export interface CommandContext extends RouteContext {
  idempotency: IdempotencyStore | undefined;
  idempotencyLeaseMs: number;
}
