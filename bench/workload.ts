/**
 * What every implementation of a scenario does, defined once: the event, the aggregate's fold,
 * the read model and its SQL. Tidemark, the raw drivers and Emmett all use these, so they store,
 * read and project the same bytes with the same statements.
 */

/** The event body: about 130 bytes of JSON, like an order line. */
export const payload = {
  sku: 'SKU-000123',
  quantity: 3,
  unitPriceCents: 1299,
  note: 'x'.repeat(80),
};
export const payloadJson = JSON.stringify(payload);
export const eventType = 'ItemAdded';

/** The aggregate state the load scenarios fold: a count and two sums. */
export interface Totals {
  events: number;
  quantity: number;
  amountCents: number;
}
export const initialTotals = (): Totals => ({ events: 0, quantity: 0, amountCents: 0 });
export function foldTotals(state: Totals, data: typeof payload): Totals {
  return {
    events: state.events + 1,
    quantity: state.quantity + data.quantity,
    amountCents: state.amountCents + data.quantity * data.unitPriceCents,
  };
}

/**
 * The catch-up read model: one row per stream, upserted once per event. Valid on SQLite and
 * PostgreSQL; parameters `$1` stream id, `$2` quantity (`?` for drivers that want it).
 */
export const readModelTable = 'bench_stream_totals';
export const createReadModelSql = `CREATE TABLE IF NOT EXISTS ${readModelTable} (
  stream_id TEXT PRIMARY KEY,
  events BIGINT NOT NULL,
  quantity BIGINT NOT NULL
)`;
export const upsertSql = `INSERT INTO ${readModelTable} (stream_id, events, quantity) VALUES ($1, 1, $2)
  ON CONFLICT (stream_id) DO UPDATE SET events = ${readModelTable}.events + 1,
  quantity = ${readModelTable}.quantity + excluded.quantity`;
export const upsertSqlQ = upsertSql.replace('$1', '?').replace('$2', '?');

/** Streams the append and catch-up scenarios spread their events over. */
export const streamOf = (i: number, streams = 1000) => `order-${i % streams}`;

/** Arguments of an append workload. */
export interface AppendArgs {
  /** A SQLite file, or a postgres:// URL. */
  target: string;
  /** A schema of its own, on PostgreSQL. */
  schema?: string;
  perCall: number;
  streams: number;
  /** Connections, on PostgreSQL. */
  poolSize?: number;
}

/** Arguments of a load workload: `streams` streams of `length` events, loaded in turn. */
export interface LoadArgs {
  target: string;
  schema?: string;
  streams: number;
  length: number;
  snapshot: boolean;
}

/** Arguments of a catch-up measurement process. */
export interface CatchUpArgs {
  scenario: string;
  impl: string;
  unit: string;
  /** The store: a SQLite file or a postgres:// URL (with `schema`). */
  target: string;
  schema?: string;
  /** Where the read model goes (SQLite: the store's file; PostgreSQL: a schema). */
  readModelSchema?: string;
  events: number;
  batchSize: number;
  /** Tidemark only: the projection sets `deferWrites` (its writes sent many per round trip). */
  deferWrites?: boolean;
}
