/**
 * Connections to PostgreSQL as Tidemark uses them: a pool with bounded waits and timeouts, one
 * place that tells connection failures from SQL errors, and the retry-with-backoff loop that
 * carries operations over a restart of the server.
 */
import { setTimeout as delay } from 'node:timers/promises';
import pg from 'pg';
import { InvalidArgumentError, UnavailableError, isTidemarkError } from '../core/index.ts';

/** Connection settings shared by the store and the read-model sink. */
export interface PostgresConnectionOptions {
  /** A `postgres://user:password@host:port/database` URL. Or give `connection`, or `pool`. */
  connectionString?: string;
  /** Driver settings (host, port, user, ssl, …) when there is no URL. */
  connection?: pg.ClientConfig;
  /**
   * The schema Tidemark's tables live in. Default `public`. Lower-case letters, digits and
   * `_`, at most 48 characters (it is also part of the notification channel's name).
   */
  schema?: string;
  /** Connections in the pool. Default 10. */
  poolSize?: number;
  /** How long to wait for a connection (to open one, or for a free one), in ms. Default 5000. */
  connectionTimeoutMs?: number;
  /** Server-side limit on one statement, in ms (`statement_timeout`). Default 30 000. */
  statementTimeoutMs?: number;
  /** A session idle inside a transaction this long is ended by the server, in ms. Default 60 000. */
  idleInTransactionTimeoutMs?: number;
  /** Idle connections are closed after this long, in ms. Default 30 000. */
  idleTimeoutMs?: number;
  /**
   * For how long an operation keeps retrying when the database cannot be reached or a
   * connection breaks (a restart, a fail-over), with backoff, before it fails with
   * `unavailable`. Default 5000 ms; 0 fails at once.
   */
  reconnectWindowMs?: number;
  /** `application_name` shown in `pg_stat_activity`. Default `tidemark`. */
  applicationName?: string;
}

/** Settings checked and defaulted once. */
export interface ResolvedConnection {
  schema: string;
  /** The schema as a quoted SQL identifier. */
  quotedSchema: string;
  config: pg.PoolConfig;
  reconnectWindowMs: number;
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,47}$/;

function positiveInt(value: unknown, name: string, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new InvalidArgumentError(name, `must be an integer >= ${min}, got ${String(value)}`);
  }
  return value;
}

/** Checks a schema name and quotes it. */
export function checkSchema(schema: unknown): string {
  if (typeof schema !== 'string' || !SCHEMA_NAME.test(schema)) {
    throw new InvalidArgumentError(
      'schema',
      'must be lower-case letters, digits or "_", start with a letter or "_", at most 48 characters',
    );
  }
  return schema;
}

/** `"name"`: an identifier quoted for SQL. */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * int8 comes back from the driver as text by default, because it may not fit a JS number. Our
 * BIGINTs (positions, versions, counts) do in practice; a value that would not is handed out as
 * a BigInt rather than silently rounded. Set per pool, never on the driver's global table.
 */
function parseInt8(text: string): number | bigint {
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : BigInt(text);
}

const INT8_OID = 20;
const types = {
  getTypeParser(oid: number, format?: string) {
    if (oid === INT8_OID && format !== 'binary') return parseInt8;
    return pg.types.getTypeParser(oid, format as never);
  },
};

/** Checks and defaults the options; builds the pool configuration. */
export function resolveConnection(
  options: PostgresConnectionOptions,
  extra: { searchPath?: boolean } = {},
): ResolvedConnection {
  const schema = checkSchema(options.schema ?? 'public');
  if (options.connectionString === undefined && options.connection === undefined) {
    throw new InvalidArgumentError('connectionString', 'give a connection string or settings');
  }
  if (options.connectionString !== undefined && typeof options.connectionString !== 'string') {
    throw new InvalidArgumentError('connectionString', 'must be a string');
  }
  const config: pg.PoolConfig = {
    ...options.connection,
    ...(options.connectionString !== undefined
      ? { connectionString: options.connectionString }
      : {}),
    max: positiveInt(options.poolSize, 'poolSize', 10),
    connectionTimeoutMillis: positiveInt(options.connectionTimeoutMs, 'connectionTimeoutMs', 5000),
    idleTimeoutMillis: positiveInt(options.idleTimeoutMs, 'idleTimeoutMs', 30_000),
    statement_timeout: positiveInt(options.statementTimeoutMs, 'statementTimeoutMs', 30_000),
    idle_in_transaction_session_timeout: positiveInt(
      options.idleInTransactionTimeoutMs,
      'idleInTransactionTimeoutMs',
      60_000,
    ),
    application_name: options.applicationName ?? 'tidemark',
    // Without keep-alives a connection whose peer vanished (a host that died, a dropped NAT
    // entry) looks alive until the kernel gives up, which can take hours.
    keepAlive: true,
    // A script that forgets close() still exits once its connections are idle.
    allowExitOnIdle: true,
    keepAliveInitialDelayMillis: 10_000,
    types,
    ...(extra.searchPath ? { options: `-c search_path=${schema}` } : {}),
  };
  return {
    schema,
    quotedSchema: quoteIdent(schema),
    config,
    reconnectWindowMs: positiveInt(options.reconnectWindowMs, 'reconnectWindowMs', 5000, 0),
  };
}

