/**
 * How Tidemark reaches a Kafka cluster: bootstrap brokers plus optional TLS and SASL, and how
 * that maps onto @platformatic/kafka's client options. docs/kafka-clusters.md describes the
 * environment variables {@link kafkaConnectionFromEnv} reads.
 */
import { readFileSync } from 'node:fs';
import type { ConnectionOptions as TlsOptions } from 'node:tls';
import type { BaseOptions, SASLOptions } from '@platformatic/kafka';
import { InvalidArgumentError } from '../core/errors.ts';

/** SASL mechanisms Tidemark configures from the environment. */
export type KafkaSaslMechanism = 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512';

const SASL_MECHANISMS: readonly KafkaSaslMechanism[] = ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'];

/** Where and how to connect. Shared by every client the port creates. */
export interface KafkaConnection {
  /** Bootstrap brokers as `host:port`; use addresses such as 127.0.0.1, not `localhost`. */
  readonly brokers: readonly string[];
  /** Sent to brokers with every request; shows up in broker logs and quotas. Default `tidemark`. */
  readonly clientId?: string;
  /**
   * TLS: `true` for TLS with the system's CAs, or Node's `tls.connect` options (`ca`, `cert`,
   * `key`, `servername`, `rejectUnauthorized`, ...). Unset: plaintext.
   */
  readonly tls?: boolean | TlsOptions;
  /** SASL authentication; combine with `tls` unless the network is trusted (SASL_PLAINTEXT). */
  readonly sasl?: {
    readonly mechanism: KafkaSaslMechanism;
    readonly username: string;
    readonly password: string;
  };
  /** Time allowed to open a TCP (and TLS) connection. Default 5000 ms. */
  readonly connectTimeoutMs?: number;
  /** Time a request may wait for its answer before the client gives up. Default 30000 ms. */
  readonly requestTimeoutMs?: number;
}

function parseBool(name: string, value: string | undefined): boolean | undefined {
  if (value === undefined || value === '') return undefined;
  if (/^(1|true|yes|on)$/i.test(value)) return true;
  if (/^(0|false|no|off)$/i.test(value)) return false;
  throw new InvalidArgumentError(name, `expected true or false, got '${value}'`);
}

/** Splits `a:1,b:2` into trimmed `host:port` entries, checking each has a numeric port. */
export function parseBrokers(value: string, name = 'KAFKA_BROKERS'): string[] {
  const brokers = value
    .split(',')
    .map((b) => b.trim())
    .filter(Boolean);
  if (brokers.length === 0) throw new InvalidArgumentError(name, 'no broker given');
  for (const broker of brokers) {
    if (!/^[^\s:]+:\d+$/.test(broker) && !/^\[[0-9a-fA-F:]+\]:\d+$/.test(broker)) {
      throw new InvalidArgumentError(name, `'${broker}' is not host:port`);
    }
  }
  return brokers;
}

/**
 * Reads a connection from environment variables named `<prefix>BROKERS`, `<prefix>SSL`, ...
 * (prefix `KAFKA_` by default). Returns undefined when `<prefix>BROKERS` is unset or empty.
 * Call it at an entry point and pass the result down: library code reads no environment.
 *
 * | variable | meaning |
 * | --- | --- |
 * | `KAFKA_BROKERS` | comma-separated `host:port` list |
 * | `KAFKA_CLIENT_ID` | client id (default `tidemark`) |
 * | `KAFKA_SSL` | `true`: TLS |
 * | `KAFKA_SSL_CA_FILE`, `KAFKA_SSL_CERT_FILE`, `KAFKA_SSL_KEY_FILE` | PEM files (CA bundle; client certificate and key for mutual TLS); any of them implies TLS |
 * | `KAFKA_SSL_SERVERNAME` | TLS server name (SNI and certificate check) when it differs from the broker host |
 * | `KAFKA_SSL_REJECT_UNAUTHORIZED` | `false` accepts any certificate: development only |
 * | `KAFKA_SASL_MECHANISM` | `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512` |
 * | `KAFKA_SASL_USERNAME`, `KAFKA_SASL_PASSWORD` | SASL credentials |
 */
