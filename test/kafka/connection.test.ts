// KAFKA_* environment variables to connection options, and those to the library's options.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { InvalidArgumentError } from 'tidemark';
import { clientOptions, kafkaConnectionFromEnv } from '../../src/kafka/internal.ts';

describe('kafka: connection from the environment', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tidemark-kafka-env-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('is undefined without brokers: Kafka is optional', () => {
    assert.equal(kafkaConnectionFromEnv({}), undefined);
    assert.equal(kafkaConnectionFromEnv({ KAFKA_BROKERS: '  ' }), undefined);
  });

  it('reads a plaintext broker list', () => {
    assert.deepEqual(kafkaConnectionFromEnv({ KAFKA_BROKERS: '127.0.0.1:9092, 10.0.0.2:9093' }), {
      brokers: ['127.0.0.1:9092', '10.0.0.2:9093'],
    });
  });

  it('rejects a broker without a port', () => {
    assert.throws(
      () => kafkaConnectionFromEnv({ KAFKA_BROKERS: 'kafka.internal' }),
      InvalidArgumentError,
    );
  });

  it('turns on TLS with KAFKA_SSL, with PEM files for CA and client certificate', () => {
    const ca = join(dir, 'ca.pem');
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    writeFileSync(ca, 'CA');
    writeFileSync(cert, 'CERT');
    writeFileSync(key, 'KEY');
    assert.deepEqual(kafkaConnectionFromEnv({ KAFKA_BROKERS: 'b:9093', KAFKA_SSL: 'true' }), {
      brokers: ['b:9093'],
      tls: true,
    });
    const connection = kafkaConnectionFromEnv({
      KAFKA_BROKERS: 'b:9093',
      KAFKA_SSL_CA_FILE: ca,
      KAFKA_SSL_CERT_FILE: cert,
      KAFKA_SSL_KEY_FILE: key,
      KAFKA_SSL_SERVERNAME: 'kafka.example.internal',
    });
    assert.ok(connection?.tls && typeof connection.tls === 'object');
    assert.equal(String(connection.tls.ca), 'CA');
    assert.equal(String(connection.tls.cert), 'CERT');
    assert.equal(String(connection.tls.key), 'KEY');
    assert.equal(connection.tls.servername, 'kafka.example.internal');
    assert.throws(
      () => kafkaConnectionFromEnv({ KAFKA_BROKERS: 'b:9093', KAFKA_SSL_CERT_FILE: cert }),
      InvalidArgumentError,
    );
    assert.throws(
      () =>
        kafkaConnectionFromEnv({
          KAFKA_BROKERS: 'b:9093',
          KAFKA_SSL_CA_FILE: join(dir, 'missing.pem'),
        }),
      InvalidArgumentError,
    );
  });

  it('reads SASL settings, and refuses an unknown mechanism or missing credentials', () => {
    assert.deepEqual(
      kafkaConnectionFromEnv({
        KAFKA_BROKERS: 'b:9094',
        KAFKA_SSL: '1',
        KAFKA_SASL_MECHANISM: 'scram-sha-512',
        KAFKA_SASL_USERNAME: 'relay',
        KAFKA_SASL_PASSWORD: 's3cret',
      })?.sasl,
      { mechanism: 'SCRAM-SHA-512', username: 'relay', password: 's3cret' },
    );
    assert.throws(
      () =>
        kafkaConnectionFromEnv({
          KAFKA_BROKERS: 'b:1',
          KAFKA_SASL_MECHANISM: 'GSSAPI',
          KAFKA_SASL_USERNAME: 'u',
          KAFKA_SASL_PASSWORD: 'p',
        }),
      InvalidArgumentError,
    );
    assert.throws(
      () => kafkaConnectionFromEnv({ KAFKA_BROKERS: 'b:1', KAFKA_SASL_MECHANISM: 'PLAIN' }),
      InvalidArgumentError,
    );
  });

  it('takes another prefix (tests use TIDEMARK_TEST_KAFKA_)', () => {
    assert.deepEqual(
      kafkaConnectionFromEnv(
        { TIDEMARK_TEST_KAFKA_BROKERS: '127.0.0.1:1', KAFKA_BROKERS: 'x:2' },
        'TIDEMARK_TEST_KAFKA_',
      ),
      {
        brokers: ['127.0.0.1:1'],
      },
    );
  });

  it('maps onto @platformatic/kafka options', () => {
    const options = clientOptions(
      {
        brokers: ['b:9093'],
        clientId: 'orders',
        tls: true,
        sasl: { mechanism: 'PLAIN', username: 'u', password: 'p' },
      },
      'relay',
    );
    assert.equal(options.clientId, 'orders-relay');
    assert.deepEqual(options.bootstrapBrokers, ['b:9093']);
    assert.deepEqual(options.tls, {});
    assert.deepEqual(options.sasl, { mechanism: 'PLAIN', username: 'u', password: 'p' });
    assert.equal(clientOptions({ brokers: ['b:1'] }, 'admin').tls, undefined);
  });
});
