/**
 * The Orders HTTP contract (see the README): command and query routes declared for the
 * `tidemark/http` plugin. Nothing here knows about storage beyond the ports.
 */
import { createHash } from 'node:crypto';
import {
  fold,
  type CommandHandler,
  type EventStore,
  type RecordedEvent,
  type ReadModels,
} from 'tidemark';
import {
  HttpProblem,
  commandRoute,
  problem,
  queryRoute,
  schemaOf,
  type AnyCommandRoute,
  type AnyQueryRoute,
  type Problem,
} from 'tidemark/http';
import {
  MAX_LINES,
  MAX_QUANTITY,
  MAX_UNIT_PRICE_CENTS,
  orderDecider,
  orderView,
  type OrderCommand,
  type OrderEvent,
  type OrderLine,
  type OrderState,
  type OrderStatus,
  type OrderView,
} from './domain.ts';

export type OrderHandler = CommandHandler<OrderState, OrderCommand, OrderEvent>;

const ID = { type: 'string', minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9._~-]+$' };
const SKU = { type: 'string', minLength: 1, maxLength: 64, pattern: '^[^\\u0000-\\u001f/]+$' };
const line = schemaOf<OrderLine>({
  type: 'object',
  required: ['sku', 'quantity', 'unitPriceCents'],
  additionalProperties: false,
  properties: {
    sku: SKU,
    quantity: { type: 'integer', minimum: 1, maximum: MAX_QUANTITY },
    unitPriceCents: { type: 'integer', minimum: 0, maximum: MAX_UNIT_PRICE_CENTS },
  },
});
/** Printable text, lines allowed; no other control characters. */
const SHIPPING_ADDRESS = {
  type: 'string',
  minLength: 1,
  maxLength: 500,
  pattern: '^[^\\u0000-\\u0009\\u000b-\\u001f\\u007f]+$',
};
const orderParams = { type: 'object', required: ['orderId'], properties: { orderId: ID } };
const statuses: OrderStatus[] = ['open', 'confirmed', 'cancelled', 'shipped'];

export const streamIdOf = (orderId: string) => `order-${orderId}`;

