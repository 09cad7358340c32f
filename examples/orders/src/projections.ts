/**
 * The Orders read models. Plain SQL both SQLite and PostgreSQL accept; table names always go
 * through `table()` so a new version can be built beside the old one.
 */
import { defineProjection, type RecordedEvent, type SqlExecutor } from 'tidemark';
import {
  eventTypes,
  orderDecider,
  orderView,
  type OrderEvent,
  type OrderState,
  type OrderView,
} from './domain.ts';

type OrderRecorded = RecordedEvent<OrderEvent>;

function stateOf(view: OrderView | undefined): OrderState {
  if (!view) return orderDecider.initialState();
  const { orderId, customerId, status, lines, createdAt, updatedAt } = view;
  return { orderId, customerId, status, lines, createdAt, updatedAt };
}

/** The order's view after `event`, folded with the decider's own `evolve`: one truth for both sides. */
function next(previous: OrderView | undefined, event: OrderRecorded): OrderView | undefined {
  return orderView(orderDecider.evolve(stateOf(previous), event), event.streamVersion);
}

async function loadDoc(
  sql: SqlExecutor,
  table: string,
  orderId: string,
): Promise<OrderView | undefined> {
  const [row] = await sql.query<{ doc: string }>(`SELECT doc FROM ${table} WHERE order_id = $1`, [
    orderId,
  ]);
  return row ? (JSON.parse(row.doc) as OrderView) : undefined;
}

/** Order ids are the stream ids without their `order-` prefix. */
export const orderIdOf = (streamId: string) => streamId.slice('order-'.length);

/** GET /orders/{id}: one row per order, the whole view as JSON. */
export const orderDetails = defineProjection<OrderEvent>({
  name: 'order-details',
  version: 1,
  handles: eventTypes,
  tables: ['orders'],
  async init({ sql, table }) {
    await sql.execute(`CREATE TABLE ${table('orders')} (
      order_id TEXT PRIMARY KEY,
      version BIGINT NOT NULL,
      doc TEXT NOT NULL
    )`);
  },
  async apply(event, { sql, table }) {
    const orders = table('orders');
    const orderId = orderIdOf(event.streamId);
    const view = next(await loadDoc(sql, orders, orderId), event);
    if (!view) return;
    await sql.execute(
      `INSERT INTO ${orders} (order_id, version, doc) VALUES ($1, $2, $3)
       ON CONFLICT (order_id) DO UPDATE SET version = excluded.version, doc = excluded.doc`,
      [orderId, view.version, JSON.stringify(view)],
    );
  },
});

/** GET /orders?customerId=&status=: keyed for filtering and keyset pagination in creation order. */
export const orderList = defineProjection<OrderEvent>({
  name: 'order-list',
  version: 1,
  handles: eventTypes,
  tables: ['order_list'],
  async init({ sql, table }) {
    const t = table('order_list');
    await sql.execute(`CREATE TABLE ${t} (
      order_id TEXT PRIMARY KEY,
      customer_id TEXT NOT NULL,
      status TEXT NOT NULL,
      created_position BIGINT NOT NULL,
      doc TEXT NOT NULL
    )`);
    await sql.execute(`CREATE UNIQUE INDEX ${t}_created ON ${t} (created_position)`);
    await sql.execute(`CREATE INDEX ${t}_customer ON ${t} (customer_id, created_position)`);
    await sql.execute(`CREATE INDEX ${t}_status ON ${t} (status, created_position)`);
    await sql.execute(
      `CREATE INDEX ${t}_customer_status ON ${t} (customer_id, status, created_position)`,
    );
  },
  async apply(event, { sql, table }) {
    const t = table('order_list');
    const orderId = orderIdOf(event.streamId);
    const view = next(await loadDoc(sql, t, orderId), event);
    if (!view) return;
    // created_position orders the list oldest first; it is the global position of OrderCreated.
    await sql.execute(
      `INSERT INTO ${t} (order_id, customer_id, status, created_position, doc) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (order_id) DO UPDATE SET status = excluded.status, doc = excluded.doc`,
      [orderId, view.customerId, view.status, event.position, JSON.stringify(view)],
    );
  },
});

/** What one order adds to its customer's summary. */
function contribution(view: OrderView | undefined) {
  if (!view) return { count: 0, open: 0, spent: 0 };
  const spent = view.status === 'confirmed' || view.status === 'shipped' ? view.totalCents : 0;
  return { count: 1, open: view.status === 'open' ? 1 : 0, spent };
}

/**
 * GET /customers/{id}/summary: a multi-stream projection (one row per customer, fed by every
 * order stream). Confirm, cancel and ship events carry neither the customer nor the total, so
 * the projection keeps each order's view beside the summary and applies the difference.
 */
export const customerSummary = defineProjection<OrderEvent>({
  name: 'customer-summary',
  version: 1,
  handles: eventTypes,
  tables: ['customer_summary', 'customer_orders'],
  async init({ sql, table }) {
    await sql.execute(`CREATE TABLE ${table('customer_summary')} (
      customer_id TEXT PRIMARY KEY,
      order_count BIGINT NOT NULL,
      open_orders BIGINT NOT NULL,
      total_spent_cents BIGINT NOT NULL
    )`);
    await sql.execute(`CREATE TABLE ${table('customer_orders')} (
      order_id TEXT PRIMARY KEY,
      doc TEXT NOT NULL
    )`);
  },
  async apply(event, { sql, table }) {
    const summary = table('customer_summary');
    const orders = table('customer_orders');
    const orderId = orderIdOf(event.streamId);
    const before = await loadDoc(sql, orders, orderId);
    const after = next(before, event);
    if (!after) return;
    await sql.execute(
      `INSERT INTO ${orders} (order_id, doc) VALUES ($1, $2)
       ON CONFLICT (order_id) DO UPDATE SET doc = excluded.doc`,
      [orderId, JSON.stringify(after)],
    );
    const b = contribution(before);
    const a = contribution(after);
    if (a.count === b.count && a.open === b.open && a.spent === b.spent) return;
    await sql.execute(
      `INSERT INTO ${summary} (customer_id, order_count, open_orders, total_spent_cents) VALUES ($1, $2, $3, $4)
       ON CONFLICT (customer_id) DO UPDATE SET
         order_count = ${summary}.order_count + excluded.order_count,
         open_orders = ${summary}.open_orders + excluded.open_orders,
         total_spent_cents = ${summary}.total_spent_cents + excluded.total_spent_cents`,
      [after.customerId, a.count - b.count, a.open - b.open, a.spent - b.spent],
    );
  },
});

export const orderProjections = [orderDetails, orderList, customerSummary];
