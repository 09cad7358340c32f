/**
 * Trace context across Kafka: a trace id sent with a command is on its event in Kafka (the
 * `traceparent` header) and in the log line of the projector that applied it from Kafka.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import type { Logger } from 'tidemark';
import { KafkaAdmin, KafkaReader, decodeEvent } from '../../src/kafka/internal.ts';
import { createOrdersService } from '../../examples/orders/src/app.ts';
import { kafkaConnection, uniqueName, uniqueTopic } from '../support/services.ts';

const dir = mkdtempSync(join(tmpdir(), 'tidemark-kafka-trace-'));
const topic = uniqueTopic('traced');
after(async () => {
  rmSync(dir, { recursive: true, force: true });
  const admin = new KafkaAdmin(kafkaConnection());
  await admin.deleteTopic(topic, { ifExists: true });
  await admin.close();
});

/** Records every line; `next(test)` resolves with the first (seen or coming) that passes. */
function capturingLogger() {
  const lines: Record<string, unknown>[] = [];
  const waiters: {
    test: (l: Record<string, unknown>) => boolean;
    resolve: (l: Record<string, unknown>) => void;
  }[] = [];
  const log = (obj: object, msg?: string) => {
    const line = { ...obj, msg };
    lines.push(line);
    for (const w of waiters.filter((w) => w.test(line))) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(line);
    }
  };
  const logger: Logger = {
    debug: log,
    info: log,
    warn: log,
    error: log,
    isLevelEnabled: () => true,
  };
  const next = (test: (l: Record<string, unknown>) => boolean) =>
    new Promise<Record<string, unknown>>((resolve) => {
      const seen = lines.find(test);
      if (seen) resolve(seen);
      else waiters.push({ test, resolve });
    });
  return { logger, next };
}

it(
  'a trace id sent with a command reaches Kafka and the Kafka-fed projector',
  { timeout: 120_000 },
  async () => {
    const { logger, next } = capturingLogger();
    const service = await createOrdersService({
      databaseUrl: join(dir, 'orders.db'),
      logger,
      kafka: {
        connection: kafkaConnection(),
        topic,
        partitions: 2,
        relayName: uniqueName('traced'),
        groupPrefix: uniqueName('traced'),
      },
    });
    await service.start();
    try {
      const traceId = '5b8efff798038103d269b633813fc60c';
      const created = await service.app.inject({
        method: 'POST',
        url: '/orders',
        headers: {
          traceparent: `00-${traceId}-eee19b7ec3c1b174-01`,
          'x-correlation-id': 'corr-kafka',
        },
        payload: { orderId: 'traced-1', customerId: 'c', lines: [] },
      });
      assert.equal(created.statusCode, 201);
      const token = String(created.headers['consistency-token']);
      const read = await service.app.inject({
        url: '/orders/traced-1',
        headers: { 'consistency-token': token },
      });
      assert.equal(read.headers.consistency, 'fresh');

      const reader = new KafkaReader(kafkaConnection());
      const [record] = await reader.readAll(topic);
      await reader.close();
      const header = record!.headers.get('traceparent')?.toString('utf8');
      assert.match(header ?? '', new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
      const event = decodeEvent(record!);
      assert.equal(event.metadata.correlationId, 'corr-kafka');

      const applied = await next(
        (l) =>
          l.msg === 'event applied' &&
          l.eventId === event.eventId &&
          l.projection === 'order-details',
      );
      assert.equal(applied.traceId, traceId);
      assert.equal(applied.correlationId, 'corr-kafka');
    } finally {
      await service.stop();
    }
  },
);
