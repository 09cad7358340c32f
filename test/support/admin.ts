/**
 * Test support for the admin console: an Orders service whose order-details projection fails on
 * purpose for the orders the test names (a poison event, until the test "deploys the fix"), with
 * the console open (local development) and a short grace period for rebuilds.
 */
import type { ProjectionDefinition, RecordedEvent } from 'tidemark';
import { orderDetails, orderProjections } from '../../examples/orders/src/projections.ts';
import { withFaults } from './faults.ts';
import { json, startTestService, type TestService } from './orders.ts';
import type { OrdersServiceOptions } from '../../examples/orders/src/app.ts';

export interface Poison {
  /** Order ids whose events order-details refuses while `fixed` is false. */
  readonly orders: Set<string>;
  fixed: boolean;
}

/**
 * Swaps order-details for a view of it that throws on the poisoned orders' events. Each test
 * file runs in a process of its own, so the swap stays within the file.
 */
export function poisonOrderDetails(): Poison {
  const poison: Poison = { orders: new Set(), fixed: false };
  const check = (events: readonly RecordedEvent[]) => {
    for (const e of events) {
      const id = e.streamId.slice('order-'.length);
      if (!poison.fixed && poison.orders.has(id))
        throw new Error(
          `order-details cannot take ${e.type} of order ${id} (poisoned by the test)`,
        );
    }
  };
  const faulty = withFaults(orderDetails as ProjectionDefinition, {
    async apply(event, context) {
      check([event]);
      return orderDetails.apply(event as never, context);
    },
    async applyBatch(events, context) {
      check(events);
      return orderDetails.applyBatch!(events as never, context);
    },
  });
  const index = orderProjections.indexOf(orderDetails);
  orderProjections.splice(index, 1, faulty as typeof orderDetails);
  return poison;
}

export async function startConsoleService(
  options: Partial<OrdersServiceOptions> = {},
): Promise<TestService> {
  return startTestService({
    admin: { openForLocalDevelopment: true, rebuildDropGraceMs: 200, refreshMs: 500 },
    ...options,
  });
}

/** Creates an order through the service's HTTP API; resolves with its id. */
export async function createOrder(
  service: Pick<TestService, 'app'>,
  orderId: string,
  customerId = 'customer-1',
): Promise<string> {
  const answer = await service.app.inject({
    method: 'POST',
    url: '/orders',
    ...json({ orderId, customerId, lines: [{ sku: 'sku-1', quantity: 2, unitPriceCents: 1250 }] }),
  });
  if (answer.statusCode !== 201)
    throw new Error(`POST /orders: ${answer.statusCode} ${answer.body}`);
  return orderId;
}