export function kafkaConnectionFromEnv(
  env: Readonly<Record<string, string | undefined>>,
  prefix = 'KAFKA_',
): KafkaConnection | undefined {
  const v = (name: string) => {
    const value = env[`${prefix}${name}`];
    return value === undefined || value.trim() === '' ? undefined : value.trim();
  };
  const brokersValue = v('BROKERS');
  if (!brokersValue) return undefined;
  const brokers = parseBrokers(brokersValue, `${prefix}BROKERS`);

  const caFile = v('SSL_CA_FILE');
  const certFile = v('SSL_CERT_FILE');
  const keyFile = v('SSL_KEY_FILE');
  const servername = v('SSL_SERVERNAME');
  const rejectUnauthorized = parseBool(
    `${prefix}SSL_REJECT_UNAUTHORIZED`,
    v('SSL_REJECT_UNAUTHORIZED'),
  );
  const sslFlag = parseBool(`${prefix}SSL`, v('SSL'));
  const wantsTls = sslFlag ?? Boolean(caFile || certFile || keyFile || servername);
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new InvalidArgumentError(
      `${prefix}SSL_CERT_FILE`,
      `set both ${prefix}SSL_CERT_FILE and ${prefix}SSL_KEY_FILE, or neither`,
    );
  }
  let tls: boolean | TlsOptions | undefined;
  if (wantsTls) {
    const options: TlsOptions = {};
    const read = (name: string, path: string) => {
      try {
        return readFileSync(path);
      } catch (error) {
        throw new InvalidArgumentError(`${prefix}${name}`, `cannot read ${path}`, { cause: error });
      }
    };
    if (caFile) options.ca = read('SSL_CA_FILE', caFile);
    if (certFile && keyFile) {
      options.cert = read('SSL_CERT_FILE', certFile);
      options.key = read('SSL_KEY_FILE', keyFile);
    }
    if (servername) options.servername = servername;
    if (rejectUnauthorized !== undefined) options.rejectUnauthorized = rejectUnauthorized;
    tls = Object.keys(options).length > 0 ? options : true;
  }

  const mechanismValue = v('SASL_MECHANISM');
  let sasl: KafkaConnection['sasl'];
  if (mechanismValue) {
    const mechanism = mechanismValue.toUpperCase() as KafkaSaslMechanism;
    if (!SASL_MECHANISMS.includes(mechanism)) {
      throw new InvalidArgumentError(
        `${prefix}SASL_MECHANISM`,
        `'${mechanismValue}' is not one of ${SASL_MECHANISMS.join(', ')}`,
      );
    }
    const username = v('SASL_USERNAME');
    const password = env[`${prefix}SASL_PASSWORD`];
    if (!username || password === undefined) {
      throw new InvalidArgumentError(
        `${prefix}SASL_USERNAME`,
        `${prefix}SASL_MECHANISM needs ${prefix}SASL_USERNAME and ${prefix}SASL_PASSWORD`,
      );
    }
    sasl = { mechanism, username, password };
  }

  const clientId = v('CLIENT_ID');
  return {
    brokers,
    ...(clientId ? { clientId } : {}),
    ...(tls !== undefined ? { tls } : {}),
    ...(sasl ? { sasl } : {}),
  };
}

/**
 * The options every @platformatic/kafka client gets from a connection. `tls: true` becomes an
 * empty TLS options object (the library switches to TLS when that option is present).
 */
export function clientOptions(connection: KafkaConnection, role: string): BaseOptions {
  if (connection.brokers.length === 0)
    throw new InvalidArgumentError('brokers', 'at least one broker is needed');
  const options: BaseOptions = {
    clientId: `${connection.clientId ?? 'tidemark'}-${role}`,
    bootstrapBrokers: [...connection.brokers],
    connectTimeout: connection.connectTimeoutMs ?? 5000,
    requestTimeout: connection.requestTimeoutMs ?? 30_000,
  };
  if (connection.tls) options.tls = connection.tls === true ? {} : { ...connection.tls };
  if (connection.sasl) {
    const sasl: SASLOptions = {
      mechanism: connection.sasl.mechanism,
      username: connection.sasl.username,
      password: connection.sasl.password,
    };
    options.sasl = sasl;
  }
  return options;
}
