/**
 * The Orders service's personal data: what is personal (an order's shipping address, whose data
 * subject is the customer). Only `tidemark` is imported, so the CLI's config loads it cheaply;
 * the route that forgets a customer is in routes.ts.
 */
import { definePersonalData } from 'tidemark';

/** `OrderCreated.shippingAddress` is the customer's personal data, sealed under their key. */
export const orderPersonalData = definePersonalData({
  OrderCreated: { subject: 'customerId', fields: ['shippingAddress'] },
});
