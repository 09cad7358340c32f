/**
 * The Orders HTTP contract (see the README): command, query and action routes declared for the
 * `tidemark/http` plugin. Nothing here knows about storage beyond the ports.
 */
import { createHash } from 'node:crypto';
import {
  fold,
  isTidemarkError,
  type CommandHandler,
  type EventStore,
  type RecordedEvent,
  type ReadModels,
} from 'tidemark';
import {
  HttpProblem,
  actionRoute,
  commandRoute,
  problem,
  queryRoute,
  schemaOf,
  type AnyActionRoute,
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

// `.` and `..` are dot segments (RFC 3986, section 5.2.4): clients remove them from a URL's path
// before sending it, so an order, sku or customer with such an id could never be addressed.
const NOT_DOT_SEGMENT = { not: { enum: ['.', '..'] } };
const ID = {
  type: 'string',
  minLength: 1,
  maxLength: 64,
  pattern: '^[A-Za-z0-9._~-]+$',
  ...NOT_DOT_SEGMENT,
};
const SKU = {
  type: 'string',
  minLength: 1,
  maxLength: 64,
  pattern: '^[^\\u0000-\\u001f/]+$',
  ...NOT_DOT_SEGMENT,
};
const CUSTOMER_ID = { type: 'string', minLength: 1, maxLength: 128, ...NOT_DOT_SEGMENT };

/**
 * The longest path parameter the contract's own limits allow, in the unit the router measures
 * (UTF-16 code units of the decoded segment; the schemas count code points, and one code point
 * is at most two units): a 128-character customer id of emoji in `/customers/{id}/summary`.
 * The Fastify app must accept at least this (`maxParamLength`, 100 by default), else an id that
 * was accepted on create could never be read; longer segments are refused before the schema.
 */
export const MAX_PATH_PARAM_LENGTH = 2 * CUSTOMER_ID.maxLength;
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

// The answers' schemas, for the OpenAPI document (the routes' JSON is what these describe).
const VERSION = { type: 'integer', minimum: 1 };
const COUNT = { type: 'integer', minimum: 0 };
const TIME = { type: 'string', format: 'date-time' };
const COMMAND_ANSWER = {
  type: 'object',
  required: ['orderId', 'version'],
  additionalProperties: false,
  properties: { orderId: ID, version: VERSION },
};
const ORDER_VIEW = {
  type: 'object',
  required: [
    'orderId',
    'customerId',
    'status',
    'lines',
    'totalCents',
    'version',
    'createdAt',
    'updatedAt',
  ],
  additionalProperties: false,
  properties: {
    orderId: ID,
    customerId: CUSTOMER_ID,
    status: { type: 'string', enum: ['open', 'confirmed', 'cancelled', 'shipped'] },
    lines: { type: 'array', items: { ...line, additionalProperties: false } },
    totalCents: COUNT,
    version: VERSION,
    createdAt: TIME,
    updatedAt: TIME,
    // Only when the order has one; once its customer is forgotten, the redacted marker
    // (docs/personal-data.md).
    shippingAddress: {
      oneOf: [
        SHIPPING_ADDRESS,
        {
          type: 'object',
          required: ['$personal', 'subject'],
          additionalProperties: false,
          properties: { $personal: { const: 'redacted' }, subject: CUSTOMER_ID },
        },
      ],
    },
  },
};
const EVENT_TYPES: OrderEvent['type'][] = [
  'OrderCreated',
  'ItemAdded',
  'ItemRemoved',
  'OrderConfirmed',
  'OrderCancelled',
  'OrderShipped',
];
const ETAG = {
  ETag: {
    description: "The order's version as a strong entity tag",
    required: true,
    schema: { type: 'string', pattern: '^"[1-9][0-9]*"$' },
  },
};

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
        customerId: CUSTOMER_ID,
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
    responseSchema: COMMAND_ANSWER,
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
      responseSchema: COMMAND_ANSWER,
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
    responseSchema: COMMAND_ANSWER,
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
    responseSchema: COMMAND_ANSWER,
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
    responseSchema: COMMAND_ANSWER,
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
    responseSchema: ORDER_VIEW,
    responseHeaders: ETAG,
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
        customerId: CUSTOMER_ID,
        status: { type: 'string', enum: statuses },
        limit: { type: 'integer', minimum: 1, maximum: 100, default: 20 },
        cursor: { type: 'string', minLength: 1, maxLength: 100 },
      },
    }),
    projections: ['order-list'],
    responseSchema: {
      type: 'object',
      required: ['items', 'nextCursor'],
      additionalProperties: false,
      properties: {
        items: { type: 'array', items: ORDER_VIEW },
        nextCursor: { type: ['string', 'null'] },
      },
    },
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
      properties: { customerId: CUSTOMER_ID },
    },
    projections: ['customer-summary'],
    responseSchema: {
      type: 'object',
      required: ['customerId', 'orderCount', 'openOrders', 'totalSpentCents'],
      additionalProperties: false,
      properties: {
        customerId: CUSTOMER_ID,
        orderCount: COUNT,
        openOrders: COUNT,
        totalSpentCents: COUNT,
      },
    },
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
    responseSchema: {
      type: 'object',
      required: ['events'],
      additionalProperties: false,
      properties: {
        events: {
          type: 'array',
          minItems: 1,
          items: {
            type: 'object',
            required: [
              'eventId',
              'type',
              'streamVersion',
              'position',
              'schemaVersion',
              'data',
              'metadata',
              'recordedAt',
            ],
            additionalProperties: false,
            properties: {
              eventId: { type: 'string', minLength: 1 },
              type: { type: 'string', enum: EVENT_TYPES },
              streamVersion: VERSION,
              position: VERSION,
              schemaVersion: VERSION,
              data: { type: 'object' },
              metadata: { type: 'object' },
              recordedAt: TIME,
            },
          },
        },
      },
    },
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
      // Any integer: one outside 1..current is an unknown version of a known order (404), as
      // the contract says, not a malformed request.
      properties: { version: { type: 'integer' } },
    }),
    projections: [],
    responseSchema: {
      type: 'object',
      required: ['orderId', 'version', 'state'],
      additionalProperties: false,
      properties: { orderId: ID, version: VERSION, state: ORDER_VIEW },
    },
    handler: async ({ params, query }) => {
      const recorded = await store.readStream<OrderEvent>(streamIdOf(params.orderId), {
        toVersion: Math.min(Math.max(query.version, 1), Number.MAX_SAFE_INTEGER),
      });
      if (recorded.length === 0) throw notFound(params.orderId);
      if (query.version < 1 || recorded.length < query.version) {
        throw new HttpProblem(
          404,
          'version_not_found',
          'Version not found',
          query.version < 1
            ? `versions start at 1`
            : `order ${params.orderId} is at version ${recorded.length}`,
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

/**
 * `DELETE /customers/{customerId}/personal-data`: forgets the customer. 204 when forgotten, now
 * or before (idempotent: a repeat also finishes the redaction of read models); 404
 * `unknown_subject` when no personal data of the customer was ever stored.
 */
export function forgetCustomerRoute(
  forget: (customerId: string) => Promise<unknown>,
): AnyActionRoute {
  return actionRoute({
    method: 'DELETE',
    url: '/customers/:customerId/personal-data',
    summary: "Forget a customer's personal data (crypto-shredding)",
    params: schemaOf<{ customerId: string }>({
      type: 'object',
      required: ['customerId'],
      properties: { customerId: CUSTOMER_ID },
    }),
    successStatus: 204,
    // Irreversible: the operator role, not the writer's (docs/orders-api.md).
    kind: 'operations',
    handler: async ({ params }) => {
      try {
        await forget(params.customerId);
      } catch (error) {
        if (!isTidemarkError(error, 'subject_forgotten')) throw error;
      }
    },
  });
}
