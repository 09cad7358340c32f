/**
 * The order domain: commands, events, state and the decider. Pure: no I/O, no clock; the time of
 * a change arrives in the command (`at`, an ISO timestamp) and is kept in the events.
 */
import { BusinessRuleError, type Decider, type RedactedField } from 'tidemark';

export const MAX_LINES = 100;
export const MAX_QUANTITY = 10_000;
export const MAX_UNIT_PRICE_CENTS = 100_000_000;

export type OrderStatus = 'open' | 'confirmed' | 'cancelled' | 'shipped';

export interface OrderLine {
  sku: string;
  quantity: number;
  unitPriceCents: number;
}

/**
 * Where the order ships: personal data of the customer (declared in personal-data.ts), stored
 * sealed under the customer's key, and read as a redaction once the customer is forgotten.
 */
export type ShippingAddress = string | RedactedField;

export type OrderEvent =
  | {
      type: 'OrderCreated';
      data: {
        orderId: string;
        customerId: string;
        lines: OrderLine[];
        at: string;
        /** Optional; events stored before it existed have none. */
        shippingAddress?: ShippingAddress;
      };
    }
  | {
      type: 'ItemAdded';
      data: { sku: string; quantity: number; unitPriceCents: number; at: string };
    }
  | { type: 'ItemRemoved'; data: { sku: string; at: string } }
  | { type: 'OrderConfirmed'; data: { at: string } }
  | { type: 'OrderCancelled'; data: { reason: string | null; at: string } }
  | { type: 'OrderShipped'; data: { at: string } };

export type OrderCommand =
  | {
      type: 'CreateOrder';
      data: {
        orderId: string;
        customerId: string;
        lines: OrderLine[];
        at: string;
        shippingAddress?: string | undefined;
      };
    }
  | { type: 'AddItem'; data: OrderLine & { at: string } }
  | { type: 'RemoveItem'; data: { sku: string; at: string } }
  | { type: 'ConfirmOrder'; data: { at: string } }
  | { type: 'CancelOrder'; data: { reason?: string | undefined; at: string } }
  | { type: 'ShipOrder'; data: { at: string } };

export type OrderState =
  | { status: 'none' }
  | {
      status: OrderStatus;
      orderId: string;
      customerId: string;
      /** In the order they were first added. */
      lines: OrderLine[];
      createdAt: string;
      updatedAt: string;
      shippingAddress?: ShippingAddress;
    };

export const eventTypes = [
  'OrderCreated',
  'ItemAdded',
  'ItemRemoved',
  'OrderConfirmed',
  'OrderCancelled',
  'OrderShipped',
] as const satisfies readonly OrderEvent['type'][];

export function totalCents(lines: readonly OrderLine[]): number {
  let total = 0;
  for (const line of lines) total += line.quantity * line.unitPriceCents;
  return total;
}

/** Adds a line, or adds its quantity to the line of the same sku (whose price becomes the new one). */
export function addLine(lines: readonly OrderLine[], line: OrderLine): OrderLine[] {
  const index = lines.findIndex((l) => l.sku === line.sku);
  if (index === -1)
    return [
      ...lines,
      { sku: line.sku, quantity: line.quantity, unitPriceCents: line.unitPriceCents },
    ];
  return lines.map((l, i) =>
    i === index
      ? { sku: l.sku, quantity: l.quantity + line.quantity, unitPriceCents: line.unitPriceCents }
      : l,
  );
}

function refuse(rule: string, message: string, details?: Record<string, unknown>): never {
  throw new BusinessRuleError(rule, message, details);
}

function mergeLines(lines: readonly OrderLine[]): OrderLine[] {
  let merged: OrderLine[] = [];
  for (const line of lines) merged = addLine(merged, line);
  return merged;
}

function checkLines(lines: readonly OrderLine[]): void {
  if (lines.length > MAX_LINES) refuse('too_many_lines', `an order has at most ${MAX_LINES} lines`);
  for (const line of lines) {
    if (line.quantity > MAX_QUANTITY) {
      refuse('quantity_too_large', `a line holds at most ${MAX_QUANTITY} items`, { sku: line.sku });
    }
  }
}

