/**
 * W3C trace context across Tidemark: from an HTTP request into the metadata of the events it
 * causes, from there into Kafka headers, and into projection handling. Spans go through the
 * OpenTelemetry API, a no-op until the application registers an SDK; the trace context itself
 * travels either way, so logs on every side can be joined by trace id.
 *
 * The W3C Trace Context headers (`traceparent`, `tracestate`) are read and written by
 * OpenTelemetry's W3CTraceContextPropagator, so `tracestate` travels with the trace and a
 * malformed `traceparent` is refused the way every other OpenTelemetry service refuses it.
 */
import { randomBytes } from 'node:crypto';
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  defaultTextMapGetter,
  defaultTextMapSetter,
  isSpanContextValid,
  trace,
  type Attributes,
  type Span,
  type SpanContext,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';

const propagator = new W3CTraceContextPropagator();

export const tracer = () => trace.getTracer('tidemark');

// Random ids come from a pool refilled 4 KiB at a time: one randomBytes call per id would cost a
// system call per request.
let pool = Buffer.alloc(0);
let used = 0;
function randomHex(length: number): string {
  const bytes = length / 2;
  if (used + bytes > pool.length) {
    pool = randomBytes(4096);
    used = 0;
  }
  const hex = pool.toString('hex', used, used + bytes);
  used += bytes;
  return hex === '0'.repeat(length) ? randomHex(length) : hex;
}

/** The span context a traceparent (and tracestate) name, or undefined when invalid. */
export function parseTraceparent(
  traceparent: unknown,
  tracestate?: unknown,
): SpanContext | undefined {
  const carrier: Record<string, unknown> = { traceparent, tracestate };
  return trace.getSpanContext(propagator.extract(ROOT_CONTEXT, carrier, defaultTextMapGetter));
}

/** The headers that carry a span context: `traceparent`, and `tracestate` when it has one. */
export function traceHeaders(context: SpanContext): { traceparent: string; tracestate?: string } {
  const carrier: Record<string, string> = {};
  propagator.inject(trace.setSpanContext(ROOT_CONTEXT, context), carrier, defaultTextMapSetter);
  return carrier as { traceparent: string; tracestate?: string };
}

export function formatTraceparent(context: SpanContext): string {
  return traceHeaders(context).traceparent;
}

/** The trace id of a traceparent (for logs), if it is valid. */
export function traceIdOf(traceparent: unknown): string | undefined {
  return parseTraceparent(traceparent)?.traceId;
}

/**
 * Starts a span as a child of the given trace context (a new trace when there is none) and gives
 * the trace context to hand on: the span's own when an SDK records it, otherwise the incoming one
 * unchanged (tracestate included), or a fresh one so the work can still be followed in logs.
 */
export function startSpan(
  name: string,
  kind: SpanKind,
  parent: { traceparent?: unknown; tracestate?: unknown },
  attributes: Attributes = {},
): { span: Span; traceparent: string; tracestate: string | undefined } {
  const remote = parseTraceparent(parent.traceparent, parent.tracestate);
  const parentContext = remote ? trace.setSpanContext(ROOT_CONTEXT, remote) : ROOT_CONTEXT;
  const span = tracer().startSpan(name, { kind, attributes }, parentContext);
  // Without an SDK the span is the parent's context again, or invalid when there is no parent.
  const own = span.spanContext();
  const handed = isSpanContextValid(own)
    ? own
    : { traceId: randomHex(32), spanId: randomHex(16), traceFlags: TraceFlags.NONE };
  const headers = traceHeaders(handed);
  return { span, traceparent: headers.traceparent, tracestate: headers.tracestate };
}

/** Ends a span with the outcome of the work. */
export function endSpan(span: Span, error?: unknown): void {
  if (error !== undefined) {
    span.recordException(error instanceof Error ? error : String(error));
    span.setStatus({
      code: SpanStatusCode.ERROR,
      message: error instanceof Error ? error.message : String(error),
    });
  }
  span.end();
}

export { SpanKind };
