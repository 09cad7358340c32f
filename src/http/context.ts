/**
 * What the route registrars of the plugin share: its options resolved once, its instruments,
 * its error mapping and its OpenAPI document.
 */
import type { IdempotencyStore, Logger } from '../core/index.ts';
import type { Counter, Histogram, MetricsRegistry } from './metrics.ts';
import type { OpenApiDocument } from './openapi.ts';
import type { ProblemMapper } from './problem.ts';
import type { Validators } from './validation.ts';

export interface HttpInstruments {
  requests: Counter;
  commandSeconds: Histogram;
  conflicts: Counter;
  consistencyWaits: Counter;
}

/** The plugin's metrics (names are part of the operations contract: docs/operations.md). */
export function httpInstruments(metrics: MetricsRegistry): HttpInstruments {
  return {
    requests: metrics.counter(
      'tidemark_http_requests_total',
      'HTTP requests answered, by route and status.',
    ),
    commandSeconds: metrics.histogram(
      'tidemark_command_duration_seconds',
      'Time to handle a command (load, decide, append), by command route.',
    ),
    conflicts: metrics.counter(
      'tidemark_command_conflicts_total',
      'Commands refused because the stream moved (409/412 wrong_expected_version).',
    ),
    consistencyWaits: metrics.counter(
      'tidemark_consistency_waits_total',
      'Queries that waited for a consistency token, by outcome (fresh or stale).',
    ),
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
}

/** What command routes need beyond the shared context. */
export interface CommandContext extends RouteContext {
  idempotency: IdempotencyStore | undefined;
  idempotencyLeaseMs: number;
}