export const orderDecider: Decider<OrderState, OrderCommand, OrderEvent> = {
  initialState: () => ({ status: 'none' }),

  evolve(state, event) {
    switch (event.type) {
      case 'OrderCreated':
        return {
          status: 'open',
          orderId: event.data.orderId,
          customerId: event.data.customerId,
          lines: event.data.lines.map((l) => ({ ...l })),
          createdAt: event.data.at,
          updatedAt: event.data.at,
          ...(event.data.shippingAddress !== undefined
            ? { shippingAddress: event.data.shippingAddress }
            : {}),
        };
      case 'ItemAdded':
        if (state.status === 'none') return state;
        return {
          ...state,
          lines: addLine(state.lines, event.data),
          updatedAt: event.data.at,
        };
      case 'ItemRemoved':
        if (state.status === 'none') return state;
        return {
          ...state,
          lines: state.lines.filter((l) => l.sku !== event.data.sku),
          updatedAt: event.data.at,
        };
      case 'OrderConfirmed':
        if (state.status === 'none') return state;
        return { ...state, status: 'confirmed', updatedAt: event.data.at };
      case 'OrderCancelled':
        if (state.status === 'none') return state;
        return { ...state, status: 'cancelled', updatedAt: event.data.at };
      case 'OrderShipped':
        if (state.status === 'none') return state;
        return { ...state, status: 'shipped', updatedAt: event.data.at };
      default: {
        const unknown: never = event;
        return unknown;
      }
    }
  },

  decide(command, state) {
    if (command.type === 'CreateOrder') {
      if (state.status !== 'none')
        refuse('order_already_exists', `order ${command.data.orderId} already exists`);
      const lines = mergeLines(command.data.lines);
      checkLines(lines);
      return {
        type: 'OrderCreated',
        data: {
          orderId: command.data.orderId,
          customerId: command.data.customerId,
          lines,
          at: command.data.at,
          ...(command.data.shippingAddress !== undefined
            ? { shippingAddress: command.data.shippingAddress }
            : {}),
        },
      };
    }
    if (state.status === 'none') return refuse('order_not_found', 'the order does not exist');
    switch (command.type) {
      case 'AddItem': {
        if (state.status !== 'open')
          refuse(
            'order_not_open',
            `items change only while the order is open; it is ${state.status}`,
          );
        const { sku, quantity, unitPriceCents, at } = command.data;
        const lines = addLine(state.lines, { sku, quantity, unitPriceCents });
        checkLines(lines);
        return { type: 'ItemAdded', data: { sku, quantity, unitPriceCents, at } };
      }
      case 'RemoveItem':
        if (state.status !== 'open')
          refuse(
            'order_not_open',
            `items change only while the order is open; it is ${state.status}`,
          );
        if (!state.lines.some((l) => l.sku === command.data.sku)) {
          refuse('line_not_found', `the order has no line for sku ${command.data.sku}`, {
            sku: command.data.sku,
          });
        }
        return { type: 'ItemRemoved', data: { sku: command.data.sku, at: command.data.at } };
      case 'ConfirmOrder':
        if (state.status !== 'open')
          refuse('order_not_open', `only an open order can be confirmed; it is ${state.status}`);
        if (state.lines.length === 0) refuse('order_empty', 'an empty order cannot be confirmed');
        return { type: 'OrderConfirmed', data: { at: command.data.at } };
      case 'CancelOrder':
        if (state.status === 'shipped')
          refuse('order_shipped', 'a shipped order cannot be cancelled');
        if (state.status === 'cancelled')
          refuse('order_cancelled', 'the order is already cancelled');
        return {
          type: 'OrderCancelled',
          data: { reason: command.data.reason ?? null, at: command.data.at },
        };
      case 'ShipOrder':
        if (state.status !== 'confirmed')
          refuse('order_not_confirmed', `only a confirmed order ships; it is ${state.status}`);
        return { type: 'OrderShipped', data: { at: command.data.at } };
      default: {
        const unknown: never = command;
        return unknown;
      }
    }
  },
};

/** The order as the API shows it (GET /orders/{id}, history, lists). */
export interface OrderView {
  orderId: string;
  customerId: string;
  status: OrderStatus;
  lines: OrderLine[];
  totalCents: number;
  version: number;
  createdAt: string;
  updatedAt: string;
  /** Only when the order has one: the address, or `{"$personal":"redacted",…}` once forgotten. */
  shippingAddress?: ShippingAddress;
}

export function orderView(state: OrderState, version: number): OrderView | undefined {
  if (state.status === 'none') return undefined;
  return {
    orderId: state.orderId,
    customerId: state.customerId,
    status: state.status,
    lines: state.lines.map((l) => ({ ...l })),
    totalCents: totalCents(state.lines),
    version,
    createdAt: state.createdAt,
    updatedAt: state.updatedAt,
    ...(state.shippingAddress !== undefined ? { shippingAddress: state.shippingAddress } : {}),
  };
}
