/**
 * W3C trace context across Tidemark: from an HTTP request into the metadata of the events it
 * causes, from there into Kafka headers, and into projection handling. Spans go through the
 * OpenTelemetry API, a no-op until the application registers an SDK; the trace context itself
 * travels either way, so logs on every side can be joined by trace id.
 *
 * traceparent grammar (W3C Trace Context, version 00):
 *   traceparent = version "-" trace-id "-" parent-id "-" trace-flags
 *   version = 2HEXDIGLC, trace-id = 32HEXDIGLC (not all zero), parent-id = 16HEXDIGLC (not all
 *   zero), trace-flags = 2HEXDIGLC. A later version may append "-" fields; version ff is invalid.
 */
import { randomBytes } from 'node:crypto';
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Span,
  type SpanContext,
} from '@opentelemetry/api';

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

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

/** The span context a traceparent names, or undefined when it is missing or invalid. */
export function parseTraceparent(header: unknown): SpanContext | undefined {
  if (typeof header !== 'string') return undefined;
  const match = TRACEPARENT.exec(header.trim());
  if (!match) return undefined;
  const [, version, traceId, spanId, flags, rest] = match as unknown as [
    string,
    string,
    string,
    string,
    string,
    string?,
  ];
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  if (traceId === ZERO_TRACE || spanId === ZERO_SPAN) return undefined;
  return {
    traceId,
    spanId,
    traceFlags: parseInt(flags, 16) & 0xff,
    isRemote: true,
  };
}

export function formatTraceparent(context: SpanContext): string {
  return `00-${context.traceId}-${context.spanId}-${(context.traceFlags & 0xff).toString(16).padStart(2, '0')}`;
}

/** The trace id of a traceparent (for logs), if it is valid. */
export function traceIdOf(traceparent: unknown): string | undefined {
  return parseTraceparent(traceparent)?.traceId;
}

/**
 * Starts a span as a child of the given traceparent (a new trace when there is none) and gives
 * the traceparent to hand on: the span's own when an SDK records it, otherwise the incoming one
 * unchanged, or a fresh one so the work can still be followed in logs.
 */
export function startSpan(
  name: string,
  kind: SpanKind,
  parent: { traceparent?: unknown; tracestate?: unknown },
  attributes: Attributes = {},
): { span: Span; traceparent: string; tracestate: string | undefined } {
  const remote = parseTraceparent(parent.traceparent);
  const parentContext: Context = remote ? trace.setSpanContext(ROOT_CONTEXT, remote) : ROOT_CONTEXT;
  const span = tracer().startSpan(name, { kind, attributes }, parentContext);
  const own = span.spanContext();
  const valid = own.traceId !== ZERO_TRACE && own.spanId !== ZERO_SPAN;
  const traceparent = valid
    ? formatTraceparent(own)
    : remote
      ? formatTraceparent(remote)
      : `00-${randomHex(32)}-${randomHex(16)}-00`;
  const tracestate =
    typeof parent.tracestate === 'string' && parent.tracestate !== ''
      ? parent.tracestate
      : undefined;
  return { span, traceparent, tracestate };
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