/** A UUID-shaped order id derived from an Idempotency-Key (SHA-256, version nibble 8). */
export function idFromKey(key: string): string {
  const hex = createHash('sha256').update(`orders:create:${key}`).digest('hex');
  const variant = ((parseInt(hex[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

type Params = { orderId: string };
type Result = { nextExpectedVersion: number };

const answer = (result: Result, request: { params: Params }) => ({
  orderId: request.params.orderId,
  version: result.nextExpectedVersion,
});

export function orderCommandRoutes(handler: OrderHandler, newId: () => string): AnyCommandRoute[] {
  const create = commandRoute({
    method: 'POST',
    url: '/orders',
    summary: 'Create an order (version 1), with its first lines',
    body: schemaOf<{
      orderId?: string;
      customerId: string;
      lines: OrderLine[];
      shippingAddress?: string;
    }>({
      type: 'object',
      required: ['customerId', 'lines'],
      properties: {
        orderId: ID,
        customerId: { type: 'string', minLength: 1, maxLength: 128 },
        lines: { type: 'array', maxItems: MAX_LINES, items: line },
        // Personal data (docs/personal-data.md): stored sealed under the customer's key.
        shippingAddress: SHIPPING_ADDRESS,
      },
    }),
    handler,
    requireStream: false,
    successStatus: 201,
    // The id is chosen once per request, so streamId and command agree.
    streamId: (r) => streamIdOf(idFor(r)),
    command: (r) => ({
      type: 'CreateOrder',
      data: {
        orderId: idFor(r),
        customerId: r.body.customerId,
        lines: r.body.lines,
        at: r.at,
        ...(r.body.shippingAddress !== undefined
          ? { shippingAddress: r.body.shippingAddress }
          : {}),
      },
    }),
    response: (result, r) => ({ orderId: idFor(r), version: result.nextExpectedVersion }),
    location: (_result, r) => `/orders/${idFor(r)}`,
  });
  const ids = new WeakMap<object, string>();
  function idFor(r: { body: { orderId?: string }; headers: Record<string, unknown> }): string {
    if (r.body.orderId) return r.body.orderId;
    let id = ids.get(r.body);
    if (!id) {
      // With an Idempotency-Key the id follows from the key, so that a retry of a create whose
      // first attempt died after appending finds that order (and answers from it) instead of
      // creating another.
      const key = r.headers['idempotency-key'];
      id = typeof key === 'string' ? idFromKey(key) : newId();
      ids.set(r.body, id);
    }
    return id;
  }

  const simple = (
    url: `/orders/:orderId/${string}`,
    summary: string,
    command: (r: { params: Params; at: string }) => OrderCommand,
  ) =>
    commandRoute({
      method: 'POST',
      url,
      summary,
      params: orderParams,
      handler,
      streamId: (r) => streamIdOf(r.params.orderId),
      command,
      response: answer,
    });

  const addItem = commandRoute({
    method: 'POST',
    url: '/orders/:orderId/items',
    summary: 'Add an item (the same sku adds to its line)',
    params: orderParams,
    body: line,
    handler,
    streamId: (r) => streamIdOf(r.params.orderId),
    command: (r) => ({ type: 'AddItem', data: { ...r.body, at: r.at } }),
    response: answer,
  });
  const removeItem = commandRoute({
    method: 'DELETE',
    url: '/orders/:orderId/items/:sku',
    summary: 'Remove the whole line of a sku',
    params: { type: 'object', required: ['orderId', 'sku'], properties: { orderId: ID, sku: SKU } },
    handler,
    streamId: (r) => streamIdOf(r.params.orderId),
    command: (r) => ({ type: 'RemoveItem', data: { sku: r.params.sku, at: r.at } }),
    response: answer,
  });
  const cancel = commandRoute({
    method: 'POST',
    url: '/orders/:orderId/cancel',
    summary: 'Cancel an order (not once shipped)',
    params: orderParams,
    body: schemaOf<{ reason?: string }>({
      type: 'object',
      properties: { reason: { type: 'string', maxLength: 500 } },
    }),
    bodyOptional: true,
    handler,
    streamId: (r) => streamIdOf(r.params.orderId),
    command: (r) => ({ type: 'CancelOrder', data: { reason: r.body.reason, at: r.at } }),
    response: answer,
  });

  return [
    create,
    addItem,
    removeItem,
    simple('/orders/:orderId/confirm', 'Confirm an order (not an empty one)', (r) => ({
      type: 'ConfirmOrder',
      data: { at: r.at },
    })),
    cancel,
    simple('/orders/:orderId/ship', 'Ship a confirmed order', (r) => ({
      type: 'ShipOrder',
      data: { at: r.at },
    })),
  ];
}

const notFound = (orderId: string) =>
  new HttpProblem(404, 'order_not_found', 'Order not found', `there is no order ${orderId}`);

function encodeCursor(position: number): string {
  return Buffer.from(`p${position}`).toString('base64url');
}

function decodeCursor(cursor: string): number {
  const text = Buffer.from(cursor, 'base64url').toString();
  const match = /^p(\d{1,15})$/.exec(text);
  if (!match)
    throw new HttpProblem(
      400,
      'invalid_cursor',
      'Invalid cursor',
      'pass back a nextCursor unchanged',
    );
  return Number(match[1]);
}

function eventView(event: RecordedEvent) {
  return {
    eventId: event.eventId,
    type: event.type,
    streamVersion: event.streamVersion,
    position: event.position,
    schemaVersion: event.schemaVersion,
    data: event.data,
    metadata: event.metadata,
    recordedAt: event.recordedAt.toISOString(),
  };
}

export function orderQueryRoutes(readModels: ReadModels, store: EventStore): AnyQueryRoute[] {
  const getOrder = queryRoute({
    url: '/orders/:orderId',
    summary: 'An order, from the order-details read model',
    params: orderParams,
    projections: ['order-details'],
    handler: async ({ params, setHeader }) => {
      const orders = await readModels.table('order-details', 'orders');
      const [row] = await readModels.query<{ doc: string }>(
        `SELECT doc FROM ${orders} WHERE order_id = $1`,
        [params.orderId],
      );
      if (!row) throw notFound(params.orderId);
      const view = JSON.parse(row.doc) as OrderView;
      setHeader('etag', `"${view.version}"`);
      return view;
    },
  });

  const listOrders = queryRoute({
    url: '/orders',
    summary: 'Orders, oldest first, by customer and status, a page at a time',
    querystring: schemaOf<{
      customerId?: string;
      status?: OrderStatus;
      limit: number;
      cursor?: string;
    }>({
      type: 'object',
      properties: {
        customerId: { type: 'string', minLength: 1, maxLength: 128 },
        status: { type: 'string', enum: statuses },
        limit: { type: 'integer', minimum: 1, maximum: 100, default: 20 },
        cursor: { type: 'string', minLength: 1, maxLength: 100 },
      },
    }),
    projections: ['order-list'],
    handler: async ({ query }) => {
      const table = await readModels.table('order-list', 'order_list');
      const where: string[] = [];
      const params: unknown[] = [];
      if (query.customerId !== undefined)
        where.push(`customer_id = $${params.push(query.customerId)}`);
      if (query.status !== undefined) where.push(`status = $${params.push(query.status)}`);
      if (query.cursor !== undefined)
        where.push(`created_position > $${params.push(decodeCursor(query.cursor))}`);
      const limit = query.limit;
      const rows = await readModels.query<{ doc: string; created_position: number | string }>(
        `SELECT doc, created_position FROM ${table}
         ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
         ORDER BY created_position LIMIT $${params.push(limit + 1)}`,
        params,
      );
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      return {
        items: page.map((r) => JSON.parse(r.doc) as OrderView),
        nextCursor:
          rows.length > limit && last ? encodeCursor(Number(last.created_position)) : null,
      };
    },
  });

  const summary = queryRoute({
    url: '/customers/:customerId/summary',
    summary: "A customer's orders: count, still open, and the total of confirmed and shipped ones",
    params: {
      type: 'object',
      required: ['customerId'],
      properties: { customerId: { type: 'string', minLength: 1, maxLength: 128 } },
    },
    projections: ['customer-summary'],
    handler: async ({ params }) => {
      const table = await readModels.table('customer-summary', 'customer_summary');
      const [row] = await readModels.query<{
        order_count: number | string;
        open_orders: number | string;
        total_spent_cents: number | string;
      }>(
        `SELECT order_count, open_orders, total_spent_cents FROM ${table} WHERE customer_id = $1`,
        [params.customerId],
      );
      return {
        customerId: params.customerId,
        orderCount: Number(row?.order_count ?? 0),
        openOrders: Number(row?.open_orders ?? 0),
        totalSpentCents: Number(row?.total_spent_cents ?? 0),
      };
    },
  });

  const events = queryRoute({
    url: '/orders/:orderId/events',
    summary: "The order's events from the store, in stream order",
    params: orderParams,
    projections: [],
    handler: async ({ params }) => {
      const recorded = await store.readStream(streamIdOf(params.orderId));
      if (recorded.length === 0) throw notFound(params.orderId);
      return { events: recorded.map(eventView) };
    },
  });

  const history = queryRoute({
    url: '/orders/:orderId/history',
    summary: "The order as it was at a version, folded from the store's events",
    params: orderParams,
    querystring: schemaOf<{ version: number }>({
      type: 'object',
      required: ['version'],
      properties: { version: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER } },
    }),
    projections: [],
    handler: async ({ params, query }) => {
      const recorded = await store.readStream<OrderEvent>(streamIdOf(params.orderId), {
        toVersion: query.version,
      });
      if (recorded.length === 0) throw notFound(params.orderId);
      if (recorded.length < query.version) {
        throw new HttpProblem(
          404,
          'version_not_found',
          'Version not found',
          `order ${params.orderId} is at version ${recorded.length}`,
        );
      }
      const state = fold(orderDecider, recorded);
      return {
        orderId: params.orderId,
        version: query.version,
        state: orderView(state, query.version),
      };
    },
  });

  return [getOrder, listOrders, summary, events, history];
}

/** Domain-flavoured problems for generic errors: an unknown stream is an unknown order. */
export function mapOrderErrors(error: unknown): Problem | undefined {
  if ((error as { code?: string } | null)?.code === 'stream_not_found') {
    return problem(
      404,
      'order_not_found',
      'Order not found',
      (error as Error).message.replace(/stream 'order-(.*)'/, 'order $1'),
    );
  }
  return undefined;
}
