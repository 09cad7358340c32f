/**
 * The Orders read models. Plain SQL both SQLite and PostgreSQL accept; table names always go
 * through `table()` so a new version can be built beside the old one.
 *
 * Each projection has `apply` (one event) and `applyBatch` (many: one read of the touched orders,
 * the folding in memory, one write per table): the same effect, in a few statements per batch.
 */
import {
  defineProjection,
  isRedactedField,
  redactedField,
  type RecordedEvent,
  type SqlExecutor,
} from 'tidemark';
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
  const { orderId, customerId, status, lines, createdAt, updatedAt, shippingAddress } = view;
  return {
    orderId,
    customerId,
    status,
    lines,
    createdAt,
    updatedAt,
    ...(shippingAddress !== undefined ? { shippingAddress } : {}),
  };
}

/** The order's view after `event`, folded with the decider's own `evolve`: one truth for both sides. */
function next(previous: OrderView | undefined, event: OrderRecorded): OrderView | undefined {
  return orderView(orderDecider.evolve(stateOf(previous), event), event.streamVersion);
}

/** Order ids are the stream ids without their `order-` prefix. */
export const orderIdOf = (streamId: string) => streamId.slice('order-'.length);

/** Rows per multi-row statement: well under every driver's parameter limit. */
const CHUNK = 200;

/** The stored views of some orders, by id (absent ones are missing from the map). */
async function loadDocs(
  sql: SqlExecutor,
  table: string,
  orderIds: readonly string[],
): Promise<Map<string, OrderView>> {
  const docs = new Map<string, OrderView>();
  for (let i = 0; i < orderIds.length; i += CHUNK) {
    const chunk = orderIds.slice(i, i + CHUNK);
    const rows = await sql.query<{ order_id: string; doc: string }>(
      `SELECT order_id, doc FROM ${table} WHERE order_id IN (${chunk.map((_, k) => `$${k + 1}`).join(', ')})`,
      chunk,
    );
    for (const row of rows) docs.set(row.order_id, JSON.parse(row.doc) as OrderView);
  }
  return docs;
}

/**
 * `INSERT … VALUES (…), (…) ON CONFLICT (key) DO UPDATE SET …` in chunks. `update` lists
 * `column = expression` assignments (`excluded.<column>` is the new row's value).
 */
async function upsertRows(
  sql: SqlExecutor,
  table: string,
  columns: readonly string[],
  key: string,
  update: string,
  rows: readonly (readonly unknown[])[],
): Promise<void> {
  for (let i = 0; i < rows.length; i += CHUNK) {
    const chunk = rows.slice(i, i + CHUNK);
    const params: unknown[] = [];
    const tuples = chunk.map(
      (row) => `(${row.map((value) => `$${params.push(value)}`).join(', ')})`,
    );
    await sql.execute(
      `INSERT INTO ${table} (${columns.join(', ')}) VALUES ${tuples.join(', ')}
       ON CONFLICT (${key}) DO UPDATE SET ${update}`,
      params,
    );
  }
}

/**
 * Folds a batch into the views of the orders it touches. `before` holds each touched order's
 * stored view (the map is filled in place with the views after).
 */
function foldBatch(
  events: readonly OrderRecorded[],
  views: Map<string, OrderView>,
  onCreated?: (orderId: string, event: OrderRecorded) => void,
): Set<string> {
  const changed = new Set<string>();
  for (const event of events) {
    const orderId = orderIdOf(event.streamId);
    const view = next(views.get(orderId), event);
    if (!view) continue;
    if (event.type === 'OrderCreated') onCreated?.(orderId, event);
    views.set(orderId, view);
    changed.add(orderId);
  }
  return changed;
}

/**
 * The `forget` hook of the three read models: each keeps whole order views, so the views of the
 * forgotten customer's orders get their shipping address replaced by the redaction (the same
 * value a rebuild after forgetting produces). Idempotent.
 */
