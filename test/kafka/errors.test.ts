// The Kafka port's error classes: codes, translation of library errors, and their documentation.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { MultipleErrors, NetworkError, ProtocolError, UserError } from '@platformatic/kafka';
import { TidemarkError, UnavailableError } from 'tidemark';
import {
  KafkaOperationError,
  KafkaProducerFencedError,
  KafkaWireFormatError,
  KafkaHistoryTruncatedError,
  isProducerFenced,
  kafkaErrorClasses,
  translateKafkaError,
} from '../../src/kafka/internal.ts';

describe('kafka: errors', () => {
  it('each class has its own snake_case code and is a TidemarkError', () => {
    const all = [
      new KafkaProducerFencedError('tx'),
      new KafkaOperationError('op', 'm', undefined, false),
      new KafkaWireFormatError('ce_id', 'is missing'),
      new KafkaHistoryTruncatedError('t', 0, 5n, null),
    ];
    assert.equal(all.length, kafkaErrorClasses.length);
    assert.equal(new Set(all.map((e) => e.code)).size, all.length);
    for (const [i, e] of all.entries()) {
      assert.ok(e instanceof TidemarkError);
      assert.match(e.code, /^[a-z]+(_[a-z]+)*$/);
      assert.equal(e.name, kafkaErrorClasses[i]!.name);
    }
  });

  it('docs/kafka-client-notes.md lists every code with its class', () => {
    const text = readFileSync(new URL('../../docs/kafka-client-notes.md', import.meta.url), 'utf8');
    const rows = text
      .split('\n')
      .filter((line) => line.startsWith('| `kafka_'))
      .map((line) => line.split('|').map((c) => c.trim().replaceAll('`', '')))
      .map((cells) => [cells[1], cells[2]]);
    const actual = [
      new KafkaProducerFencedError('tx'),
      new KafkaOperationError('op', 'm', undefined, false),
      new KafkaWireFormatError('ce_id', 'is missing'),
      new KafkaHistoryTruncatedError('t', 0, 5n, null),
    ].map((e) => [e.code, e.name]);
    assert.deepEqual(rows.sort(), actual.sort());
  });

  it('translates a fence, found anywhere in the library error tree', () => {
    const fenced = new MultipleErrors('EndTxn failed', [new ProtocolError('PRODUCER_FENCED')]);
    const error = translateKafkaError(fenced, 'commitTransaction', { transactionalId: 'relay-1' });
    assert.ok(isProducerFenced(error));
    assert.equal(error.transactionalId, 'relay-1');
    assert.equal(error.cause, fenced);
    const epoch = translateKafkaError(new ProtocolError('INVALID_PRODUCER_EPOCH'), 'send', {
      transactionalId: 'r',
    });
    assert.ok(epoch instanceof KafkaProducerFencedError);
  });

  it('translates an unreachable broker to UnavailableError, and broker answers to KafkaOperationError', () => {
    const down = translateKafkaError(
      new MultipleErrors('metadata failed 3 times', [new NetworkError('Connection refused')]),
      'send',
    );
    assert.ok(down instanceof UnavailableError);
    assert.equal(down.retryable, true);

    const exists = translateKafkaError(new ProtocolError('TOPIC_ALREADY_EXISTS'), 'createTopic');
    assert.ok(exists instanceof KafkaOperationError);
    assert.equal(exists.brokerError, 'TOPIC_ALREADY_EXISTS');
    assert.equal(exists.retryable, false);

    const retryable = translateKafkaError(new ProtocolError('NOT_COORDINATOR'), 'commitOffsets');
    assert.ok(retryable instanceof KafkaOperationError);
    assert.equal(retryable.retryable, true);

    const missing = translateKafkaError(new UserError('Unknown topic orders.'), 'send');
    assert.ok(missing instanceof KafkaOperationError);
    assert.equal(missing.brokerError, 'UNKNOWN_TOPIC_OR_PARTITION');
  });
});
