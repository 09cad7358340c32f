/**
 * The Orders service's personal data: what is personal (an order's shipping address, whose data
 * subject is the customer), and the route that forgets a customer (docs/orders-api.md).
 */
import { definePersonalData, isTidemarkError } from 'tidemark';
import { actionRoute, schemaOf, type AnyActionRoute } from 'tidemark/http';
import type { Service } from 'tidemark/service';

/** `OrderCreated.shippingAddress` is the customer's personal data, sealed under their key. */
export const orderPersonalData = definePersonalData({
  OrderCreated: { subject: 'customerId', fields: ['shippingAddress'] },
});

/**
 * `DELETE /customers/{customerId}/personal-data`: forgets the customer. 204 when forgotten, now
 * or before (idempotent: a repeat also finishes the redaction of read models); 404
 * `unknown_subject` when no personal data of the customer was ever stored.
 */
export function forgetCustomerRoute(forget: Service['forget']): AnyActionRoute {
  return actionRoute({
    method: 'DELETE',
    url: '/customers/:customerId/personal-data',
    summary: "Forget a customer's personal data (crypto-shredding)",
    params: schemaOf<{ customerId: string }>({
      type: 'object',
      required: ['customerId'],
      properties: { customerId: { type: 'string', minLength: 1, maxLength: 128 } },
    }),
    successStatus: 204,
    handler: async ({ params }) => {
      try {
        await forget(params.customerId);
      } catch (error) {
        if (!isTidemarkError(error, 'subject_forgotten')) throw error;
      }
    },
  });
}