async function redactViews(
  sql: SqlExecutor,
  table: string,
  subject: string,
  streamIds: readonly string[],
): Promise<void> {
  const orderIds = streamIds.filter((s) => s.startsWith('order-')).map(orderIdOf);
  for (const [orderId, view] of await loadDocs(sql, table, orderIds)) {
    if (view.shippingAddress === undefined || isRedactedField(view.shippingAddress)) continue;
    view.shippingAddress = redactedField(subject);
    await sql.execute(`UPDATE ${table} SET doc = $1 WHERE order_id = $2`, [
      JSON.stringify(view),
      orderId,
    ]);
  }
}

const touched = (events: readonly OrderRecorded[]) => [
  ...new Set(events.map((e) => orderIdOf(e.streamId))),
];

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
  async apply(event, context) {
    await this.applyBatch!([event], context);
  },
  async applyBatch(events, { sql, table }) {
    const orders = table('orders');
    const views = await loadDocs(sql, orders, touched(events));
    const changed = foldBatch(events, views);
    await upsertRows(
      sql,
      orders,
      ['order_id', 'version', 'doc'],
      'order_id',
      'version = excluded.version, doc = excluded.doc',
      [...changed].map((id) => {
        const view = views.get(id)!;
        return [id, view.version, JSON.stringify(view)];
      }),
    );
  },
  forget({ subject, streamIds }, { sql, table }) {
    return redactViews(sql, table('orders'), subject, streamIds);
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
  async apply(event, context) {
    await this.applyBatch!([event], context);
  },
  async applyBatch(events, { sql, table }) {
    const t = table('order_list');
    const views = await loadDocs(sql, t, touched(events));
    // created_position orders the list oldest first: the global position of OrderCreated. It is
    // written when the row is made and never updated.
    const created = new Map<string, number>();
    const changed = foldBatch(events, views, (id, event) => created.set(id, event.position));
    const last = new Map(events.map((e) => [orderIdOf(e.streamId), e.position]));
    await upsertRows(
      sql,
      t,
      ['order_id', 'customer_id', 'status', 'created_position', 'doc'],
      'order_id',
      'status = excluded.status, doc = excluded.doc',
      [...changed].map((id) => {
        const view = views.get(id)!;
        // An order already stored keeps its created_position (the ON CONFLICT leaves it be); the
        // value offered is still unique, so no other unique index can object.
        const position = created.get(id) ?? last.get(id)!;
        return [id, view.customerId, view.status, position, JSON.stringify(view)];
      }),
    );
  },
  forget({ subject, streamIds }, { sql, table }) {
    return redactViews(sql, table('order_list'), subject, streamIds);
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
  async apply(event, context) {
    await this.applyBatch!([event], context);
  },
  async applyBatch(events, { sql, table }) {
    const summary = table('customer_summary');
    const orders = table('customer_orders');
    const views = await loadDocs(sql, orders, touched(events));
    const before = new Map([...views].map(([id, view]) => [id, contribution(view)]));
    const changed = foldBatch(events, views);
    const deltas = new Map<string, { count: number; open: number; spent: number }>();
    for (const id of changed) {
      const view = views.get(id)!;
      const b = before.get(id) ?? contribution(undefined);
      const a = contribution(view);
      const delta = deltas.get(view.customerId) ?? { count: 0, open: 0, spent: 0 };
      delta.count += a.count - b.count;
      delta.open += a.open - b.open;
      delta.spent += a.spent - b.spent;
      deltas.set(view.customerId, delta);
    }
    await upsertRows(
      sql,
      orders,
      ['order_id', 'doc'],
      'order_id',
      'doc = excluded.doc',
      [...changed].map((id) => [id, JSON.stringify(views.get(id))]),
    );
    await upsertRows(
      sql,
      summary,
      ['customer_id', 'order_count', 'open_orders', 'total_spent_cents'],
      'customer_id',
      `order_count = ${summary}.order_count + excluded.order_count,
       open_orders = ${summary}.open_orders + excluded.open_orders,
       total_spent_cents = ${summary}.total_spent_cents + excluded.total_spent_cents`,
      [...deltas]
        .filter(([, d]) => d.count !== 0 || d.open !== 0 || d.spent !== 0)
        .map(([customerId, d]) => [customerId, d.count, d.open, d.spent]),
    );
  },
  forget({ subject, streamIds }, { sql, table }) {
    return redactViews(sql, table('customer_orders'), subject, streamIds);
  },
});

export const orderProjections = [orderDetails, orderList, customerSummary];
