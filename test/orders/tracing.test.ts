/**
 * Trace context travels from the HTTP request into the events it causes and into the
 * projector's handling (its log line), with no OpenTelemetry SDK configured.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  SpanKind,
  endSpan,
  formatTraceparent,
  parseTraceparent,
  startSpan,
  traceIdOf,
} from '../../src/tracing.ts';
import { startServiceProcess } from '../support/process.ts';

const dir = mkdtempSync(join(tmpdir(), 'tidemark-tracing-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('trace context', () => {
  it('parses and formats traceparent per W3C, refusing invalid ones', () => {
    const header = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const context = parseTraceparent(header)!;
    assert.equal(context.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
    assert.equal(context.spanId, '00f067aa0ba902b7');
    assert.equal(context.traceFlags, 1);
    assert.equal(formatTraceparent(context), header);
    assert.equal(
      traceIdOf('01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-extra'),
      '4bf92f3577b34da6a3ce929d0e0e4736',
    );
    for (const bad of [
      undefined,
      '',
      '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7',
      '00-00000000000000000000000000000000-00f067aa0ba902b7-01',
      '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01',
      'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01',
      '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra',
    ]) {
      assert.equal(parseTraceparent(bad), undefined, String(bad));
    }
  });

  it('keeps tracestate with the trace, and drops it with an invalid traceparent', () => {
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const tracestate = 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7';
    assert.equal(
      parseTraceparent(traceparent, tracestate)!.traceState!.get('congo'),
      't61rcWkgMzE',
    );
    // No SDK registered: the span is the parent's, and the context handed on is the incoming one.
    const child = startSpan('test', SpanKind.CONSUMER, { traceparent, tracestate });
    endSpan(child.span);
    assert.equal(child.traceparent, traceparent);
    assert.equal(child.tracestate, tracestate);
    const fresh = startSpan('test', SpanKind.CONSUMER, { traceparent: 'garbage', tracestate });
    assert.match(fresh.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
    assert.equal(fresh.tracestate, undefined);
  });

  it('a trace id sent with a command is on its event and in the projector log line', async () => {
    const service = await startServiceProcess({
      DATABASE_URL: join(dir, 'traced.db'),
      LOG_LEVEL: 'debug',
    });
    try {
      const traceId = '0af7651916cd43dd8448eb211c80319c';
      const created = await fetch(`${service.url}/orders`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          traceparent: `00-${traceId}-b7ad6b7169203331-01`,
          tracestate: 'vendor=opaque',
          'x-correlation-id': 'corr-trace-1',
        },
        body: JSON.stringify({ customerId: 'c', lines: [] }),
      });
      assert.equal(created.status, 201);
      const { orderId } = (await created.json()) as { orderId: string };
      const events = (await (await fetch(`${service.url}/orders/${orderId}/events`)).json()) as {
        events: { eventId: string; metadata: Record<string, string> }[];
      };
      const [event] = events.events;
      assert.equal(traceIdOf(event!.metadata.traceparent), traceId);
      assert.equal(event!.metadata.tracestate, 'vendor=opaque');
      assert.equal(event!.metadata.correlationId, 'corr-trace-1');
      for (const projection of ['order-details', 'order-list', 'customer-summary']) {
        const line = await service.waitForLog(
          (l) =>
            l.msg === 'event applied' &&
            l.eventId === event!.eventId &&
            l.projection === projection,
        );
        assert.equal(line.traceId, traceId);
        assert.equal(line.correlationId, 'corr-trace-1');
      }
      const commandLine = await service.waitForLog(
        (l) => l.msg === 'command handled' && l.traceId === traceId,
      );
      assert.equal(commandLine.status, 201);
    } finally {
      service.child.kill('SIGTERM');
      await service.exited;
    }
  });

  it('starts a trace when the request has none, so events can still be followed', async () => {
    const service = await startServiceProcess({ DATABASE_URL: join(dir, 'untraced.db') });
    try {
      const created = await fetch(`${service.url}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', traceparent: 'garbage' },
        body: JSON.stringify({ customerId: 'c', lines: [] }),
      });
      const { orderId } = (await created.json()) as { orderId: string };
      const events = (await (await fetch(`${service.url}/orders/${orderId}/events`)).json()) as {
        events: { metadata: Record<string, string> }[];
      };
      assert.match(events.events[0]!.metadata.traceparent!, /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
    } finally {
      service.child.kill('SIGTERM');
      await service.exited;
    }
  });
});