// Errors the driver raises when the socket fails; it gives them no SQLSTATE, so some are only
// recognisable by their message. Kept here, in one place, with the codes.
const SOCKET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
]);
const DRIVER_MESSAGES = [
  'Connection terminated',
  'timeout exceeded when trying to connect',
  'connection error and is not queryable',
  'Client was closed and is not queryable',
  'Connection closed',
];

/**
 * True when `error` means the connection (not the SQL) failed: the server is down, restarting,
 * refusing connections, or the socket broke. A statement that failed this way may or may not
 * have run.
 */
export function isConnectionError(error: unknown): boolean {
  if (isTidemarkError(error, 'unavailable')) return true;
  if (error === null || typeof error !== 'object') return false;
  const { code, message } = error as { code?: unknown; message?: unknown };
  if (typeof code === 'string') {
    if (SOCKET_CODES.has(code)) return true;
    // Class 08: connection exception. 57P01..57P03: admin shutdown, crash shutdown, cannot
    // connect now (starting up or shutting down). 53300: too many connections.
    if (code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03') {
      return true;
    }
    if (code === '53300') return true;
  }
  if (typeof message === 'string') {
    for (const text of DRIVER_MESSAGES) if (message.includes(text)) return true;
  }
  return false;
}

/** The statement was cancelled (statement_timeout, or a cancel request). */
export function isCancelled(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === '57014';
}

/**
 * Errors worth trying again as they are: the connection failed, or the server gave up on the
 * transaction for a reason of its own (serialization failure, deadlock, lock or statement
 * timeout) rather than because of what it was asked.
 */
export function isTransientPostgresError(error: unknown): boolean {
  if (isConnectionError(error)) return true;
  const code = (error as { code?: unknown } | null)?.code;
  return code === '40001' || code === '40P01' || code === '55P03' || code === '57014';
}

/** Backoff for reconnect attempts: doubles from 50 ms up to 1 s, with jitter. */
export function nextBackoff(previous: number): number {
  const next = previous === 0 ? 50 : Math.min(previous * 2, 1000);
  return Math.round(next * (0.75 + Math.random() * 0.5));
}

/** Wraps a connection failure as `unavailable`, once. */
export function unavailable(component: string, error: unknown, what?: string): UnavailableError {
  if (isTidemarkError(error, 'unavailable')) return error as UnavailableError;
  const message = (error as Error | null)?.message ?? String(error);
  return new UnavailableError(component, what ? `${what}: ${message}` : message, { cause: error });
}

const guarded = new WeakSet<pg.PoolClient>();
const ignore = () => {};

/**
 * Takes a connection from the pool, retrying with backoff until `deadline` while the database
 * cannot be reached. Nothing has been sent when this fails, so retrying here is always safe.
 */
export async function connectWithRetry(
  pool: pg.Pool,
  component: string,
  deadline: number,
  isClosed: () => boolean,
): Promise<pg.PoolClient> {
  let wait = 0;
  for (;;) {
    try {
      const client = await pool.connect();
      if (!guarded.has(client)) {
        guarded.add(client);
        // A connection that breaks while checked out fails its query (handled by the caller)
        // and also emits 'error', which the pool listens for only while the client is idle:
        // unheard, it would be an uncaught exception.
        client.on('error', ignore);
      }
      return client;
    } catch (error) {
      if (isClosed() || !isConnectionError(error) || Date.now() >= deadline) {
        throw isConnectionError(error)
          ? unavailable(component, error, 'cannot connect to PostgreSQL')
          : error;
      }
      wait = nextBackoff(wait);
      await delay(Math.min(wait, Math.max(0, deadline - Date.now())));
    }
  }
}

/**
 * Runs an idempotent operation on a pooled connection, retrying it on a fresh connection with
 * backoff while connections fail, until `windowMs` has passed. Only for operations that may run
 * twice with the same effect (reads, and writes written to be repeatable).
 */
export async function withConnection<T>(
  pool: pg.Pool,
  component: string,
  windowMs: number,
  isClosed: () => boolean,
  run: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const deadline = Date.now() + windowMs;
  let wait = 0;
  for (;;) {
    const client = await connectWithRetry(pool, component, deadline, isClosed);
    try {
      const result = await run(client);
      client.release();
      return result;
    } catch (error) {
      const broken = isConnectionError(error);
      // A broken connection is destroyed, not returned to the pool; so is one whose statement
      // was cancelled (a timeout), in case the cancel left a session-level lock behind.
      client.release(broken || isCancelled(error) ? (error as Error) : undefined);
      if (!broken) throw error;
      if (isClosed() || Date.now() >= deadline) throw unavailable(component, error);
      wait = nextBackoff(wait);
      await delay(Math.min(wait, Math.max(0, deadline - Date.now())));
    }
  }
}

/** Creates a pool that logs, rather than crashes on, errors of idle connections. */
export function createPool(config: pg.PoolConfig, onIdleError: (error: Error) => void): pg.Pool {
  const pool = new pg.Pool(config);
  // An idle connection whose server went away emits 'error'; without a listener that would be
  // an uncaught exception. The pool drops the connection and opens a new one when needed.
  pool.on('error', onIdleError);
  return pool;
}

/** Refuses a string PostgreSQL's text type cannot hold (it has no NUL character). */
export function assertPgText(value: unknown, argument: string): asserts value is string {
  if (typeof value !== 'string') throw new InvalidArgumentError(argument, 'must be a string');
  if (value.includes('\u0000')) {
    throw new InvalidArgumentError(argument, 'must not contain the NUL character (U+0000)');
  }
}
