import { describe, it } from 'node:test';
import { deciderSpec } from 'tidemark/testing';
import {
  orderDecider,
  type OrderCommand,
  type OrderEvent,
} from '../../examples/orders/src/domain.ts';

const at = '2026-11-27T10:00:00.000Z';
const spec = deciderSpec(orderDecider);
const line = (sku: string, quantity = 1, unitPriceCents = 100) => ({
  sku,
  quantity,
  unitPriceCents,
});
const created = (lines = [line('A')]): OrderEvent => ({
  type: 'OrderCreated',
  data: { orderId: 'o1', customerId: 'c1', lines, at },
});
const confirmed: OrderEvent = { type: 'OrderConfirmed', data: { at } };
const shipped: OrderEvent = { type: 'OrderShipped', data: { at } };
const cancelled: OrderEvent = { type: 'OrderCancelled', data: { reason: null, at } };
const create = (lines = [line('A')]): OrderCommand => ({
  type: 'CreateOrder',
  data: { orderId: 'o1', customerId: 'c1', lines, at },
});
const add = (sku: string, quantity = 1, unitPriceCents = 100): OrderCommand => ({
  type: 'AddItem',
  data: { sku, quantity, unitPriceCents, at },
});

describe('order decider', () => {
  it('creates an order with its first lines, merging repeated skus', () => {
    spec
      .given([])
      .when(create([line('A', 1), line('B', 2), line('A', 3, 150)]))
      .then([created([line('A', 4, 150), line('B', 2)])]);
  });
  it('refuses to create an order id that exists', () => {
    spec.given([created()]).when(create()).thenFails('order_already_exists');
  });
  it('refuses more than 100 lines, on create and on add', () => {
    const many = Array.from({ length: 101 }, (_, i) => line(`S${i}`));
    spec.given([]).when(create(many)).thenFails('too_many_lines');
    spec
      .given([created(many.slice(0, 100))])
      .when(add('NEW'))
      .thenFails('too_many_lines');
    spec
      .given([created(many.slice(0, 100))])
      .when(add('S5'))
      .then([{ type: 'ItemAdded', data: { sku: 'S5', quantity: 1, unitPriceCents: 100, at } }]);
  });
  it('adds to the line of the same sku, which takes the new price', () => {
    spec
      .given([created([line('A', 2, 100)])])
      .when(add('A', 3, 120))
      .thenState({
        status: 'open',
        orderId: 'o1',
        customerId: 'c1',
        lines: [line('A', 5, 120)],
        createdAt: at,
        updatedAt: at,
      });
  });
  it('refuses a line over 10000 items', () => {
    spec
      .given([created([line('A', 9999)])])
      .when(add('A', 2))
      .thenFails('quantity_too_large');
  });
  it('changes items only while open', () => {
    for (const history of [
      [created(), confirmed],
      [created(), cancelled],
      [created(), confirmed, shipped],
    ]) {
      spec.given(history).when(add('B')).thenFails('order_not_open');
      spec
        .given(history)
        .when({ type: 'RemoveItem', data: { sku: 'A', at } })
        .thenFails('order_not_open');
    }
  });
  it('removes a whole line, and refuses an absent one', () => {
    spec
      .given([created([line('A', 3)])])
      .when({ type: 'RemoveItem', data: { sku: 'A', at } })
      .then([{ type: 'ItemRemoved', data: { sku: 'A', at } }]);
    spec
      .given([created()])
      .when({ type: 'RemoveItem', data: { sku: 'Z', at } })
      .thenFails('line_not_found');
  });
  it('confirms an open order with lines, never an empty one', () => {
    spec.given([created()]).when({ type: 'ConfirmOrder', data: { at } }).then([confirmed]);
    spec
      .given([created([])])
      .when({ type: 'ConfirmOrder', data: { at } })
      .thenFails('order_empty');
    spec
      .given([created(), { type: 'ItemRemoved', data: { sku: 'A', at } }])
      .when({ type: 'ConfirmOrder', data: { at } })
      .thenFails('order_empty');
    spec
      .given([created(), confirmed])
      .when({ type: 'ConfirmOrder', data: { at } })
      .thenFails('order_not_open');
  });
  it('ships only a confirmed order', () => {
    spec.given([created(), confirmed]).when({ type: 'ShipOrder', data: { at } }).then([shipped]);
    spec
      .given([created()])
      .when({ type: 'ShipOrder', data: { at } })
      .thenFails('order_not_confirmed');
    spec
      .given([created(), cancelled])
      .when({ type: 'ShipOrder', data: { at } })
      .thenFails('order_not_confirmed');
    spec
      .given([created(), confirmed, shipped])
      .when({ type: 'ShipOrder', data: { at } })
      .thenFails('order_not_confirmed');
  });
  it('cancels open and confirmed orders, never a shipped or cancelled one', () => {
    const cancel: OrderCommand = { type: 'CancelOrder', data: { reason: 'changed my mind', at } };
    const event: OrderEvent = { type: 'OrderCancelled', data: { reason: 'changed my mind', at } };
    spec.given([created()]).when(cancel).then([event]);
    spec.given([created(), confirmed]).when(cancel).then([event]);
    spec.given([created(), confirmed, shipped]).when(cancel).thenFails('order_shipped');
    spec.given([created(), cancelled]).when(cancel).thenFails('order_cancelled');
  });
  it('refuses commands on an order that does not exist', () => {
    spec.given([]).when({ type: 'ConfirmOrder', data: { at } }).thenFails('order_not_found');
  });
});
